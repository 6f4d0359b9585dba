#!lua flags=allow-oom
-- kafka_commit: a Kafka client's OffsetCommit, fenced by generation and member id, stored where
-- the SDK keeps committed offsets (so `facade groups describe` shows the lag and
-- `reset-offsets` works). Partitions' keys span hash slots: on a Redis Cluster the gateway calls
-- this with no partitions (the check alone), then stores each partition's offset with `commit`.
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- KEYS[2]  group members hash          facade:{g/G}:members
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines
-- KEYS[4]  Kafka members' state hash   facade:{g/G}:kafka
-- KEYS[5…] committed offsets hash of each partition   facade:{T/P}:off
-- ARGV[1]  group id
-- ARGV[2]  member id ("" with generation -1: a commit from outside the group's membership,
--          Kafka's "simple" consumer with assign(); accepted only while the group has no member)
-- ARGV[3]  group.instance.id ("" for none)
-- ARGV[4]  generation (-1: see ARGV[2]); a member's commit keeps its session, as in Kafka
-- ARGV[5…] per partition, in KEYS order: offset, metadata ("" for none)
--
-- Returns: {code}: "none" (every offset stored), "unknown_member_id", "illegal_generation",
--          "rebalance_in_progress" (the generation is between join and sync: rejoin first),
--          "fenced_instance_id", "inconsistent_group_protocol" (the group has live facade SDK
--          members). Nothing is stored unless "none".
local state, members, deadlines, kafka = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, member, instance, generation = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local now = now_ms()
kafka_expire(state, members, deadlines, kafka, now)
local count = redis.call('HLEN', members)
local kind = redis.call('HGET', state, 'protocol')
if kind and kind ~= 'kafka' and count > 0 then return {'inconsistent_group_protocol'} end
if generation < 0 and member == '' and count == 0 then
  if not kind then redis.call('HSET', state, 'protocol', 'kafka') end
else
  local err = kafka_check(state, members, kafka, member, instance, generation)
  if err then return {err} end
  if redis.call('HGET', state, 'phase') == 'syncing' then return {'rebalance_in_progress'} end
  kafka_touch(deadlines, kafka, member, now)
end
for p = 5, #KEYS do
  local offset, metadata = ARGV[2 * p - 5], ARGV[2 * p - 4]
  if metadata ~= '' then
    redis.call('HSET', KEYS[p], group, offset .. ' ' .. metadata)
  else
    redis.call('HSET', KEYS[p], group, offset)
  end
end
return {'none'}
