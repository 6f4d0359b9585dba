#!lua flags=allow-oom
-- group_lock: keep new members out of an empty group while an operator changes its offsets
-- (a reset is then all or nothing: no member can claim a partition halfway through).
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- KEYS[2]  group members hash          facade:{g/G}:members
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines
-- ARGV[1]  "lock" or "unlock"
-- ARGV[2]  lock: for how long (ms); it lapses by itself if the operator dies
--
-- Returns: 1.
-- Errors:  GROUPBUSY (lock) when the group has a live member; members past their deadline are
--          removed first, so a group whose consumers all crashed can be reset.
local state, members, deadlines, op = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
if op == 'unlock' then
  redis.call('HDEL', state, 'locked_until')
  return 1
end
local now = now_ms()
expire_members(state, members, deadlines, now, nil)
local count = redis.call('HLEN', members)
if count > 0 then
  local live = redis.call('ZRANGEBYSCORE', deadlines, '-inf', '+inf', 'LIMIT', 0, 5)
  return redis.error_reply('GROUPBUSY the group has ' .. count .. ' live member(s) (' ..
    table.concat(live, ', ') .. '); stop its consumers first')
end
redis.call('HSET', state, 'locked_until', now + tonumber(ARGV[2]))
return 1
