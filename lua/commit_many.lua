#!lua flags=allow-oom
-- commit_many: commit.lua for several partitions in one call, each checked on its own.
-- (allow-oom: consumers keep acknowledging, and so freeing memory, when the server is full)
-- Only where every key lives on one server: its keys span hash slots, so never on Redis Cluster
-- (there the consumer sends one commit per partition).
--
-- KEYS[1]  first partition's stream          facade:{T/P}:log
-- KEYS[2]  first partition's owners hash     facade:{T/P}:own
-- KEYS[3]  first partition's processed marks facade:{T/P}:done  (group -> last processed ID)
-- KEYS[4…] the same three for each further partition (partition i: KEYS[3i-2], KEYS[3i-1], KEYS[3i])
-- ARGV[1]  group id
-- ARGV[2…] per partition, in KEYS order: owner token, processed mark ("" to leave it alone), n,
--          then n entry IDs to acknowledge (n at most ~7000: Lua's unpack limit; callers send 4000)
--
-- Returns: one reply per partition, in KEYS order: the number of IDs acknowledged, or an error
--          reply FENCED when the token is not that partition's current owner (nothing changes
--          there: its records stay pending for the new owner; the other partitions are committed).
-- As in commit.lua, a partition's ack and its mark change together.
local group = ARGV[1]
local out = {}
local a = 2
for p = 1, #KEYS / 3 do
  local stream, own, done = KEYS[3 * p - 2], KEYS[3 * p - 1], KEYS[3 * p]
  local token, mark, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  if redis.call('HGET', own, group) ~= token then
    out[p] = redis.error_reply('FENCED this member no longer owns ' .. stream .. ' in group ' .. group)
  else
    if mark ~= '' then
      redis.call('HSET', done, group, mark)
    end
    if n > 0 then
      out[p] = redis.call('XACK', stream, group, unpack(ARGV, a + 3, a + 2 + n))
    else
      out[p] = 0
    end
  end
  a = a + 3 + n
end
return out
