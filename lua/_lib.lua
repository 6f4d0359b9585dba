-- _lib: the prelude loaded in front of every script (facade/scripts.py joins them), so that each
-- helper below is written once. It reads no KEYS or ARGV of its own and only defines locals.
--
-- Offsets: a record's stream entry ID is "<ms>-<offset>": ms is the append time (never going back,
-- so IDs stay increasing when the server clock does), offset is dense per partition (0, 1, 2, ...).
-- A consumer group's fetch position is its stream group's last-delivered ID; "position n" means
-- the next record read is the first with offset >= n.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- "ms-seq" -> ms, seq (numbers; both stay far below 2^53 for offsets and epoch milliseconds)
local function id_parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function make_id(ms, seq)
  return string.format('%d-%d', ms, seq)
end

local function fenced(stream, group)
  return redis.error_reply('FENCED this member no longer owns ' .. stream .. ' in group ' .. group)
end

-- What XINFO STREAM says of a stream, read once: length, last generated ID (kept by the server
-- after trimming and deletion, so the next offset never goes back), the first and last stored
-- offsets (nil when empty), the high watermark (next offset) and the log start offset. Records
-- themselves are not read (producers may not read them).
local function stream_info(stream)
  local info = redis.call('XINFO', 'STREAM', stream)
  local out = {length = 0, last_id = '0-0'}
  for j = 1, #info, 2 do
    local k, v = info[j], info[j + 1]
    if k == 'length' then
      out.length = v
    elseif k == 'last-generated-id' then
      out.last_id = v
    elseif k == 'first-entry' and v then
      out.first = select(2, id_parts(v[1]))
    elseif k == 'last-entry' and v then
      out.last = select(2, id_parts(v[1]))
    end
  end
  -- "0-0" means nothing was ever appended (XADD never makes that ID).
  out.hw = 0
  if out.last_id ~= '0-0' then out.hw = select(2, id_parts(out.last_id)) + 1 end
  out.start = out.first or out.hw
  return out
end

local function last_generated(stream)
  return stream_info(stream).last_id
end

-- The replicas attached to this server that are in sync: online and acknowledged within max_lag
-- seconds (INFO replication: "slaveN:ip=...,port=...,state=online,offset=...,lag=..."), as
-- "ip:port" strings. Bounded by the number of replicas.
local function replicas_in_sync(max_lag)
  local out = {}
  local info = redis.call('INFO', 'replication')
  for ip, port, state, lag in string.gmatch(info, 'slave%d+:ip=([^,]*),port=(%d+),state=(%a+),offset=%d+,lag=(%d+)') do
    if state == 'online' and tonumber(lag) <= max_lag then
      out[#out + 1] = ip .. ':' .. port
    end
  end
  return out
end

-- The next offset (Kafka's high watermark / log end offset).
local function high_watermark(stream)
  return stream_info(stream).hw
end

-- The offset of the oldest stored record (Kafka's log start offset); the high watermark when
-- the partition is empty.
local function log_start(stream)
  return stream_info(stream).start
end

-- Where the next appended record goes: its ms (the server clock, or the last ID's ms if the
-- clock went back, so IDs keep increasing) and its offset (the last generated offset + 1: right
-- even when the newest records were deleted, so an offset is never given twice).
local function append_point(stream, now)
  local id = last_generated(stream)
  local ms, seq = id_parts(id)
  local nxt = seq + 1
  if id == '0-0' then nxt = 0 end
  if now > ms then ms = now end
  return ms, nxt
end

-- The first stored entry with offset >= n, or nil. Bounded work: a binary search over the
-- milliseconds part (offsets and ms both only grow along the stream), at most ~45 probes.
local function find_entry(stream, n)
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  if not first then return nil end
  local lo, fseq = id_parts(first[1])
  if fseq >= n then return first end
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
  local hi, lseq = id_parts(last[1])
  if lseq < n then return nil end
  -- Largest ms m with (first entry at or after m-0).offset <= n: entry n, if stored, is at m.
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    local e = redis.call('XRANGE', stream, make_id(mid, 0), '+', 'COUNT', 1)[1]
    local _, s = id_parts(e[1])
    if s <= n then lo = mid else hi = mid - 1 end
  end
  return redis.call('XRANGE', stream, make_id(lo, n), '+', 'COUNT', 1)[1]
end

-- The last-delivered ID that makes offset n the next one a stream group reads (n within
-- [log start, high watermark]; hw is the high watermark, passed in when the caller has it).
local function position_id(stream, n, hw)
  if n <= 0 then return '0-0' end
  if n >= hw then return last_generated(stream) end
  local e = find_entry(stream, n)
  if not e then return last_generated(stream) end
  local ms, seq = id_parts(e[1])
  if seq == 0 then return '0-0' end
  return make_id(ms, seq - 1)
end

-- Move (creating it if needed) the group's stream group so that offset n is read next.
-- ENTRIESREAD keeps XINFO GROUPS' lag right for redis-cli users (offsets are dense).
-- Returns the new last-delivered ID, and an error reply or nil.
local function set_group_position(stream, group, n, hw)
  local id = position_id(stream, n, hw)
  local ok = redis.pcall('XGROUP', 'CREATE', stream, group, id, 'ENTRIESREAD', n)
  if type(ok) == 'table' and ok.err then
    if string.sub(ok.err, 1, 9) ~= 'BUSYGROUP' then return id, ok end
    redis.call('XGROUP', 'SETID', stream, group, id, 'ENTRIESREAD', n)
  end
  return id, nil
end

-- The group's fetch position on the stream (next offset it reads), or nil without a stream group.
local function group_position(stream, group)
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local name, last = nil, nil
    for j = 1, #g, 2 do
      if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then last = g[j + 1] end
    end
    if name == group then
      if last == '0-0' then return 0 end
      local _, seq = id_parts(last)
      return seq + 1
    end
  end
  return nil
end

-- Resolve an out-of-range offset as Kafka's auto.offset.reset does: "earliest" goes to the log
-- start, "latest" to the high watermark, "none" refuses; "clamp" (operators' resets, as
-- kafka-consumer-groups does) takes the nearer end. Returns the offset, or nil and an error.
local function resolve_offset(n, start, hw, policy)
  if n ~= nil and n >= start and n <= hw then return n end
  if policy == 'clamp' and n ~= nil then
    if n < start then return start end
    return hw
  end
  if policy == 'earliest' or policy == 'clamp' then return start end
  if policy == 'latest' then return hw end
  if n == nil then
    return nil, redis.error_reply('NOOFFSET no committed offset and auto_offset_reset is none')
  end
  return nil, redis.error_reply('OUTOFRANGE offset ' .. n .. ' is outside [' .. start .. ', ' .. hw .. ']')
end

-- Per-partition committed offsets: "<offset>" or "<offset> <metadata>" (Kafka's commit metadata).
local function committed_offset(off, group)
  local v = redis.call('HGET', off, group)
  if not v then return nil end
  return tonumber(string.match(v, '^(%d+)'))
end

-- Remove members whose session deadline passed (at most 100 per call: bounded work; the rest go
-- at the next call). Every removal starts a new generation, and the current assignment, which
-- may name a removed member, is kept only as the previous one (for sticky strategies).
local function bump_generation(state)
  local current = redis.call('HGET', state, 'assignment')
  if current then
    redis.call('HSET', state, 'previous', current)
    redis.call('HDEL', state, 'assignment', 'assignment_generation')
  end
  return redis.call('HINCRBY', state, 'generation', 1)
end

local function expire_members(state, members, deadlines, now, keep)
  local dead = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now, 'LIMIT', 0, 100)
  local removed = 0
  for _, m in ipairs(dead) do
    if m ~= keep then
      redis.call('HDEL', members, m)
      redis.call('ZREM', deadlines, m)
      removed = removed + 1
    end
  end
  if removed > 0 then bump_generation(state) end
  return removed
end

-- A member's stored value is "<session nonce> <metadata JSON>"; its owner tokens are
-- "<member id>|<session nonce>" (facade/keys.py owner_token builds them).
local function member_nonce(value)
  return string.match(value, '^(%S+)')
end

-- Apply a topic's retention after an append: max_len (approximate: whole stream nodes, so a few
-- more may stay) and retention_ms (by append time, server clock). With ``floor`` (ack-aware
-- retention: the lowest offset some group still needs) nothing at or above the floor goes: at
-- most floor - log start records are removed, counted from the dense offsets (a stream with a
-- hole, left by XDEL, is not trimmed then: the count would not be safe). Bounded: approximate
-- trims stop after 100 nodes per call; the rest goes at later appends.
local function trim(stream, max_len, retention_ms, floor, now)
  local cutoff = nil
  if retention_ms ~= '' and now - tonumber(retention_ms) > 0 then cutoff = now - tonumber(retention_ms) end
  if floor == nil then
    if max_len ~= '' then redis.call('XTRIM', stream, 'MAXLEN', '~', max_len) end
    if cutoff then redis.call('XTRIM', stream, 'MINID', '~', make_id(cutoff, 0)) end
    return
  end
  local s = stream_info(stream)
  if not s.first or floor <= s.first or s.last - s.first + 1 ~= s.length then return end
  local below = floor - s.first  -- records under the floor
  if max_len ~= '' and s.length > tonumber(max_len) then
    local drop = math.min(s.length - tonumber(max_len), below)
    below = below - redis.call('XTRIM', stream, 'MAXLEN', '~', s.length - drop)
  end
  if cutoff and below > 0 then
    redis.call('XTRIM', stream, 'MINID', '~', make_id(cutoff, 0), 'LIMIT', below)
  end
end

-- The lowest offset any consumer group still needs on this stream: its committed offset, or
-- its fetch position when it committed nothing here. nil when no group reads it.
local function needed_floor(stream, off)
  local floor = nil
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local name, last = nil, nil
    for j = 1, #g, 2 do
      if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then last = g[j + 1] end
    end
    local need = committed_offset(off, name)
    if need == nil then
      need = 0
      if last ~= '0-0' then need = select(2, id_parts(last)) + 1 end
    end
    if floor == nil or need < floor then floor = need end
  end
  return floor
end

-- Delivery state (facade:{T/P}:dlv), per group: field <group> is the last offset handed to the
-- application in the current tenure ("<offset>" or "<offset>s" when handed one at a time);
-- <group>:r lists "<from> <to>" ranges each handed out once more before a handover (a redelivery
-- count for every offset they cover); <group>:f lists "<offset> <failures>" pairs (fail(), or a
-- crash while the record was the only one handed out), "d" meaning moved to the dead letters.
local function read_pairs(text)
  local out = {}
  if text then
    for a, b in string.gmatch(text, '(%S+) (%S+)') do out[#out + 1] = {a, b} end
  end
  return out
end

-- Keep the newest 64 pairs whose pair[at] is at or above ``floor`` (the committed offset; nil
-- keeps all): the state stays bounded whatever happens.
local function write_pairs(dlv, field, list, floor, at)
  local kept = {}
  for j = #list, 1, -1 do
    if #kept >= 64 then break end
    local p = list[j]
    if floor == nil or tonumber(p[at]) >= floor then table.insert(kept, 1, p[1] .. ' ' .. p[2]) end
  end
  if #kept == 0 then
    redis.call('HDEL', dlv, field)
  else
    redis.call('HSET', dlv, field, table.concat(kept, ' '))
  end
end

-- One more delivery of offsets from..to ended without a commit (a handover, or fail()).
local function record_redelivery(dlv, group, from, to)
  local list = read_pairs(redis.call('HGET', dlv, group .. ':r'))
  list[#list + 1] = {string.format('%d', from), string.format('%d', to)}
  write_pairs(dlv, group .. ':r', list, nil, 2)
end

-- One more failure of the record at ``at`` towards max_deliveries ("d" stays: it was moved to
-- the dead letters already).
local function add_failure(dlv, group, at, floor)
  local field = group .. ':f'
  local list = read_pairs(redis.call('HGET', dlv, field))
  local found = false
  for _, p in ipairs(list) do
    if tonumber(p[1]) == at then
      if p[2] ~= 'd' then p[2] = tostring(tonumber(p[2]) + 1) end
      found = true
    end
  end
  if not found then list[#list + 1] = {string.format('%d', at), '1'} end
  write_pairs(dlv, field, list, floor, 1)
end

-- The record handed out alone ("<offset>s") did not crash its consumer: it came back for more
-- (its next read), or gave the partition up in good order (release "clean"). The mark stays a
-- delivery (a handover counts it once more) but no longer a failure.
local function survived(dlv, group)
  local n = string.match(redis.call('HGET', dlv, group) or '', '^(%d+)s$')
  if n then redis.call('HSET', dlv, group, n) end
end

-- Whether the record at ``at`` failed at least ``need`` times (fail(), or a crash while it was
-- handed out alone) and is not dead-lettered yet: only such a record may go to the dead letters.
-- Returns that, and its failure count ("d" when dead-lettered already, 0 when none is recorded).
local function due_for_dead_letters(dlv, group, at, need)
  for _, p in ipairs(read_pairs(redis.call('HGET', dlv, group .. ':f'))) do
    if tonumber(p[1]) == at then
      if p[2] == 'd' then return false, 'd' end
      return tonumber(p[2]) >= need, p[2]
    end
  end
  return false, '0'
end

-- The application failed the record at ``at`` (fail()): a failure, and a delivery that ended.
local function record_failure(dlv, group, at)
  add_failure(dlv, group, at, nil)
  record_redelivery(dlv, group, at, at)
end

-- Kafka-protocol groups (facade gateway: JoinGroup, SyncGroup, ...; the kafka_* scripts). They
-- share the SDK groups' keys (state, members, deadlines: so `facade groups` reads both kinds)
-- and add one hash, facade:{g/G}:kafka, per member: "j:<id>" its join ("w": waiting in a
-- JoinGroup for the next generation; "<n>": joined generation n), "a:<id>" its assignment bytes
-- of the current generation, "n:<id>" its group.instance.id, "s:<id>" its session timeout (ms),
-- "p:<id>" its protocol names (JSON list, the client's order), "h:<id>" a digest of its
-- protocols with their metadata, "m:<id>" the protocols with their metadata (packed by the
-- gateway, at most its max_member_metadata_bytes; never read by a script: the gateway reads it
-- with HMGET for the leader's JoinGroup answer and DescribeGroups), "t:<id>" the token of its
-- latest JoinGroup (a JoinGroup whose client went away is withdrawn only if it is still the
-- latest: kafka_join_cancel); and "c:<name>" -> how many members (with "p:") list protocol
-- <name>, "c" -> how many members have "p:" (Kafka's supportedProtocols: a join is checked
-- against these counts, not by reading every member); and "i:<instance>" -> member id.
-- The members hash keeps "kafka <JSON>" (topics, host, client_id: what `facade groups describe`
-- shows) and is never decoded by a kafka_* script: each script's work is O(members) on small
-- fields, whatever the members' metadata sizes.
-- State fields: phase (empty | joining | syncing | stable: Kafka's Empty, PreparingRebalance,
-- CompletingRebalance, Stable), join_deadline (ms: the joining phase ends then, whoever has not
-- rejoined is removed), initial ("1": the first join into an empty group waits that long for
-- others), rebalance_ms (the largest rebalance timeout of the members), leader, ptype (protocol
-- type, "consumer"), pname (the chosen assignor), sync_deadline (ms: the leader's SyncGroup is
-- due by then), waiting (how many members wait in JoinGroup: a hint that spares a walk of the
-- members at each look; kafka_join_wait checks it before forming). The generation grows only when a join phase
-- completes (Kafka's), not at each removal (the SDK's bump_generation), so commits of the
-- current generation stay valid while a rebalance forms.

local function kafka_start_rebalance(state, now)
  local current = redis.call('HGET', state, 'assignment')
  if current then
    redis.call('HSET', state, 'previous', current)
    redis.call('HDEL', state, 'assignment', 'assignment_generation')
  end
  local wait = tonumber(redis.call('HGET', state, 'rebalance_ms') or '300000')
  redis.call('HSET', state, 'phase', 'joining', 'join_deadline', now + wait)
  redis.call('HDEL', state, 'initial', 'sync_deadline')
end

-- Count (delta 1) or uncount (delta -1) a member's protocol names in "c:<name>" and "c".
local function kafka_count(kafka, names_json, delta)
  if not names_json then return end
  for _, name in ipairs(cjson.decode(names_json)) do
    if redis.call('HINCRBY', kafka, 'c:' .. name, delta) <= 0 then redis.call('HDEL', kafka, 'c:' .. name) end
  end
  if redis.call('HINCRBY', kafka, 'c', delta) <= 0 then redis.call('HDEL', kafka, 'c') end
end

-- Forget one member (expired, left, not rejoined in time, its JoinGroup's client went away, or
-- replaced by a newer process of its static instance). The caller then calls kafka_changed once.
local function kafka_forget(state, members, deadlines, kafka, m)
  if redis.call('HGET', kafka, 'j:' .. m) == 'w' then redis.call('HINCRBY', state, 'waiting', -1) end
  local instance = redis.call('HGET', kafka, 'n:' .. m)
  if instance and redis.call('HGET', kafka, 'i:' .. instance) == m then
    redis.call('HDEL', kafka, 'i:' .. instance)
  end
  kafka_count(kafka, redis.call('HGET', kafka, 'p:' .. m), -1)
  redis.call('HDEL', members, m)
  redis.call('ZREM', deadlines, m)
  redis.call('HDEL', kafka, 'j:' .. m, 'a:' .. m, 'n:' .. m, 's:' .. m, 'p:' .. m, 'h:' .. m, 'm:' .. m, 't:' .. m)
end

-- Keep a member's session for its session timeout (stored at its join) from now.
local function kafka_touch(deadlines, kafka, m, now)
  redis.call('ZADD', deadlines, now + tonumber(redis.call('HGET', kafka, 's:' .. m) or '45000'), m)
end

-- After members were removed: an empty group moves to a new (empty) generation; otherwise the
-- others must rejoin (a rebalance starts, unless one is forming already).
local function kafka_changed(state, members, now)
  if redis.call('HLEN', members) == 0 then
    local current = redis.call('HGET', state, 'assignment')
    if current then redis.call('HSET', state, 'previous', current) end
    redis.call('HDEL', state, 'assignment', 'assignment_generation', 'leader', 'join_deadline', 'initial',
      'sync_deadline', 'waiting')
    redis.call('HSET', state, 'phase', 'empty')
    redis.call('HINCRBY', state, 'generation', 1)
  elseif redis.call('HGET', state, 'phase') ~= 'joining' then
    kafka_start_rebalance(state, now)
  end
end

-- Remove members whose session deadline passed (at most 100 per call: bounded work), and a
-- leader that did not send its SyncGroup within the rebalance timeout after the generation
-- formed (sync_deadline): the others would wait for it forever.
local function kafka_expire(state, members, deadlines, kafka, now)
  local dead = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now, 'LIMIT', 0, 100)
  local s = redis.call('HMGET', state, 'phase', 'sync_deadline', 'leader')
  if s[1] == 'syncing' and s[2] and tonumber(s[2]) < now and s[3] then dead[#dead + 1] = s[3] end
  for _, m in ipairs(dead) do kafka_forget(state, members, deadlines, kafka, m) end
  if #dead > 0 then kafka_changed(state, members, now) end
end

-- The member's error in the group's current state, or nil: unknown member, another process of
-- its static instance, a generation other than the current one.
local function kafka_check(state, members, kafka, member, instance, generation)
  if instance ~= '' then
    local holder = redis.call('HGET', kafka, 'i:' .. instance)
    if holder and holder ~= member then return 'fenced_instance_id' end
  end
  if redis.call('HEXISTS', members, member) == 0 then return 'unknown_member_id' end
  if generation ~= nil and tostring(generation) ~= (redis.call('HGET', state, 'generation') or '0') then
    return 'illegal_generation'
  end
  return nil
end

-- The member ids of a Kafka-protocol group (from the deadlines: every member has one; not the
-- members hash, whose values a script never needs to copy).
local function member_ids(deadlines)
  return redis.call('ZRANGEBYSCORE', deadlines, '-inf', '+inf')
end
