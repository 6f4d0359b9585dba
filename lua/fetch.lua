#!lua flags=allow-oom
-- fetch: read the next records of one partition for its owner, after applying what rides along
-- (an asynchronous commit, where the read starts, how far the application got).
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- KEYS[2]  partition owners hash       facade:{T/P}:own   group -> owner token
-- KEYS[3]  committed offsets hash      facade:{T/P}:off   group -> "<offset>[ <metadata>]"
-- KEYS[4]  delivery state hash         facade:{T/P}:dlv   (see claim.lua)
-- ARGV[1]  group id
-- ARGV[2]  owner token                 "<member id>|<session nonce>"
-- ARGV[3]  count: at most this many records; 0 reads nothing (only what rides along is applied)
-- ARGV[4]  from: "" to go on from the group's position, or an offset to read from (after a read
--          whose reply was lost, or a record given back with fail())
-- ARGV[5]  commit: "" or an offset to commit first (commit(asynchronous=True) rides on reads)
-- ARGV[6]  handed: "" to leave it; "read" when the records this call returns are handed to the
--          application now ("reads": one record, the only one the consumer's poll hands out,
--          while finding a record that crashes its consumer); or "<offset>": the last offset
--          handed to the application so far. With
--          "read"/"reads" the application is back for more, so a record it was handed alone
--          before ("<offset>s") did not crash it: that mark stops counting as a failure first.
-- ARGV[7]  failed: offsets the application failed (fail()), space-separated, or "": each counts
--          towards max_deliveries; "<offset>:<n>" says this failure makes n (the owner's count),
--          so that a report sent again after a lost reply counts once (skipped when n are there)
-- ARGV[8]  "noack" (at-most-once): the records read are committed in the same step, else ""
-- ARGV[9]  auto_offset_reset for a "from" outside the log: earliest, latest or none
-- ARGV[10] where: "" or, without "from", "<last-delivered ID> <offset>": where the caller's reads
--          left the group's position (its last read's last ID, the next offset). The read starts
--          there, so a call run twice (redis-py sends a pipeline again when its connection drops
--          after sending) reads the same records again instead of the ones after them.
--
-- Returns: {entries, position ID, position}: the entries read ({id, fields} each, as XREADGROUP
--          gives them; IDs are "<append ms>-<offset>"), possibly none; position ID is the stream
--          group's last-delivered ID when "from" moved it and nothing was read, else ""; position
--          is where the read started after a "from" (auto_offset_reset may have moved it: a
--          trimmed offset), else "".
-- Errors:  FENCED when the token is not the partition's current owner (nothing changes);
--          NOTOPIC when the stream is gone; OUTOFRANGE for a "from" outside the log with policy none.
-- Reads use NOACK: the stream group's last-delivered ID is the fetch position, nothing is kept in
-- a pending list, and what is redelivered after a handover is decided by the committed offset.
local stream, own, off, dlv = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, token, count = ARGV[1], ARGV[2], ARGV[3]
local from, commit, handed, failed = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local noack, policy, where = ARGV[8] == 'noack', ARGV[9], ARGV[10] or ''

if redis.call('HGET', own, group) ~= token then
  return fenced(stream, group)
end
if redis.call('EXISTS', stream) == 0 then
  return redis.error_reply('NOTOPIC partition stream ' .. stream .. ' does not exist')
end
if commit ~= '' then
  redis.call('HSET', off, group, commit)
end
if handed == 'read' or handed == 'reads' then
  survived(dlv, group)
end
local lowest = nil
for text, n in string.gmatch(failed, '(%d+):?(%d*)') do
  local at = tonumber(text)
  local _, now = due_for_dead_letters(dlv, group, at, 0)
  if now ~= 'd' and (n == '' or tonumber(now) < tonumber(n)) then
    record_failure(dlv, group, at)
  end
  if lowest == nil or at < lowest then lowest = at end
end
if lowest ~= nil then
  -- Records from the failed one on are handed out again: the application has not been handed
  -- them in this tenure any more (the failure already counts their next delivery).
  local last = tonumber(string.match(redis.call('HGET', dlv, group) or '', '^(%d+)'))
  if last ~= nil and last >= lowest then
    if lowest == 0 then redis.call('HDEL', dlv, group) else redis.call('HSET', dlv, group, lowest - 1) end
  end
end
local moved, position = '', ''
if from ~= '' then
  local si = stream_info(stream)
  local hw = si.hw
  local at, err = resolve_offset(tonumber(from), si.start, hw, policy)
  if err then return err end
  local id, bad = set_group_position(stream, group, at, hw)
  if bad then return bad end
  moved, position = id, at
elseif where ~= '' then
  local id, n = string.match(where, '^(%S+) (%d+)$')
  redis.call('XGROUP', 'SETID', stream, group, id, 'ENTRIESREAD', n)
end
local entries = {}
if tonumber(count) > 0 then
  local reply = redis.call('XREADGROUP', 'GROUP', group, 'owner', 'COUNT', count, 'NOACK', 'STREAMS', stream, '>')
  entries = reply and reply[1][2] or {}
end
if noack and #entries > 0 then
  local _, last = id_parts(entries[#entries][1])
  redis.call('HSET', off, group, last + 1)
end
if handed == 'read' or handed == 'reads' then
  if #entries > 0 then
    local _, last = id_parts(entries[#entries][1])
    if handed == 'reads' then last = string.format('%ds', last) end
    redis.call('HSET', dlv, group, last)
  end
elseif handed ~= '' then
  redis.call('HSET', dlv, group, handed)
end
if #entries > 0 then moved = '' end
return {entries, moved, position}
