#!lua flags=allow-oom
-- kafka_join_cancel: the client of a JoinGroup went away while it waited for the generation to
-- form: withdraw that join (the member is removed, as after a LeaveGroup), so that the
-- generation does not form with a member that will never hear of it (as leader, the others
-- would wait for its SyncGroup until the rebalance timeout; as follower, until its session
-- timeout). Only the member's latest JoinGroup can be withdrawn, and only while it still waits:
-- a client that joined again on a new connection keeps its place.
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- KEYS[2]  group members hash          facade:{g/G}:members
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines
-- KEYS[4]  Kafka members' state hash   facade:{g/G}:kafka
-- ARGV[1]  member id
-- ARGV[2]  the token kafka_join was given for that JoinGroup
--
-- Returns: {"none"} (withdrawn) or {"kept"} (joined again since, or the generation formed).
local state, members, deadlines, kafka = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local member, token = ARGV[1], ARGV[2]
local now = now_ms()
kafka_expire(state, members, deadlines, kafka, now)
local s = redis.call('HMGET', kafka, 't:' .. member, 'j:' .. member)
if s[1] ~= token or s[2] ~= 'w' then return {'kept'} end
kafka_forget(state, members, deadlines, kafka, member)
kafka_changed(state, members, now)
return {'none'}
