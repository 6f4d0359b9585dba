-- fetch: acknowledge what the owner committed, then read the next records of one partition.
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- KEYS[2]  partition owners hash       facade:{T/P}:own
-- ARGV[1]  group id
-- ARGV[2]  owner token                 "member|generation"
-- ARGV[3]  count: at most this many records
-- ARGV[4]  from: ">" for new records, or an ID to re-read the partition's pending records after it
--          (a new owner reads the previous owner's uncommitted records first, in order)
-- ARGV[5]  consumer name inside the stream group (one per partition: ownership is the token's job)
-- ARGV[6…] IDs to acknowledge before reading (commits riding along with the next read)
--
-- Returns: {entries, counts}: entries as XREADGROUP gives them for this stream ({id, fields} each);
--          counts[i] is entry i's delivery count when re-reading pending records, empty otherwise.
--          Pending entries that retention already trimmed are acknowledged and skipped; an empty
--          re-read therefore means no pending records are left after ARGV[4].
-- Errors:  FENCED when the token is not the partition's current owner (nothing is read or acked);
--          NOTOPIC when the stream is gone.
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return redis.error_reply('FENCED this member no longer owns ' .. KEYS[1] .. ' in group ' .. ARGV[1])
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOTOPIC partition stream ' .. KEYS[1] .. ' does not exist')
end
if #ARGV > 5 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 6))
end
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[5], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], ARGV[4])
if not reply then
  return {{}, {}}
end
local entries = reply[1][2]
if ARGV[4] == '>' then
  return {entries, {}}
end
local kept, counts = {}, {}
while true do
  local gone = {}
  for _, e in ipairs(entries) do
    if e[2] then
      kept[#kept + 1] = e
    else
      gone[#gone + 1] = e[1]
    end
  end
  if #gone > 0 then
    redis.call('XACK', KEYS[1], ARGV[1], unpack(gone))
  end
  -- A batch of trimmed entries only: read on, since an empty reply tells the caller that no
  -- pending records are left (it then switches to '>'). Each round acks what it skips.
  if #kept > 0 or #gone == 0 then
    break
  end
  reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[5], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], gone[#gone])
  entries = reply[1][2]
end
if #kept > 0 then
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], kept[1][1], kept[#kept][1], #kept, ARGV[5])
  local by_id = {}
  for _, p in ipairs(pending) do by_id[p[1]] = p[4] end
  for j, e in ipairs(kept) do counts[j] = by_id[e[1]] or 1 end
end
return {kept, counts}
