-- transact: consume-transform-produce in one step: append the outputs of one input partition's
-- records, acknowledge those records and move the group's processed mark, all or nothing.
--
-- KEYS[1]  input partition stream      facade:{T/P}:log
-- KEYS[2]  input owners hash           facade:{T/P}:own
-- KEYS[3]  input processed marks hash  facade:{T/P}:done
-- KEYS[4…] output partition streams    facade:{T2/P2}:log ... (each at most once)
-- ARGV[1]  group id
-- ARGV[2]  owner token                 "member|generation|incarnation"
-- ARGV[3]  processed mark: the newest input ID being committed, "" to leave the mark alone
-- ARGV[4]  a: number of input IDs to acknowledge, then those a IDs
-- then     o: number of outputs, then per output: KEYS index of its stream (4…), max_len ("" none),
--          retention_ms ("" none), f (field count), f field names and values
--
-- Returns: {offsets, 0}: the o output offsets, in order; or {{}, 1} when this exact transaction
--          was applied before (its first input ID is no longer pending: a retry after a lost
--          reply), in which case nothing is written again.
-- Errors:  FENCED (nothing happens: no output, no ack); NOTOPIC when an output stream is missing
--          (checked before anything is written).
-- Only where all these keys live on one server (a single Redis, or a Sentinel-managed primary):
-- Redis Cluster refuses cross-slot scripts, and facade then uses idempotent outputs instead.
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return redis.error_reply('FENCED this member no longer owns ' .. KEYS[1] .. ' in group ' .. ARGV[1])
end
local a = tonumber(ARGV[4])
if a > 0 and #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[5], ARGV[5], 1) == 0 then
  return {{}, 1}
end
for k = 4, #KEYS do
  if redis.call('EXISTS', KEYS[k]) == 0 then
    return redis.error_reply('NOTOPIC partition stream ' .. KEYS[k] .. ' does not exist')
  end
end
local i = 5 + a
local o = tonumber(ARGV[i])
i = i + 1
local ids = {}
local trims = {}
for r = 1, o do
  local key = KEYS[tonumber(ARGV[i])]
  local f = tonumber(ARGV[i + 3])
  ids[r] = redis.call('XADD', key, '*', unpack(ARGV, i + 4, i + 3 + f))
  trims[key] = {ARGV[i + 1], ARGV[i + 2]}
  i = i + 4 + f
end
if a > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 5, 4 + a))
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for key, tr in pairs(trims) do
  if tr[1] ~= '' then redis.call('XTRIM', key, 'MAXLEN', '~', tr[1]) end
  if tr[2] ~= '' and now - tonumber(tr[2]) > 0 then
    redis.call('XTRIM', key, 'MINID', '~', string.format('%d', now - tonumber(tr[2])))
  end
end
return {ids, 0}
