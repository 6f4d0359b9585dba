#!lua flags=allow-oom
-- fetch: acknowledge what the owner committed, then read the next records of one partition.
-- (allow-oom: consumers keep acknowledging, and so freeing memory, when the server is full)
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- KEYS[2]  partition owners hash       facade:{T/P}:own
-- KEYS[3]  processed marks hash        facade:{T/P}:done  (group -> last processed ID)
-- ARGV[1]  group id
-- ARGV[2]  owner token                 "member|generation|incarnation"
-- ARGV[3]  count: at most this many records
-- ARGV[4]  from: ">" for new records, or an ID to re-read the partition's pending records after it
--          (a new owner reads the previous owner's uncommitted records first, in order)
-- ARGV[5]  consumer name inside the stream group (one per partition: ownership is the token's job)
-- ARGV[6]  mode: "" (at-least-once), "noack" (at-most-once: records are acknowledged as they are
--          read, never redelivered) or "idempotent" (records at or before the group's processed
--          mark are acknowledged and skipped: a redelivery is never handed out again)
-- ARGV[7…] IDs to acknowledge before reading (commits riding along with the next read)
--
-- Returns: {entries, counts, last}: entries as XREADGROUP gives them ({id, fields} each);
--          counts[i] is entry i's delivery count when re-reading pending records, empty otherwise;
--          last is the ID of the last entry read, skipped ones included ("" when none).
--          Pending entries that retention already trimmed, and (idempotent mode) entries already
--          processed, are acknowledged and skipped, and reading goes on past them: an empty
--          re-read therefore means no pending records are left after ARGV[4] up to the group's
--          last-delivered ID (pending ones after that ID, left behind when a seek or offset reset
--          moved the position back, are delivered by the ">" reads that follow; the re-read that
--          met the first of them has raised its delivery count by one).
-- Errors:  FENCED when the token is not the partition's current owner (nothing is read or acked);
--          NOTOPIC when the stream is gone.
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return redis.error_reply('FENCED this member no longer owns ' .. KEYS[1] .. ' in group ' .. ARGV[1])
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOTOPIC partition stream ' .. KEYS[1] .. ' does not exist')
end
if #ARGV > 6 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 7))
end

local function id_le(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, bms = tonumber(ams), tonumber(bms)
  if ams ~= bms then return ams < bms end
  return tonumber(aseq) <= tonumber(bseq)
end

local mode = ARGV[6]
local mark = false
if mode == 'idempotent' then
  mark = redis.call('HGET', KEYS[3], ARGV[1])
end
local history = ARGV[4] ~= '>'
local from = ARGV[4]
if not history and mode ~= 'idempotent' then
  -- New records need no filtering (only re-reads meet trimmed entries): hand the reply back as is.
  local args = {'XREADGROUP', 'GROUP', ARGV[1], ARGV[5], 'COUNT', ARGV[3]}
  if mode == 'noack' then args[#args + 1] = 'NOACK' end
  args[#args + 1] = 'STREAMS'
  args[#args + 1] = KEYS[1]
  args[#args + 1] = '>'
  local reply = redis.call(unpack(args))
  if not reply then return {{}, {}, ''} end
  local entries = reply[1][2]
  return {entries, {}, entries[#entries] and entries[#entries][1] or ''}
end
-- A re-read covers pending entries up to the group's last-delivered ID only: those after it (left
-- pending when the position was moved back, by a seek or an offset reset) come again through ">",
-- and reading them here too would deliver them twice in one pass.
local upto = false
if history then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = {}
    for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
    if info['name'] == ARGV[1] then upto = info['last-delivered-id'] end
  end
end
local kept, counts, last = {}, {}, ''
local beyond = false
while true do
  local args = {'XREADGROUP', 'GROUP', ARGV[1], ARGV[5], 'COUNT', ARGV[3]}
  if mode == 'noack' and not history then args[#args + 1] = 'NOACK' end
  args[#args + 1] = 'STREAMS'
  args[#args + 1] = KEYS[1]
  args[#args + 1] = from
  local reply = redis.call(unpack(args))
  if not reply or #reply[1][2] == 0 then
    break
  end
  local skipped = {}
  for _, e in ipairs(reply[1][2]) do
    if upto and not id_le(e[1], upto) then
      beyond = true
      break
    end
    last = e[1]
    if not e[2] or (mark and id_le(e[1], mark)) then
      skipped[#skipped + 1] = e[1]
    else
      kept[#kept + 1] = e
    end
  end
  if #skipped > 0 and mode ~= 'noack' then
    redis.call('XACK', KEYS[1], ARGV[1], unpack(skipped))
  end
  -- Only skipped entries: read on, so that an empty reply keeps meaning "nothing left".
  if #kept > 0 or #skipped == 0 or beyond then
    break
  end
  if history then from = last end
end
if mode == 'noack' and history and #kept > 0 then
  -- At-most-once: inherited pending records are handed out once more, then acknowledged.
  local ids = {}
  for j, e in ipairs(kept) do ids[j] = e[1] end
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
end
if history and #kept > 0 and mode ~= 'noack' then
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], kept[1][1], kept[#kept][1], #kept, ARGV[5])
  local by_id = {}
  for _, p in ipairs(pending) do by_id[p[1]] = p[4] end
  for j, e in ipairs(kept) do counts[j] = by_id[e[1]] or 1 end
end
return {kept, counts, last}
