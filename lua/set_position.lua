#!lua flags=allow-oom
-- set_position: move a group's read position on one partition (seek, offset reset).
-- (allow-oom: consumers keep acknowledging, and so freeing memory, when the server is full)
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- KEYS[2]  partition owners hash       facade:{T/P}:own
-- ARGV[1]  group id
-- ARGV[2]  owner token of the caller, or "" for an administrative reset (then nobody may own it)
-- ARGV[3]  the new last-delivered ID: the next record delivered is the first one after it;
--          "$" for the stream's last ID (skip everything stored)
-- ARGV[4]  "0" or "$": where to create the stream group if the group never read this partition
--
-- Returns: {previous last-delivered ID, new last-delivered ID, pending records acknowledged}
-- Pending records at or before the new position count as consumed and are acknowledged (as in
-- Kafka, where moving the committed offset commits what lies before it); pending records after
-- it are delivered again.
-- Errors:  FENCED when the token is not the owner (or, for "", when a member owns the partition);
--          NOTOPIC when the stream is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOTOPIC partition stream ' .. KEYS[1] .. ' does not exist')
end
local owner = redis.call('HGET', KEYS[2], ARGV[1]) or ''
if owner ~= ARGV[2] then
  if ARGV[2] == '' then
    return redis.error_reply('FENCED partition ' .. KEYS[1] .. ' is owned by a live member of ' .. ARGV[1])
  end
  return redis.error_reply('FENCED this member no longer owns ' .. KEYS[1] .. ' in group ' .. ARGV[1])
end
local ok = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[4])
if type(ok) == 'table' and ok.err and string.sub(ok.err, 1, 9) ~= 'BUSYGROUP' then
  return redis.error_reply(ok.err)
end
local previous = '0-0'
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
  if info['name'] == ARGV[1] then previous = info['last-delivered-id'] end
end
local target = ARGV[3]
if target == '$' then
  local s = redis.call('XINFO', 'STREAM', KEYS[1])
  for j = 1, #s, 2 do
    if s[j] == 'last-generated-id' then target = s[j + 1] end
  end
end
redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], target)
local acked = 0
while true do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', target, 1000)
  if #pending == 0 then break end
  local ids = {}
  for i, p in ipairs(pending) do ids[i] = p[1] end
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
end
return {previous, target, acked}
