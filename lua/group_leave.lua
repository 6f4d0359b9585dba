#!lua flags=allow-oom
-- group_leave: end a member's session (clean shutdown, or max_poll_interval_ms exceeded).
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- KEYS[2]  group members hash          facade:{g/G}:members
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines
-- ARGV[1]  member id
-- ARGV[2]  session nonce: only that session is ended (a newer one of a static member stays)
--
-- Returns: the new generation, or 0 when that session was not in the group (nothing changes).
local state, members, deadlines, member, nonce = KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2]
local current = redis.call('HGET', members, member)
if not current or member_nonce(current) ~= nonce then
  return 0
end
redis.call('HDEL', members, member)
redis.call('ZREM', deadlines, member)
return bump_generation(state)
