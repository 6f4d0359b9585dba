#!lua flags=allow-oom
-- commit: store committed offsets (Kafka's: the next offset to read) of one or more partitions,
-- each only if the committer still owns it.
-- (allow-oom: consumers keep reading and committing when the server is full)
-- Several partitions in one call only where every key lives on one server (its keys span hash
-- slots); on Redis Cluster the consumer sends one call per partition.
--
-- KEYS[4i-3] partition i's owners hash       facade:{T/P}:own   group -> owner token
-- KEYS[4i-2] partition i's committed offsets facade:{T/P}:off   group -> "<offset>[ <metadata>]"
-- KEYS[4i-1] partition i's processed marks   facade:{T/P}:done  group -> offset (exactly-once)
-- KEYS[4i]   partition i's delivery state    facade:{T/P}:dlv   field <group>:c: last commit id
-- ARGV[1]    group id
-- ARGV[2]    commit id: unique per commit() call; a call whose id is the last one stored is a
--            retry after a lost reply, and answers as the first attempt did
-- ARGV[3…]   per partition, in KEYS order, 4 values: owner token ("" for a group without live
--            members: then nobody may own the partition), offset, "mark" to raise the processed
--            mark to it too (exactly-once) or "", metadata ("" for none)
--
-- Returns: one reply per partition, in KEYS order: 1, or an error reply FENCED when the token is
--          not that partition's current owner (nothing changes there: Kafka's
--          CommitFailedException; the other partitions are committed).
-- A commit is cumulative: offset N covers every record before N, so a lost or failed commit is
-- covered by the next one.
local group, id = ARGV[1], ARGV[2]
local out = {}
for p = 1, #KEYS / 4 do
  local own, off, done, dlv = KEYS[4 * p - 3], KEYS[4 * p - 2], KEYS[4 * p - 1], KEYS[4 * p]
  local a = 4 * p - 1
  local token, offset, mark, metadata = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  if (redis.call('HGET', own, group) or '') ~= token then
    if id ~= '' and redis.call('HGET', dlv, group .. ':c') == id then
      out[p] = 1  -- this very commit was applied before its reply was lost, then the owner changed
    else
      out[p] = fenced(own, group)
    end
  else
    if id ~= '' then redis.call('HSET', dlv, group .. ':c', id) end
    if metadata ~= '' then
      redis.call('HSET', off, group, offset .. ' ' .. metadata)
    else
      redis.call('HSET', off, group, offset)
    end
    if mark == 'mark' and tonumber(redis.call('HGET', done, group) or '-1') < tonumber(offset) then
      redis.call('HSET', done, group, offset)
    end
    out[p] = 1
  end
end
return out
