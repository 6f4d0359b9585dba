-- produce: append a batch of records to one partition, then apply the topic's retention.
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- ARGV[1]  max_len: approximate count to keep, "" for no count limit
-- ARGV[2]  retention_ms: drop entries older than this (server clock), "" for no age limit
-- ARGV[3]  n: number of records that follow
-- ARGV[4…] per record: f (field count), then f field names and values, alternating
--          (fields are "key", "value" and "h:<header name>"; the caller encodes them)
--
-- Returns: the n new entry IDs, in order.
-- Errors:  NOTOPIC when the stream does not exist (the topic was deleted or never created);
--          nothing is appended then.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOTOPIC partition stream ' .. KEYS[1] .. ' does not exist')
end
local n = tonumber(ARGV[3])
local ids = {}
local i = 4
for r = 1, n do
  local f = tonumber(ARGV[i])
  ids[r] = redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 1, i + f))
  i = i + f + 1
end
if ARGV[1] ~= '' then
  redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[1])
end
if ARGV[2] ~= '' then
  local t = redis.call('TIME')
  local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[2])
  if cutoff > 0 then
    redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d', cutoff))
  end
end
return ids
