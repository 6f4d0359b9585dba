-- produce: append a batch of records to one partition, exactly once per producer sequence,
-- dropping repeated dedup ids, then apply the topic's retention.
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- KEYS[2]  producer state hash         facade:{T/P}:pid    producer id -> "first_seq last_seq id,id,..."
-- KEYS[3]  producer last-use zset      facade:{T/P}:pidx   producer id -> last append (ms)
-- KEYS[4]  dedup id hash               facade:{T/P}:dedup  dedup id -> offset it was stored at
-- KEYS[5]  dedup last-use zset         facade:{T/P}:dedupx dedup id -> append time (ms)
-- ARGV[1]  max_len: approximate count to keep, "" for no count limit
-- ARGV[2]  retention_ms: drop entries older than this (server clock), "" for no age limit
-- ARGV[3]  producer id, "" for a non-idempotent producer
-- ARGV[4]  sequence number of the batch's first record (per producer and partition, from 0)
-- ARGV[5]  producer id expiry: state of a producer idle this long (ms) is dropped
-- ARGV[6]  dedup window (ms): a dedup id seen within it is not appended again
-- ARGV[7]  dedup ids kept at most per partition (oldest dropped first)
-- ARGV[8]  n: number of records that follow
-- ARGV[9]  "acked" to trim only entries every consumer group has acknowledged, "" otherwise
-- ARGV[10] "plain" when every record is a key and a value only (no headers, no dedup id), "" if not
-- ARGV[11…] plain: per record its key and its value (2 values each; stored as fields "key", "value")
--          otherwise, per record: dedup id ("" for none), f (field count), then f field names and
--          values (fields are "key", "value" and "h:<header name>"; the caller encodes them)
--
-- Returns: {ids, duplicate}: ids is the n offsets in order joined by "," (for a record dropped as a
--          repeated dedup id, the offset of the original; one string rather than n: cheaper to
--          build, send and parse), and duplicate is 1 when the whole batch was a retry of the
--          producer's last batch (nothing appended; the original offsets are returned), else 0.
-- Errors:  NOTOPIC when the stream does not exist (nothing appended);
--          OUTOFORDER when the sequence skips ahead or goes back past the last batch (nothing
--          appended; the producer starts a new producer id).
-- Dedup state is per producer and partition (one batch), not per record, and idle producer ids
-- and old dedup ids are expired a few at a time on each call: memory stays bounded.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOTOPIC partition stream ' .. KEYS[1] .. ' does not exist')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pid = ARGV[3]
local n = tonumber(ARGV[8])
local first_seq = tonumber(ARGV[4])

if pid ~= '' then
  local state = redis.call('HGET', KEYS[2], pid)
  if state then
    local prev_first, prev_last, prev_ids = string.match(state, '^(%d+) (%d+) (.*)$')
    prev_first, prev_last = tonumber(prev_first), tonumber(prev_last)
    if first_seq == prev_first then
      redis.call('ZADD', KEYS[3], now, pid)
      return {prev_ids, 1}
    end
    if first_seq ~= prev_last + 1 then
      return redis.error_reply('OUTOFORDER producer ' .. pid .. ' sent sequence ' .. first_seq ..
        ' after ' .. prev_last .. ' on ' .. KEYS[1])
    end
  end
  for _, idle in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[5]), 'LIMIT', 0, 16)) do
    redis.call('HDEL', KEYS[2], idle)
    redis.call('ZREM', KEYS[3], idle)
  end
end

local window = tonumber(ARGV[6])
local ids = {}
local i = 11
local used_dedup = false
if ARGV[10] == 'plain' then
  for r = 1, n do
    ids[r] = redis.call('XADD', KEYS[1], '*', 'key', ARGV[i], 'value', ARGV[i + 1])
    i = i + 2
  end
else
  for r = 1, n do
    local dedup = ARGV[i]
    local f = tonumber(ARGV[i + 1])
    local original = false
    if dedup ~= '' then
      used_dedup = true
      local seen = redis.call('ZSCORE', KEYS[5], dedup)
      if seen and tonumber(seen) >= now - window then
        original = redis.call('HGET', KEYS[4], dedup)
      end
    end
    if original then
      ids[r] = original
    else
      ids[r] = redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 2, i + 1 + f))
      if dedup ~= '' then
        redis.call('HSET', KEYS[4], dedup, ids[r])
        redis.call('ZADD', KEYS[5], now, dedup)
      end
    end
    i = i + f + 2
  end
end

if used_dedup then
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. (now - window), 'LIMIT', 0, 64)) do
    redis.call('HDEL', KEYS[4], old)
    redis.call('ZREM', KEYS[5], old)
  end
  local excess = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[7])
  if excess > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[5], excess)
    for j = 1, #popped, 2 do redis.call('HDEL', KEYS[4], popped[j]) end
  end
end
local joined = table.concat(ids, ',')
if pid ~= '' then
  redis.call('HSET', KEYS[2], pid, first_seq .. ' ' .. (first_seq + n - 1) .. ' ' .. joined)
  redis.call('ZADD', KEYS[3], now, pid)
end

-- Ack-aware retention: nothing at or after the oldest entry some group still needs is trimmed.
-- A group needs its oldest pending entry, or else everything after its last-delivered ID.
local floor = false
if ARGV[9] == 'acked' and (ARGV[1] ~= '' or ARGV[2] ~= '') then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = {}
    for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
    local need
    if tonumber(info['pending']) > 0 then
      need = redis.call('XPENDING', KEYS[1], info['name'])[2]
    else
      local ms, seq = string.match(info['last-delivered-id'], '^(%d+)-(%d+)$')
      need = ms .. '-' .. (tonumber(seq) + 1)
    end
    local nms, nseq = string.match(need, '^(%d+)-(%d+)$')
    nms, nseq = tonumber(nms), tonumber(nseq)
    if not floor or nms < floor[1] or (nms == floor[1] and nseq < floor[2]) then
      floor = {nms, nseq}
    end
  end
end
if floor then
  if ARGV[1] ~= '' then
    -- MAXLEN would drop the oldest (len - max_len) entries: drop at most those, and none the floor keeps.
    local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[1])
    if excess > 0 then
      redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d-%d', floor[1], floor[2]), 'LIMIT', excess)
    end
  end
  if ARGV[2] ~= '' then
    local cutoff = floor
    if now - tonumber(ARGV[2]) < floor[1] then cutoff = {now - tonumber(ARGV[2]), 0} end
    if cutoff[1] > 0 then
      redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d-%d', cutoff[1], cutoff[2]))
    end
  end
else
  if ARGV[1] ~= '' then
    redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[1])
  end
  if ARGV[2] ~= '' then
    local cutoff = now - tonumber(ARGV[2])
    if cutoff > 0 then
      redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d', cutoff))
    end
  end
end
return {joined, 0}
