-- produce: append one or more batches of records to one partition, all or nothing: every batch
-- is checked (arguments, producer sequences, replicas in sync) before the first record is
-- written, so a refusal appends nothing; then each record is stored exactly once per producer
-- sequence, repeated dedup ids are dropped, and the topic's retention is applied.
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
--          record (per producer and partition, from 0), n (records, >= 1), "plain" when every
--          record is a key and a value only (no headers, no dedup id) else "", create times
--          (CreateTime topics) as runs "<ms> <count> <ms> <count> ..." covering the n records
--          in order ("" for LogAppendTime topics: records then carry no "ts" field), then the
--          records: plain: per record its key and its value; otherwise per record: dedup id
--          ("" for none), f (field count, even, >= 2), then f field names and values: "key"
--          (keyed records) and "value" (or "nv", a null value) first, then "h:<name>" per header
--
-- Each record gets the entry ID "<ms>-<offset>": ms is the server clock (or the last entry's ms
-- if the clock went back), offset the partition's next dense offset; the batches follow each
-- other in the order given. A record's "ts" field is append ms minus its create time.
--
-- Producer sequences: a producer id's batches in one call must follow each other (each starts at
-- the previous one's last sequence + 1); together they are that producer's "last batch" (its
-- state). The first must continue the stored last batch (its last sequence + 1), or repeat it
-- exactly (same first and last sequence: a retry, answered with the original offsets, nothing
-- appended). A call in which every producer id's batches repeat its last batch is a retry; a
-- retry mixed with new batches is refused (OUTOFORDER).
--
-- Returns: per batch, in order, three items {offsets, duplicate, ms}: offsets is the batch's first
--          offset when its offsets are consecutive, else its n offsets joined by "," (a record
--          dropped as a repeated dedup id gets the offset of the original); duplicate is 1 when
--          the call was a retry of the last batch (nothing appended; the original offsets are
--          returned); ms is the append time (the records' LogAppendTime), one for the whole call.
-- Errors (each: nothing appended, no state changed):
--          NOTOPIC when the stream does not exist;
--          BADARG when the arguments do not have the shape above (counts, field lists, create
--          time runs that do not cover their batch);
--          OUTOFORDER when a sequence skips ahead or goes back past the last batch, or a retry is
--          mixed with new batches (the text reads "sent sequence <s> after <last>", <last> the
--          stored last batch's), or a batch does not follow the previous one of its producer id
--          in this call (the text reads "in one call, a batch starting at sequence <s> follows one
--          ending at <last>");
--          NOREPLICAS when fewer replicas than ARGV[7] are in sync (retriable; the text lists the
--          replicas in sync).
-- Bounded work: one pass over the arguments to check them, one XADD per record (callers bound
-- the records per call: the SDK by batch_size, the gateway by MAX_RECORDS_PER_CALL); idle
-- producer ids and old dedup ids are expired a few at a time on each call (at most 16 producer
-- ids, 64 expired dedup ids, and n + 64 dedup ids over the cap, n the call's records), each by
-- the expiry time stored with it: memory stays bounded, and no producer's settings shorten
-- another's. A producer id's expiry time is its own producer's (ARGV[4]); a dedup id's comes from
-- the topic's window (ARGV[5]).
local stream, pstate, pindex, dedup, dedupx, off = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local max_len, retention_ms, acked = ARGV[1], ARGV[2], ARGV[3] == 'acked'
local pid_expiry, dedup_window, dedup_cap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local replicas_needed, k = tonumber(ARGV[7]), ARGV[8]
local FIRST = 9

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
    if not bt.seq then return bad('batch ' .. b .. ': the first sequence must be an integer >= 0') end
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
      bt.create[#bt.create + 1] = tonumber(c)
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
local units, unit_order = {}, {}
local retries = 0
for b = 1, k do
  local bt = batches[b]
  if bt.pid ~= '' then
    local u = units[bt.pid]
    if u == nil then
      u = {first = bt.seq, last = bt.seq - 1, count = 0}
      local state = redis.call('HGET', pstate, bt.pid)
      if state then
        local pf, pl, pms, prev = string.match(state, '^(%d+) (%d+) (%d+) (.*)$')
        u.prev_first, u.prev_last, u.prev_ms, u.prev = tonumber(pf), tonumber(pl), tonumber(pms), prev
        if bt.seq == u.prev_first then
          u.retry = true
        elseif bt.seq ~= u.prev_last + 1 then
          return redis.error_reply('OUTOFORDER producer ' .. bt.pid .. ' sent sequence ' .. bt.seq ..
            ' after ' .. u.prev_last .. ' on ' .. stream)
        end
      end
      units[bt.pid] = u
      unit_order[#unit_order + 1] = bt.pid
    elseif bt.seq ~= u.last + 1 then
      return redis.error_reply('OUTOFORDER producer ' .. bt.pid .. ': in one call, a batch starting at sequence ' ..
        bt.seq .. ' follows one ending at ' .. u.last .. ' on ' .. stream)
    end
    bt.unit, bt.pos = u, u.count
    u.last = bt.seq + bt.n - 1
    u.count = u.count + bt.n
  end
end
for _, p in ipairs(unit_order) do
  local u = units[p]
  if u.retry then
    if u.last ~= u.prev_last then  -- starts like the last batch but is not the same batch
      return redis.error_reply('OUTOFORDER producer ' .. p .. ' sent sequence ' .. u.first .. ' after ' ..
        u.prev_last .. ' (its last batch was ' .. u.prev_first .. '-' .. u.prev_last .. ', this one ' ..
        u.first .. '-' .. u.last .. ') on ' .. stream)
    end
    retries = retries + 1
  end
end

-- A retry of the producers' last batches: their original offsets, nothing appended.
if retries > 0 then
  for b = 1, k do
    local bt = batches[b]
    if not (bt.unit and bt.unit.retry) then
      local p, u = unit_order[1], units[unit_order[1]]
      for _, q in ipairs(unit_order) do
        if units[q].retry then p, u = q, units[q] break end
      end
      return redis.error_reply('OUTOFORDER producer ' .. p .. ' sent sequence ' .. u.first .. ' after ' ..
        u.prev_last .. ' (a retry of its last batch, in one call with new batches) on ' .. stream)
    end
  end
  local reply = {}
  for b = 1, k do
    local bt, u = batches[b], batches[b].unit
    local offsets
    if string.find(u.prev, ',', 1, true) then
      local all, part = {}, {}
      for o in string.gmatch(u.prev, '[^,]+') do all[#all + 1] = o end
      for q = bt.pos + 1, bt.pos + bt.n do part[#part + 1] = all[q] end
      offsets = table.concat(part, ',')
    else
      offsets = string.format('%d', tonumber(u.prev) + bt.pos)
    end
    reply[#reply + 1] = offsets
    reply[#reply + 1] = 1
    reply[#reply + 1] = u.prev_ms
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
    args[#args + 1] = ms - created
  end
  for q = value_end + 1, last do args[#args + 1] = ARGV[q] end
  return args
end

-- Where a producer's unit went: its first offset while consecutive, else each offset.
local function unit_add(u, first, results, n)
  if not u.list and not results and (u.start == nil or u.expect == first) then
    u.start = u.start or first
    u.expect = first + n
    return
  end
  if not u.list then
    u.list = {}
    if u.start then
      for o = u.start, u.expect - 1 do u.list[#u.list + 1] = string.format('%d', o) end
    end
  end
  for q = 1, n do
    u.list[#u.list + 1] = results and results[q] or string.format('%d', first + q - 1)
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
        redis.call('XADD', stream, make_id(ms, nxt), 'key', ARGV[i], 'value', ARGV[i + 1], 'ts', ms - created)
      else
        redis.call('XADD', stream, make_id(ms, nxt), 'key', ARGV[i], 'value', ARGV[i + 1])
      end
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
  if results then
    reply[#reply + 1] = table.concat(results, ',')
  else
    reply[#reply + 1] = string.format('%d', first)
  end
  reply[#reply + 1] = 0
  reply[#reply + 1] = ms
  if bt.unit then unit_add(bt.unit, first, results, bt.n) end
end

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
  local where = u.list and table.concat(u.list, ',') or string.format('%d', u.start)
  redis.call('HSET', pstate, p, u.first .. ' ' .. u.last .. ' ' .. string.format('%d', ms) .. ' ' .. where)
  redis.call('ZADD', pindex, now + pid_expiry, p)
end

local floor = nil
if acked and (max_len ~= '' or retention_ms ~= '') then
  floor = needed_floor(stream, off) or nil
end
trim(stream, max_len, retention_ms, floor, now)
return reply
