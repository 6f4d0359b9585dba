-- transact: consume-transform-produce in one step: append the outputs made from one input
-- partition's records, and commit that partition's offset (or move records to the dead letters),
-- all or nothing.
--
-- KEYS[1]  input partition stream      facade:{T/P}:log
-- KEYS[2]  input owners hash           facade:{T/P}:own
-- KEYS[3]  input committed offsets     facade:{T/P}:off
-- KEYS[4]  input processed marks       facade:{T/P}:done
-- KEYS[5]  input delivery state        facade:{T/P}:dlv
-- KEYS[6…] output partition streams    facade:{T2/P2}:log ... (each at most once)
-- ARGV[1]  group id
-- ARGV[2]  owner token                 "<member id>|<session nonce>"
-- ARGV[3]  transaction id: unique per call of one owner; a call whose id is the last one applied
--          is a retry after a lost reply and changes nothing
-- ARGV[4]  commit: the input offset to commit, or "" to leave the committed offset alone
-- ARGV[5]  "mark" to raise the processed mark to that offset too (exactly-once), else ""
-- ARGV[6]  need: the consumer's max_deliveries when records are moved to the dead letters, else ""
-- ARGV[7]  d: number of input offsets moved to the dead letters, then those d offsets; each must
--          have failed at least ``need`` times (fail(), or a crash while handed out alone)
-- then     o: number of outputs, then per output: KEYS index of its stream (6…), max_len ("" none),
--          retention_ms ("" none), create time in ms ("" for a LogAppendTime topic), f (field
--          count), f field names and values ("key" if keyed, "value", then "h:<name>" headers)
--
-- Returns: {offsets, 0}: the o output offsets, in order; or {{}, 1} when this transaction was
--          applied before (nothing is written again); or {{}, 2, "<offset> <failures> ..."} when
--          some of the d offsets are not due for the dead letters (failures: their count, "d"
--          when dead-lettered already): nothing is written. The dead letters take only records
--          the application failed or that crashed it, whatever the caller asks.
-- Errors:  FENCED (nothing happens); NOTOPIC when an output stream is missing (checked before
--          anything is written).
-- Only where all these keys live on one server (a single Redis, or a Sentinel-managed primary):
-- Redis Cluster refuses cross-slot scripts, and facade then uses idempotent outputs instead.
local stream, own, off, done, dlv = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local group, token, txn, commit, mark = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5] == 'mark'

if redis.call('HGET', own, group) ~= token then
  return fenced(stream, group)
end
if redis.call('HGET', dlv, group .. ':t') == txn then
  return {{}, 1}
end
for k = 6, #KEYS do
  if redis.call('EXISTS', KEYS[k]) == 0 then
    return redis.error_reply('NOTOPIC partition stream ' .. KEYS[k] .. ' does not exist')
  end
end
local need = tonumber(ARGV[6])
local d = tonumber(ARGV[7])
if d > 0 then
  local refused = {}
  for k = 8, 7 + d do
    local due, failures = due_for_dead_letters(dlv, group, tonumber(ARGV[k]), need or math.huge)
    if not due then refused[#refused + 1] = ARGV[k] .. ' ' .. failures end
  end
  if #refused > 0 then return {{}, 2, table.concat(refused, ' ')} end
end
local now = now_ms()
local i = 8 + d
local o = tonumber(ARGV[i])
i = i + 1
local offsets, points, trims = {}, {}, {}
for r = 1, o do
  local key = KEYS[tonumber(ARGV[i])]
  local max_len, retention_ms, created, f = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
  local point = points[key]
  if not point then
    local ms, nxt = append_point(key, now)
    point = {ms, nxt}
    points[key] = point
  end
  local args = {'XADD', key, make_id(point[1], point[2])}
  local head = i + 5
  local value_end = head + 1
  if ARGV[head] == 'key' then value_end = head + 3 end
  for k = head, value_end do args[#args + 1] = ARGV[k] end
  if created ~= '' then
    args[#args + 1] = 'ts'
    args[#args + 1] = point[1] - tonumber(created)
  end
  for k = value_end + 1, head + f - 1 do args[#args + 1] = ARGV[k] end
  redis.call(unpack(args))
  offsets[r] = point[2]
  point[2] = point[2] + 1
  trims[key] = {max_len, retention_ms}
  i = i + 5 + f
end
if d > 0 then
  -- dead records are skipped when delivered again (until the committed offset passes them)
  local list = read_pairs(redis.call('HGET', dlv, group .. ':f'))
  for k = 8, 7 + d do
    local found = false
    for _, p in ipairs(list) do
      if tonumber(p[1]) == tonumber(ARGV[k]) then p[2] = 'd' found = true end
    end
    if not found then list[#list + 1] = {ARGV[k], 'd'} end
  end
  write_pairs(dlv, group .. ':f', list, nil, 1)
end
if commit ~= '' then
  redis.call('HSET', off, group, commit)
  if mark and tonumber(redis.call('HGET', done, group) or '-1') < tonumber(commit) then
    redis.call('HSET', done, group, commit)
  end
end
redis.call('HSET', dlv, group .. ':t', txn)
for key, tr in pairs(trims) do
  trim(key, tr[1], tr[2], nil, now)
end
return {offsets, 0}
