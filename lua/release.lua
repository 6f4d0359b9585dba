#!lua flags=allow-oom
-- release: give up ownership of one partition (on revoke or close).
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  partition owners hash       facade:{T/P}:own
-- KEYS[2]  delivery state hash         facade:{T/P}:dlv   (see _lib.lua, "Delivery state")
-- ARGV[1]  group id
-- ARGV[2]  owner token of the releaser "<member id>|<session nonce>"
-- ARGV[3]  "clean" when the consumer gives the partition up in good order (a revoke, close()):
--          a record it was handed alone ("<offset>s") did not crash it, so the next claim counts
--          it as delivered once more but not as a failure; "" keeps the mark as it is (the
--          consumer is going down with an exception, or left for missing max_poll_interval_ms)
--
-- Returns: 1 if released, 0 if the releaser did not hold it (taken over already: nothing changes).
local own, dlv = KEYS[1], KEYS[2]
local group, token, clean = ARGV[1], ARGV[2], ARGV[3] == 'clean'
if redis.call('HGET', own, group) == token then
  redis.call('HDEL', own, group)
  if clean then survived(dlv, group) end
  return 1
end
return 0
