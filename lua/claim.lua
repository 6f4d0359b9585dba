#!lua flags=allow-oom
-- claim: take ownership of one partition for a group member, and start its fetch position at
-- the group's committed offset.
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- KEYS[2]  partition owners hash       facade:{T/P}:own   group -> owner token
-- KEYS[3]  committed offsets hash      facade:{T/P}:off   group -> "<offset>[ <metadata>]"
-- KEYS[4]  processed marks hash        facade:{T/P}:done  group -> offset (exactly-once groups)
-- KEYS[5]  delivery state hash         facade:{T/P}:dlv   (see _lib.lua, "Delivery state")
-- ARGV[1]  group id
-- ARGV[2]  owner token of the claimer  "<member id>|<session nonce>"
-- ARGV[3]  the token the claimer may replace: "" when the partition should be free, or the token
--          of a session the group has ended (the caller asked the group with group_alive: a
--          session once ended never comes back, so that answer cannot go stale)
-- ARGV[4]  auto_offset_reset: earliest, latest or none (no committed offset, or one outside the log)
-- ARGV[5]  "exactly-once" to start no lower than the group's processed mark, else ""
--
-- Returns: {1, position, redelivered ranges, failures, position ID} when the claimer now owns the
--          partition: position is the next offset it reads (the committed offset), position ID the
--          stream group's last-delivered ID (where a blocking XREAD waits from); ranges, failures: the
--          delivery state ("<from> <to> ..." and "<offset> <failures|d> ..."), so that the owner
--          computes each record's delivery_count and finds records due for the dead letters;
--          {0, current token} when another live session holds it (the claimer waits for its
--          release, or for the group to end that session).
-- Errors:  NOTOPIC when the stream does not exist; NOOFFSET / OUTOFRANGE with policy none.
-- The previous tenure's handed-out records past the committed offset are counted as delivered
-- once more; a record handed out alone when that tenure ended counts as a failure too.
local stream, own, off, done, dlv = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local group, token, expected, policy, exactly = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5] == 'exactly-once'

if redis.call('EXISTS', stream) == 0 then
  return redis.error_reply('NOTOPIC partition stream ' .. stream .. ' does not exist')
end
local current = redis.call('HGET', own, group) or ''
if current ~= '' and current ~= token and current ~= expected then
  return {0, current}
end
local si = stream_info(stream)
local hw = si.hw
local at, err = resolve_offset(committed_offset(off, group), si.start, hw, policy)
if err then return err end
if exactly then
  local mark = tonumber(redis.call('HGET', done, group) or '0')
  if mark > at and mark <= hw then at = mark end
end
local position, bad = set_group_position(stream, group, at, hw)
if bad then return bad end
redis.call('HSET', own, group, token)

local last = redis.call('HGET', dlv, group)
if last and current ~= token then
  local n, single = string.match(last, '^(%d+)(s?)$')
  n = tonumber(n)
  if n and n >= at then
    record_redelivery(dlv, group, at, n)
    -- handed out alone and never committed: the record its consumer died on
    if single == 's' then add_failure(dlv, group, n, at) end
  end
  redis.call('HDEL', dlv, group)
end
local ranges = read_pairs(redis.call('HGET', dlv, group .. ':r'))
write_pairs(dlv, group .. ':r', ranges, at, 2)
write_pairs(dlv, group .. ':f', read_pairs(redis.call('HGET', dlv, group .. ':f')), at, 1)
return {1, at, redis.call('HGET', dlv, group .. ':r') or '', redis.call('HGET', dlv, group .. ':f') or '',
  position}
