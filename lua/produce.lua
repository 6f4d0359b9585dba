-- produce: append one or more batches of records to one partition, all or nothing: every batch
-- is checked (arguments, producer sequences, replicas in sync) before the first record is
-- written, so a refusal appends nothing; then each record is stored exactly once per producer
-- sequence, repeated dedup ids are dropped, and the topic's retention is applied.
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- KEYS[2]  producer state hash         facade:{T/P}:pid    producer id -> its last 5 batches, oldest
--                                                          first, joined by ";": each
--                                                          "first_seq last_seq append_ms offsets"
-- KEYS[3]  producer expiry zset        facade:{T/P}:pidx   producer id -> when its state expires (ms)
-- KEYS[4]  dedup id hash               facade:{T/P}:dedup  dedup id -> offset it was stored at
-- KEYS[5]  dedup expiry zset           facade:{T/P}:dedupx dedup id -> when it expires (ms)
-- KEYS[6]  committed offsets hash      facade:{T/P}:off    (read for ack-aware retention only)
-- KEYS[7]  max timestamp string        facade:{T/P}:maxts  "<timestamp ms> <offset>": the largest
--                                                          record timestamp appended, and the
--                                                          first offset that had it
-- ARGV[1]  max_len: approximate count to keep, "" for no count limit
-- ARGV[2]  retention_ms: drop records appended longer ago than this, "" for no age limit
-- ARGV[3]  "acked": trim nothing some consumer group still needs (ack-aware retention), or ""
-- ARGV[4]  producer id expiry (ms): the calling producer's own setting; sets only its own ids'
--          expiry time (now + this), never another id's
-- ARGV[5]  dedup window (ms), the topic's setting (the same for every caller): each dedup id
--          stored now is remembered that long
-- ARGV[6]  dedup ids kept at most on this partition, the topic's setting (oldest dropped first)
-- ARGV[7]  acks="all": how many replicas must be in sync for the call to append anything
--          (attached, online, acknowledged within the last 10 s: Redis's min-replicas-max-lag
--          default); 0 for no check. The producer then WAITs for that many.
-- ARGV[8]  k: number of batches that follow (the SDK sends 1; the Kafka gateway sends all the
--          batches of one partition of one Produce request)
-- ARGV[9…] k batches, each:
--          producer id ("" for a non-idempotent producer), sequence number of the batch's first
--          record (per producer and partition, from 0 to 2^31-1; Kafka's int32 sequences wrap: the
--          sequence after 2147483647 is 0), n (records, >= 1), "plain" when every
--          record is a key and a value only (no headers, no dedup id) else "", create times
--          (CreateTime topics) as runs "<ms> <count> <ms> <count> ..." covering the n records
--          in order, each ms from 0 to 2^53-1 (what a Lua number holds exactly) ("" for
--          LogAppendTime topics: records then carry no "ts" field), then the
--          records: plain: per record its key and its value; otherwise per record: dedup id
--          ("" for none), f (field count, even, >= 2), then f field names and values: "key"
--          (keyed records) and "value" (or "nv", a null value) first, then "h:<name>" per header
--
-- Each record gets the entry ID "<ms>-<offset>": ms is the server clock (or the last entry's ms
-- if the clock went back), offset the partition's next dense offset; the batches follow each
-- other in the order given. A record's "ts" field is append ms minus its create time.
--
-- Producer sequences (Kafka's ProducerStateEntry): each producer id's last 5 batches on the
-- partition are remembered (first and last sequence, append ms, offsets). A producer id's batches
-- in one call must follow each other (each starts at the previous one's last sequence + 1, modulo
-- 2^31; a batch's last sequence is its first + n - 1, modulo 2^31). The first must continue the
-- newest remembered batch, or every batch of the producer id in the call must repeat one of the
-- 5 remembered batches exactly (same first and last sequence): a retry, answered with that batch's
-- original offsets and append ms, nothing appended. A call in which every producer id's batches
-- are retries is a retry; a retry mixed with new batches is refused (OUTOFORDER), as is a batch
-- older than the 5 remembered (Kafka answers OUT_OF_ORDER_SEQUENCE_NUMBER there too).
--
-- Max timestamp (KEYS[7]): each record stored is compared with it: a create time larger than the
-- stored maximum, or an append time (LogAppendTime batch) at least as large, replaces it with the
-- record's offset. Never lowered: trimming does not touch it (readers check the offset is still
-- stored).
--
-- Returns: per batch, in order, three items {offsets, duplicate, ms}: offsets is the batch's first
--          offset when its offsets are consecutive, else its n offsets joined by "," (a record
--          dropped as a repeated dedup id gets the offset of the original); duplicate is 1 when
--          the call was a retry (nothing appended; the original offsets are returned); ms is the
--          append time (the records' LogAppendTime): one for the whole call, or each retried
--          batch's original.
-- Errors (each: nothing appended, no state changed):
--          NOTOPIC when the stream does not exist;
--          BADARG when the arguments do not have the shape above (counts, field lists, create
--          time runs that do not cover their batch, a sequence or a create time out of range);
--          OUTOFORDER when a sequence neither continues the newest remembered batch nor repeats
--          one of the 5 remembered exactly, or a retry is mixed with new batches (the text reads
--          "sent sequence <s> after <last>", <last> the newest remembered batch's last sequence),
--          or a batch does not follow the previous one of its producer id in this call (the text
--          reads "in one call, a batch starting at sequence <s> follows one ending at <last>");
--          NOREPLICAS when fewer replicas than ARGV[7] are in sync (retriable; the text lists the
--          replicas in sync).
-- Bounded work: one pass over the arguments to check them, one XADD and one max timestamp
-- comparison per record (callers bound the records per call: the SDK by batch_size, the gateway
-- by MAX_RECORDS_PER_CALL), at most 5 remembered batches read per producer id; idle
-- producer ids and old dedup ids are expired a few at a time on each call (at most 16 producer
-- ids, 64 expired dedup ids, and n + 64 dedup ids over the cap, n the call's records), each by
-- the expiry time stored with it: memory stays bounded, and no producer's settings shorten
-- another's. A producer id's expiry time is its own producer's (ARGV[4]); a dedup id's comes from
-- the topic's window (ARGV[5]).
local stream, pstate, pindex, dedup, dedupx, off = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local maxts = KEYS[7]
local max_len, retention_ms, acked = ARGV[1], ARGV[2], ARGV[3] == 'acked'
local pid_expiry, dedup_window, dedup_cap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local replicas_needed, k = tonumber(ARGV[7]), ARGV[8]
local FIRST = 9
local SEQUENCES = 2147483648   -- Kafka's sequences are int32: after 2^31-1 comes 0
local KEPT = 5                 -- batches remembered per producer id (Kafka's NUM_BATCHES_TO_RETAIN)
local MAX_TIME = 9007199254740991  -- 2^53-1: the largest create time a Lua number holds exactly

local function whole(v)  -- a non-negative integer, or nil
  local x = tonumber(v)
  if x and x >= 0 and x == math.floor(x) then return x end
  return nil
end

local function bad(text)
  return redis.error_reply('BADARG produce.lua: ' .. text .. '; nothing was appended')
end

-- 1. The arguments: every batch's shape, before anything is read or written.
k = whole(k)
if not k or k < 1 then return bad('the batch count must be a positive integer') end
local nargs = #ARGV
local batches = {}
local total, general = 0, false
local i = FIRST
for b = 1, k do
  if i + 4 > nargs then return bad('batch ' .. b .. ' of ' .. k .. ' is missing') end
  local bt = {pid = ARGV[i], n = whole(ARGV[i + 2]), plain = ARGV[i + 3] == 'plain', head = i + 5}
  if not bt.n or bt.n < 1 then return bad('batch ' .. b .. ': the record count must be a positive integer') end
  if bt.pid ~= '' then
    bt.seq = whole(ARGV[i + 1])
    if not bt.seq or bt.seq >= SEQUENCES then
      return bad('batch ' .. b .. ': the first sequence must be an integer from 0 to 2147483647')
    end
    bt.last = (bt.seq + bt.n - 1) % SEQUENCES
  end
  local at = bt.head
  if bt.plain then
    at = at + 2 * bt.n
  else
    general = true
    for r = 1, bt.n do
      local f = whole(ARGV[at + 1])
      if not f or f < 2 or f % 2 == 1 or (ARGV[at + 2] == 'key' and f < 4) then
        return bad('batch ' .. b .. ', record ' .. r .. ': the field count must be even, >= 2 (4 with a key)')
      end
      at = at + 2 + f
    end
  end
  if at - 1 > nargs then return bad('batch ' .. b .. ': its records run past the arguments') end
  bt.create, bt.left = {}, {}
  local times = ARGV[i + 4]
  if times ~= '' then
    local covered = 0
    for c, m in string.gmatch(times, '(%-?%d+) (%d+)') do
      local created = whole(c)
      if not created or created > MAX_TIME then
        return bad('batch ' .. b .. ': create time ' .. c .. ' is outside 0 to ' .. string.format('%d', MAX_TIME) ..
          ' ms (the range stored exactly)')
      end
      bt.create[#bt.create + 1] = created
      bt.left[#bt.left + 1] = tonumber(m)
      covered = covered + tonumber(m)
    end
    if covered ~= bt.n then
      return bad('batch ' .. b .. ': the create time runs cover ' .. covered .. ' records, not ' .. bt.n)
    end
  end
  batches[b] = bt
  total = total + bt.n
  i = at
end
if i ~= nargs + 1 then return bad((nargs + 1 - i) .. ' arguments after the last batch') end

if redis.call('EXISTS', stream) == 0 then
  return redis.error_reply('NOTOPIC partition stream ' .. stream .. ' does not exist')
end
local now = now_ms()

-- 2. Producer sequences (read only). One unit per producer id: its batches of this call.
-- A producer id's remembered batches, oldest first: {first, last, ms, where} each.
local function remembered(value)
  local out = {}
  for e in string.gmatch(value, '[^;]+') do
    local f, l, m, where = string.match(e, '^(%d+) (%d+) (%d+) (.+)$')
    if f then out[#out + 1] = {first = tonumber(f), last = tonumber(l), ms = tonumber(m), where = where} end
  end
  return out
end

local function kept_text(kept)
  local parts = {}
  for _, e in ipairs(kept) do
    parts[#parts + 1] = string.format('%d %d %d ', e.first, e.last, e.ms) .. e.where
  end
  return table.concat(parts, ';')
end

local function refused(p, u, s, why)
  local seen = {}
  for _, e in ipairs(u.kept) do seen[#seen + 1] = string.format('%d-%d', e.first, e.last) end
  return redis.error_reply('OUTOFORDER producer ' .. p .. ' sent sequence ' .. string.format('%d', s) .. ' after ' ..
    string.format('%d', u.kept[#u.kept].last) .. ' (' .. why .. '; its last batches here: ' ..
    table.concat(seen, ', ') .. ') on ' .. stream)
end

local units, unit_order = {}, {}
local retries = 0
for b = 1, k do
  local bt = batches[b]
  if bt.pid ~= '' then
    local u = units[bt.pid]
    if u == nil then
      u = {kept = {}, batches = {}}
      local state = redis.call('HGET', pstate, bt.pid)
      if state then u.kept = remembered(state) end
      if #u.kept > 0 then
        for _, e in ipairs(u.kept) do
          if e.first == bt.seq then u.retry = true end
        end
        if not u.retry and bt.seq ~= (u.kept[#u.kept].last + 1) % SEQUENCES then
          return refused(bt.pid, u, bt.seq, 'neither the next sequence nor one of its last ' .. KEPT .. ' batches again')
        end
      end
      units[bt.pid] = u
      unit_order[#unit_order + 1] = bt.pid
    else
      local prev = u.batches[#u.batches]
      if bt.seq ~= (prev.last + 1) % SEQUENCES then
        return redis.error_reply('OUTOFORDER producer ' .. bt.pid .. ': in one call, a batch starting at sequence ' ..
          string.format('%d', bt.seq) .. ' follows one ending at ' .. string.format('%d', prev.last) .. ' on ' .. stream)
      end
    end
    if u.retry then
      for _, e in ipairs(u.kept) do
        if e.first == bt.seq and e.last == bt.last then bt.original = e end
      end
      if not bt.original and #u.batches > 0 then
        return refused(bt.pid, u, u.batches[1].seq, 'a retry of an earlier batch, in one call with new batches')
      elseif not bt.original then
        return refused(bt.pid, u, bt.seq, 'a batch ' .. string.format('%d-%d', bt.seq, bt.last) ..
          ' that is not one of its last ' .. KEPT .. ' batches')
      end
    end
    bt.unit = u
    u.batches[#u.batches + 1] = bt
  end
end
for _, p in ipairs(unit_order) do
  if units[p].retry then retries = retries + 1 end
end

-- A retry of remembered batches: their original offsets and append ms, nothing appended.
if retries > 0 then
  for b = 1, k do
    local bt = batches[b]
    if not bt.original then
      for _, p in ipairs(unit_order) do
        local u = units[p]
        if u.retry then
          return refused(p, u, u.batches[1].seq, 'a retry of an earlier batch, in one call with new batches')
        end
      end
    end
  end
  local reply = {}
  for b = 1, k do
    local e = batches[b].original
    reply[#reply + 1] = e.where
    reply[#reply + 1] = 1
    reply[#reply + 1] = e.ms
  end
  for _, p in ipairs(unit_order) do redis.call('ZADD', pindex, now + pid_expiry, p) end
  return reply
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

-- 3. The writes: nothing below refuses.
if #unit_order > 0 then
  for _, idle in ipairs(redis.call('ZRANGEBYSCORE', pindex, '-inf', now, 'LIMIT', 0, 16)) do
    redis.call('HDEL', pstate, idle)
    redis.call('ZREM', pindex, idle)
  end
end

local ms, nxt = append_point(stream, now)

-- XADD arguments of one record at offset ``at``: fields as sent, with "ts" after the value.
local function entry_args(at, head, last, created)
  local args = {'XADD', stream, make_id(ms, at)}
  local value_end = head + 1
  if ARGV[head] == 'key' then value_end = head + 3 end
  for q = head, value_end do args[#args + 1] = ARGV[q] end
  if created then
    args[#args + 1] = 'ts'
    args[#args + 1] = string.format('%d', ms - created)
  end
  for q = value_end + 1, last do args[#args + 1] = ARGV[q] end
  return args
end

-- The largest timestamp stored so far and the first offset that had it.
local best_ts, best_at, best_moved = nil, nil, false
do
  local stored = redis.call('GET', maxts)
  if stored then
    local t, o = string.match(stored, '^(%d+) (%d+)$')
    best_ts, best_at = tonumber(t), tonumber(o)
  end
end
-- A record stored at offset ``at``: its create time, or nil (LogAppendTime: the append ms, which
-- never goes back, so the latest record with it is the one kept).
local function saw(created, at)
  if created then
    if best_ts == nil or created > best_ts then best_ts, best_at, best_moved = created, at, true end
  elseif best_ts == nil or ms >= best_ts then
    best_ts, best_at, best_moved = ms, at, true
  end
end

local reply = {}
for b = 1, k do
  local bt = batches[b]
  local run = 1
  local function next_create()
    if #bt.create == 0 then return nil end
    while bt.left[run] == 0 do run = run + 1 end
    bt.left[run] = bt.left[run] - 1
    return bt.create[run]
  end
  local first = nxt
  local results = nil  -- per-record offsets, only once they stop being consecutive
  local i = bt.head
  if bt.plain then
    for r = 1, bt.n do
      local created = next_create()
      if created then
        redis.call('XADD', stream, make_id(ms, nxt), 'key', ARGV[i], 'value', ARGV[i + 1], 'ts',
          string.format('%d', ms - created))
      else
        redis.call('XADD', stream, make_id(ms, nxt), 'key', ARGV[i], 'value', ARGV[i + 1])
      end
      saw(created, nxt)
      nxt = nxt + 1
      i = i + 2
    end
  else
    for r = 1, bt.n do
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
        for q = #results + 1, r - 1 do results[q] = string.format('%d', first + q - 1) end
        results[r] = original
      else
        redis.call(unpack(entry_args(nxt, i + 2, i + 1 + f, created)))
        saw(created, nxt)
        local stored = string.format('%d', nxt)
        nxt = nxt + 1
        if results then results[r] = stored end
        if id_ ~= '' then
          redis.call('HSET', dedup, id_, stored)
          redis.call('ZADD', dedupx, now + dedup_window, id_)
        end
      end
      i = i + f + 2
    end
  end
  bt.where = results and table.concat(results, ',') or string.format('%d', first)
  reply[#reply + 1] = bt.where
  reply[#reply + 1] = 0
  reply[#reply + 1] = ms
end
if best_moved then redis.call('SET', maxts, string.format('%d %d', best_ts, best_at)) end

if general then
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', dedupx, '-inf', '(' .. now, 'LIMIT', 0, 64)) do
    redis.call('HDEL', dedup, old)
    redis.call('ZREM', dedupx, old)
  end
  local excess = redis.call('ZCARD', dedupx) - dedup_cap
  if excess > 0 then
    -- Bounded: what this call added, plus 64 (a lowered cap is reached over a few calls).
    if excess > total + 64 then excess = total + 64 end
    local popped = redis.call('ZPOPMIN', dedupx, excess)
    for j = 1, #popped, 2 do redis.call('HDEL', dedup, popped[j]) end
  end
end

for _, p in ipairs(unit_order) do
  local u = units[p]
  for _, bt in ipairs(u.batches) do
    u.kept[#u.kept + 1] = {first = bt.seq, last = bt.last, ms = ms, where = bt.where}
  end
  local keep = {}
  for j = math.max(1, #u.kept - KEPT + 1), #u.kept do keep[#keep + 1] = u.kept[j] end
  redis.call('HSET', pstate, p, kept_text(keep))
  redis.call('ZADD', pindex, now + pid_expiry, p)
end

local floor = nil
if acked and (max_len ~= '' or retention_ms ~= '') then
  floor = needed_floor(stream, off) or nil
end
trim(stream, max_len, retention_ms, floor, now)
return reply
