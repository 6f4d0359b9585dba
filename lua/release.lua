#!lua flags=allow-oom
-- release: give up ownership of one partition (on revoke or close).
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  partition owners hash       facade:{T/P}:own
-- ARGV[1]  group id
-- ARGV[2]  owner token of the releaser "<member id>|<session nonce>"
--
-- Returns: 1 if released, 0 if the releaser did not hold it (taken over already: nothing changes).
local own, group, token = KEYS[1], ARGV[1], ARGV[2]
if redis.call('HGET', own, group) == token then
  redis.call('HDEL', own, group)
  return 1
end
return 0
