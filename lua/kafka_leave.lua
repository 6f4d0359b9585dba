#!lua flags=allow-oom
-- kafka_leave: a Kafka client's LeaveGroup: remove members; the others rebalance.
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- KEYS[2]  group members hash          facade:{g/G}:members
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines
-- KEYS[4]  Kafka members' state hash   facade:{g/G}:kafka
-- ARGV[…]  member id, group.instance.id ("" for none), ...: a static member may be named by its
--          instance id alone (member id "")
--
-- Returns: one {code, member id} per member: "none", "unknown_member_id" (not in the group),
--          "fenced_instance_id" (the instance belongs to another member id).
local state, members, deadlines, kafka = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = now_ms()
kafka_expire(state, members, deadlines, kafka, now)
local out, removed = {}, 0
for i = 1, #ARGV - 1, 2 do
  local member, instance = ARGV[i], ARGV[i + 1]
  if member == '' and instance ~= '' then member = redis.call('HGET', kafka, 'i:' .. instance) or '' end
  local err = kafka_check(state, members, kafka, member, instance, nil)
  if err then
    out[#out + 1] = {err, member}
  else
    kafka_forget(state, members, deadlines, kafka, member)
    removed = removed + 1
    out[#out + 1] = {'none', member}
  end
end
if removed > 0 then kafka_changed(state, members, now) end
return out
