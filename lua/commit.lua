#!lua flags=allow-oom
-- commit: acknowledge delivered records of one partition, if the committer still owns it, and
-- (allow-oom: consumers keep acknowledging, and so freeing memory, when the server is full)
-- record how far the group has processed it.
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- KEYS[2]  partition owners hash       facade:{T/P}:own
-- KEYS[3]  processed marks hash        facade:{T/P}:done  (group -> last processed ID)
-- ARGV[1]  group id
-- ARGV[2]  owner token                 "member|generation|incarnation"
-- ARGV[3]  processed mark: the newest ID being committed, or "" to leave the mark alone
-- ARGV[4…] entry IDs to acknowledge (at most ~7000: Lua's unpack limit; callers send 4000)
--
-- Returns: the number of IDs acknowledged.
-- Errors:  FENCED when the token is not the partition's current owner; nothing is acknowledged, and
--          the records stay pending for the new owner (Kafka's CommitFailedException).
-- The ack and the mark change together, so an idempotent consumer that reads the mark (fetch
-- mode "idempotent") never processes a committed record again, whatever replays it.
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return redis.error_reply('FENCED this member no longer owns ' .. KEYS[1] .. ' in group ' .. ARGV[1])
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
end
if #ARGV < 4 then
  return 0
end
return redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 4))
