-- produce: append a batch of records to one partition, exactly once per producer sequence,
-- dropping repeated dedup ids, then apply the topic's retention.
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- KEYS[2]  producer state hash         facade:{T/P}:pid    producer id -> "first_seq last_seq ms offsets"
-- KEYS[3]  producer expiry zset        facade:{T/P}:pidx   producer id -> when its state expires (ms)
-- KEYS[4]  dedup id hash               facade:{T/P}:dedup  dedup id -> offset it was stored at
-- KEYS[5]  dedup expiry zset           facade:{T/P}:dedupx dedup id -> when it expires (ms)
-- KEYS[6]  committed offsets hash      facade:{T/P}:off    (read for ack-aware retention only)
-- ARGV[1]  max_len: approximate count to keep, "" for no count limit
-- ARGV[2]  retention_ms: drop records appended longer ago than this, "" for no age limit
-- ARGV[3]  "acked": trim nothing some consumer group still needs (ack-aware retention), or ""
-- ARGV[4]  producer id, "" for a non-idempotent producer
-- ARGV[5]  sequence number of the batch's first record (per producer and partition, from 0)
-- ARGV[6]  producer id expiry (ms): the calling producer's own setting; sets only its own id's
--          expiry time (now + this), never another id's
-- ARGV[7]  dedup window (ms), the topic's setting (the same for every caller): each dedup id
--          stored now is remembered that long
-- ARGV[8]  dedup ids kept at most on this partition, the topic's setting (oldest dropped first)
-- ARGV[9]  n: number of records that follow
-- ARGV[10] "plain" when every record is a key and a value only (no headers, no dedup id), "" if not
-- ARGV[11] create times (CreateTime topics) as runs "<ms> <count> <ms> <count> ..." covering the n
--          records in order; "" for LogAppendTime topics (records then carry no "ts" field)
-- ARGV[12] acks="all": how many replicas must be in sync for the batch to be appended (attached,
--          online, acknowledged within the last 10 s: Redis's min-replicas-max-lag default);
--          0 for no check. The producer then WAITs for that many.
-- ARGV[13…] plain: per record its key and its value
--          otherwise, per record: dedup id ("" for none), f (field count), then f field names and
--          values: "key" (keyed records) and "value" first, then "h:<name>" per header
--
-- Each record gets the entry ID "<ms>-<offset>": ms is the server clock (or the last entry's ms
-- if the clock went back), offset the partition's next dense offset. A record's "ts" field is
-- append ms minus its create time (a small number: the stored record stays compact).
--
-- Returns: {offsets, duplicate, ms}: offsets is the first offset when the batch's offsets are
--          consecutive, else the n offsets joined by "," (a record dropped as a repeated dedup id
--          gets the offset of the original); duplicate is 1 when the whole batch was a retry of
--          the producer's last batch (nothing appended; the original offsets are returned);
--          ms is the batch's append time (the records' LogAppendTime).
-- Errors:  NOTOPIC when the stream does not exist (nothing appended);
--          NOREPLICAS when fewer replicas than ARGV[12] are in sync (nothing appended; retriable;
--          the text lists the replicas in sync);
--          OUTOFORDER when the sequence skips ahead or goes back past the last batch (nothing
--          appended; the producer starts a new producer id).
-- Idle producer ids and old dedup ids are expired a few at a time on each call (at most 16
-- producer ids, 64 expired dedup ids, and n + 64 dedup ids over the cap), each by the expiry time
-- stored with it: memory stays bounded, and no producer's settings shorten another's. A producer
-- id's expiry time is its own producer's (ARGV[6]); a dedup id's comes from the topic's window
-- (ARGV[7]).
local stream, pstate, pindex, dedup, dedupx, off = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local max_len, retention_ms, acked = ARGV[1], ARGV[2], ARGV[3] == 'acked'
local pid, first_seq, pid_expiry = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local dedup_window, dedup_cap = tonumber(ARGV[7]), tonumber(ARGV[8])
local n, plain, times = tonumber(ARGV[9]), ARGV[10] == 'plain', ARGV[11]
local replicas_needed = tonumber(ARGV[12])
local FIRST = 13

if redis.call('EXISTS', stream) == 0 then
  return redis.error_reply('NOTOPIC partition stream ' .. stream .. ' does not exist')
end
local now = now_ms()

if pid ~= '' then
  local state = redis.call('HGET', pstate, pid)
  if state then
    local prev_first, prev_last, prev_ms, prev = string.match(state, '^(%d+) (%d+) (%d+) (.*)$')
    if first_seq == tonumber(prev_first) then
      redis.call('ZADD', pindex, now + pid_expiry, pid)
      return {prev, 1, tonumber(prev_ms)}
    end
    if first_seq ~= tonumber(prev_last) + 1 then
      return redis.error_reply('OUTOFORDER producer ' .. pid .. ' sent sequence ' .. first_seq ..
        ' after ' .. prev_last .. ' on ' .. stream)
    end
  end
  for _, idle in ipairs(redis.call('ZRANGEBYSCORE', pindex, '-inf', now, 'LIMIT', 0, 16)) do
    redis.call('HDEL', pstate, idle)
    redis.call('ZREM', pindex, idle)
  end
end

-- acks="all": refuse before appending when too few replicas are in sync (this server decides, at
-- the moment of the append: a deposed primary whose replicas left refuses, whatever the client
-- believed). A retry of an appended batch (above) is answered anyway: its WAIT decides.
if replicas_needed > 0 then
  local in_sync = replicas_in_sync(10)
  if #in_sync < replicas_needed then
    return redis.error_reply('NOREPLICAS acks=all needs ' .. replicas_needed .. ' replica(s) in sync; ' .. #in_sync ..
      ' in sync now (' .. (table.concat(in_sync, ', ') ~= '' and table.concat(in_sync, ', ') or 'none') ..
      '); nothing was appended')
  end
end

-- Create times, as runs (every record of a batch shares its append ms, so the "ts" delta of a
-- run is computed once).
local ms, offset = append_point(stream, now)
local run_create, run_left, runs = {}, {}, 0
for c, k in string.gmatch(times, '(%-?%d+) (%d+)') do
  runs = runs + 1
  run_create[runs] = tonumber(c)
  run_left[runs] = tonumber(k)
end
local run = 1
local function next_create()
  if runs == 0 then return nil end
  while run_left[run] == 0 do run = run + 1 end
  run_left[run] = run_left[run] - 1
  return run_create[run]
end

-- XADD arguments of one record at offset ``at``: fields as sent, with "ts" after the value.
local function entry_args(at, head, last, created)
  local args = {'XADD', stream, make_id(ms, at)}
  local value_end = head + 1
  if ARGV[head] == 'key' then value_end = head + 3 end
  for k = head, value_end do args[#args + 1] = ARGV[k] end
  if created then
    args[#args + 1] = 'ts'
    args[#args + 1] = ms - created
  end
  for k = value_end + 1, last do args[#args + 1] = ARGV[k] end
  return args
end

local results = nil  -- per-record offsets, only once they stop being consecutive
local i = FIRST
local added = 0
if plain then
  for r = 1, n do
    local created = next_create()
    if created then
      redis.call('XADD', stream, make_id(ms, offset + r - 1), 'key', ARGV[i], 'value', ARGV[i + 1],
        'ts', ms - created)
    else
      redis.call('XADD', stream, make_id(ms, offset + r - 1), 'key', ARGV[i], 'value', ARGV[i + 1])
    end
    i = i + 2
  end
else
  for r = 1, n do
    local id_, f = ARGV[i], tonumber(ARGV[i + 1])
    local created = next_create()
    local original = false
    if id_ ~= '' then
      local expires = redis.call('ZSCORE', dedupx, id_)
      if expires and tonumber(expires) >= now then
        original = redis.call('HGET', dedup, id_)
      end
    end
    if original then
      results = results or {}
      for q = #results + 1, r - 1 do results[q] = string.format('%d', offset + q - 1) end
      results[r] = original
    else
      redis.call(unpack(entry_args(offset + added, i + 2, i + 1 + f, created)))
      local stored = string.format('%d', offset + added)
      added = added + 1
      if results then results[r] = stored end
      if id_ ~= '' then
        redis.call('HSET', dedup, id_, stored)
        redis.call('ZADD', dedupx, now + dedup_window, id_)
      end
    end
    i = i + f + 2
  end
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', dedupx, '-inf', '(' .. now, 'LIMIT', 0, 64)) do
    redis.call('HDEL', dedup, old)
    redis.call('ZREM', dedupx, old)
  end
  local excess = redis.call('ZCARD', dedupx) - dedup_cap
  if excess > 0 then
    -- Bounded: what this batch added, plus 64 (a lowered cap is reached over a few calls).
    if excess > n + 64 then excess = n + 64 end
    local popped = redis.call('ZPOPMIN', dedupx, excess)
    for j = 1, #popped, 2 do redis.call('HDEL', dedup, popped[j]) end
  end
end

local reply
if results then
  reply = table.concat(results, ',')
else
  reply = string.format('%d', offset)
end
if pid ~= '' then
  redis.call('HSET', pstate, pid, first_seq .. ' ' .. (first_seq + n - 1) .. ' ' .. string.format('%d', ms) .. ' ' .. reply)
  redis.call('ZADD', pindex, now + pid_expiry, pid)
end

local floor = nil
if acked and (max_len ~= '' or retention_ms ~= '') then
  floor = needed_floor(stream, off) or nil
end
trim(stream, max_len, retention_ms, floor, now)
return {reply, 0, ms}
