-- commit: acknowledge delivered records of one partition, if the committer still owns it.
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- KEYS[2]  partition owners hash       facade:{T/P}:own
-- ARGV[1]  group id
-- ARGV[2]  owner token                 "member|generation"
-- ARGV[3…] entry IDs to acknowledge
--
-- Returns: the number of IDs acknowledged.
-- Errors:  FENCED when the token is not the partition's current owner; nothing is acknowledged, and
--          the records stay pending for the new owner (Kafka's CommitFailedException).
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return redis.error_reply('FENCED this member no longer owns ' .. KEYS[1] .. ' in group ' .. ARGV[1])
end
if #ARGV < 3 then
  return 0
end
return redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 3))
