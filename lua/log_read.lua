-- log_read: read a partition's records from an offset, outside any consumer group (what Kafka's
-- Fetch does: the reader keeps its own position), with the log's bounds read in the same step.
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- ARGV[1]  offset n: the first record returned is the first stored with offset >= n
-- ARGV[2]  count: most records returned (the caller bounds it)
-- ARGV[3]  hint: the entry ID of record n - 1 when the caller read it last time, or "": saves the
--          search for n (checked: a hint that is not exactly a stored ID is ignored)
--
-- Returns: {log start offset, high watermark, last generated ID, entries}; entries are XRANGE's
--          [ID, [field, value, ...]] pairs, empty when n is the high watermark. An n outside
--          [log start, high watermark] returns no entries: the caller answers
--          OFFSET_OUT_OF_RANGE from the bounds.
-- Errors:  NOTOPIC when the stream does not exist.
-- Bounded: XINFO STREAM, at most ~45 single-entry probes to find n (none with a good hint), one
-- XRANGE of at most count entries.
local stream = KEYS[1]
local n, count, hint = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]

if redis.call('EXISTS', stream) == 0 then
  return redis.error_reply('NOTOPIC partition stream ' .. stream .. ' does not exist')
end
local info = stream_info(stream)
if n < info.start or n >= info.hw or count < 1 then
  return {info.start, info.hw, info.last_id, {}}
end
local entries = nil
if hint ~= '' then
  local at = redis.call('XRANGE', stream, hint, hint)
  local _, seq = id_parts(hint)
  if #at == 1 and seq == n - 1 then
    entries = redis.call('XRANGE', stream, '(' .. hint, '+', 'COUNT', count)
  end
end
if not entries then
  local first = find_entry(stream, n)
  entries = first and redis.call('XRANGE', stream, first[1], '+', 'COUNT', count) or {}
end
return {info.start, info.hw, info.last_id, entries}
