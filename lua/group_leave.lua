#!lua flags=allow-oom
-- group_leave: remove a member from its group (clean shutdown) and start a new generation.
-- (allow-oom: consumers keep acknowledging, and so freeing memory, when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- KEYS[2]  group members hash          facade:{g/G}:members
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines
-- ARGV[1]  member id
--
-- Returns: the new generation, or 0 when the member was not in the group (nothing changes).
local had = redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if had == 0 then
  return 0
end
return redis.call('HINCRBY', KEYS[1], 'generation', 1)
