#!lua flags=allow-oom
-- group_delete: remove a consumer group's coordination state, if it has no live member.
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- KEYS[2]  group members hash          facade:{g/G}:members
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines
-- KEYS[4]  Kafka members' state hash   facade:{g/G}:kafka     (groups of Kafka clients, gateway)
-- KEYS[5]  pending member ids zset     facade:{g/G}:pending
--
-- Returns: 1 when deleted (members past their deadline do not count as live).
-- Errors:  GROUPBUSY when a member is still live (stop the consumers first).
local state, members, deadlines = KEYS[1], KEYS[2], KEYS[3]
local now = now_ms()
if redis.call('ZCOUNT', deadlines, '(' .. now, '+inf') > 0 then
  return redis.error_reply('GROUPBUSY the group still has live members; stop its consumers first')
end
redis.call('DEL', state, members, deadlines, KEYS[4], KEYS[5])
return 1
