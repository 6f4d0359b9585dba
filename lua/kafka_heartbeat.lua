#!lua flags=allow-oom
-- kafka_heartbeat: a Kafka client's Heartbeat: keep its session, end expired ones, and say
-- whether it must rejoin.
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- KEYS[2]  group members hash          facade:{g/G}:members
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines
-- KEYS[4]  Kafka members' state hash   facade:{g/G}:kafka
-- ARGV[1]  member id
-- ARGV[2]  group.instance.id ("" for none)
-- ARGV[3]  generation
--
-- Returns: {code}: "none", "rebalance_in_progress" (a new generation is forming: rejoin; the
--          session is kept), "unknown_member_id", "illegal_generation", "fenced_instance_id".
local state, members, deadlines, kafka = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local member, instance, generation = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
kafka_expire(state, members, deadlines, kafka, now)
local err = kafka_check(state, members, kafka, member, instance, generation)
if err then return {err} end
kafka_touch(deadlines, kafka, member, now)
if redis.call('HGET', state, 'phase') == 'joining' then return {'rebalance_in_progress'} end
return {'none'}
