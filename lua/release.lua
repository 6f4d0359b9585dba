#!lua flags=allow-oom
-- release: give up ownership of one partition (on revoke or close).
-- (allow-oom: consumers keep acknowledging, and so freeing memory, when the server is full)
--
-- KEYS[1]  partition owners hash       facade:{T/P}:own
-- ARGV[1]  group id
-- ARGV[2]  owner token of the releaser "member|generation"
--
-- Returns: 1 if released, 0 if the releaser did not hold it (already taken over: nothing changes).
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
