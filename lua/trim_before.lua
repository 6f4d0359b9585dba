-- trim_before: remove a partition's records below an offset (Kafka's DeleteRecords), a bounded
-- part per call: the caller calls again until it answers done.
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- ARGV[1]  offset: records below it go ("" for every stored record)
-- ARGV[2]  most records removed in this call
--
-- Returns: {log start offset after the call, 1 when nothing below the offset is left else 0}
-- Errors:  NOTOPIC when the stream does not exist.
-- Whole stream nodes go with an approximate trim (cheap); the few records of the node holding the
-- offset that sit below it go one by one (XDEL). Offsets of the remaining records never change,
-- and the next offset appended stays where it was (the stream keeps its last ID).
local stream, limit = KEYS[1], tonumber(ARGV[2])
if redis.call('EXISTS', stream) == 0 then
  return redis.error_reply('NOTOPIC partition stream ' .. stream .. ' does not exist')
end
local hw = high_watermark(stream)
local before = hw
if ARGV[1] ~= '' and tonumber(ARGV[1]) < hw then before = tonumber(ARGV[1]) end
local e = find_entry(stream, before)
if e then
  redis.call('XTRIM', stream, 'MINID', '~', e[1], 'LIMIT', limit)
else
  redis.call('XTRIM', stream, 'MAXLEN', '~', 0, 'LIMIT', limit)
end
local left = redis.call('XRANGE', stream, '-', '+', 'COUNT', math.min(limit, 1000))
local ids = {}
for _, entry in ipairs(left) do
  local _, seq = id_parts(entry[1])
  if seq >= before then break end
  ids[#ids + 1] = entry[1]
end
if #ids > 0 then redis.call('XDEL', stream, unpack(ids)) end
local start = log_start(stream)
if start >= before then return {start, 1} end
return {start, 0}
