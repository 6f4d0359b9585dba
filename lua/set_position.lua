#!lua flags=allow-oom
-- set_position: move a group's position on one partition: a consumer's seek, or an operator's
-- offset reset (which also commits the new offset).
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- KEYS[2]  partition owners hash       facade:{T/P}:own
-- KEYS[3]  committed offsets hash      facade:{T/P}:off
-- KEYS[4]  processed marks hash        facade:{T/P}:done
-- ARGV[1]  group id
-- ARGV[2]  owner token of the caller, or "" for an operator's reset (the caller made sure the
--          group has no live member: see group_lock; an owner token left by an ended session
--          is removed)
-- ARGV[3]  target: an offset, "earliest", "latest", or "time:<ms>" (the first record appended at
--          or after that time, the high watermark when none)
-- ARGV[4]  auto_offset_reset for a target outside [log start, high watermark]: earliest, latest,
--          or none (refuse)
-- ARGV[5]  "commit" to also store the new offset as committed (a reset), "" for a seek
-- ARGV[6]  "exactly-once" to never go below the group's processed mark, else ""
--
-- Returns: {previous position (-1 if the group never read the partition), new position, the
--          stream group's new last-delivered ID}
-- Errors:  FENCED when the token is not the owner; NOTOPIC; OUTOFRANGE with policy none.
-- Bounded: the offset lookup is a binary search (at most ~45 single-entry reads).
local stream, own, off, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, token, target, policy = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local commit, exactly = ARGV[5] == 'commit', ARGV[6] == 'exactly-once'

if redis.call('EXISTS', stream) == 0 then
  return redis.error_reply('NOTOPIC partition stream ' .. stream .. ' does not exist')
end
if token ~= '' and redis.call('HGET', own, group) ~= token then
  return fenced(stream, group)
end
local si = stream_info(stream)
local hw, start = si.hw, si.start
local n
if target == 'earliest' then
  n = start
elseif target == 'latest' then
  n = hw
elseif string.sub(target, 1, 5) == 'time:' then
  local e = redis.call('XRANGE', stream, string.sub(target, 6) .. '-0', '+', 'COUNT', 1)[1]
  if e then n = select(2, id_parts(e[1])) else n = hw end
else
  n = tonumber(target)
end
local at, err = resolve_offset(n, start, hw, policy)
if err then return err end
if exactly then
  local mark = tonumber(redis.call('HGET', done, group) or '0')
  if mark > at and mark <= hw then at = mark end
end
local previous = group_position(stream, group) or -1
local position, bad = set_group_position(stream, group, at, hw)
if bad then return bad end
if token == '' then
  redis.call('HDEL', own, group)
end
if commit then
  redis.call('HSET', off, group, at)
end
return {previous, at, position}
