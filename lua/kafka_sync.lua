#!lua flags=allow-oom
-- kafka_sync: a Kafka client's SyncGroup. The leader's call stores every member's assignment
-- and the generation becomes stable; the others' calls (repeated by the gateway every few tens
-- of ms) answer their own assignment once it is there.
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- KEYS[2]  group members hash          facade:{g/G}:members
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines
-- KEYS[4]  Kafka members' state hash   facade:{g/G}:kafka
-- ARGV[1]  member id
-- ARGV[2]  group.instance.id ("" for none)
-- ARGV[3]  generation the member joined
-- ARGV[4]  protocol type the client expects ("" not given: SyncGroup before v5)
-- ARGV[5]  protocol name the client expects ("" not given)
-- ARGV[6]  the assignment as facade describes it: JSON {"member": [["topic", p], ...]} ("" when
--          the assignments are not Kafka consumer assignments, or from a follower)
-- ARGV[7…] the leader's assignments: member id, assignment bytes, ... (none from a follower)
--
-- Returns: {"none", assignment bytes, protocol type, protocol name}; {"wait"} (the leader has
--          not synced yet); or an error name: "unknown_member_id", "illegal_generation",
--          "rebalance_in_progress" (a new generation is forming: join again), "fenced_instance_id",
--          "inconsistent_group_protocol".
local state, members, deadlines, kafka = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local member, instance, generation = ARGV[1], ARGV[2], ARGV[3]
local ptype, pname, described = ARGV[4], ARGV[5], ARGV[6]
local now = now_ms()
kafka_expire(state, members, deadlines, kafka, now)
local err = kafka_check(state, members, kafka, member, instance, generation)
if err then return {err} end
local s = redis.call('HMGET', state, 'phase', 'leader', 'ptype', 'pname')
if s[1] == 'joining' then return {'rebalance_in_progress'} end
if (ptype ~= '' and ptype ~= s[3]) or (pname ~= '' and pname ~= s[4]) then
  return {'inconsistent_group_protocol'}
end
kafka_touch(deadlines, kafka, member, now)
if s[1] == 'syncing' and s[2] == member then
  for i = 7, #ARGV - 1, 2 do
    local m = ARGV[i]
    if redis.call('HGET', kafka, 'j:' .. m) == generation then redis.call('HSET', kafka, 'a:' .. m, ARGV[i + 1]) end
  end
  redis.call('HSET', state, 'phase', 'stable', 'assignment_generation', generation)
  redis.call('HDEL', state, 'sync_deadline')
  if described ~= '' then redis.call('HSET', state, 'assignment', described) end
  s[1] = 'stable'
end
if s[1] ~= 'stable' then return {'wait'} end
return {'none', redis.call('HGET', kafka, 'a:' .. member) or '', s[3] or '', s[4] or ''}
