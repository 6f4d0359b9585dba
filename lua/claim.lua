#!lua flags=allow-oom
-- claim: take ownership of one partition for a group member (and create the stream's group).
-- (allow-oom: consumers keep acknowledging, and so freeing memory, when the server is full)
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- KEYS[2]  partition owners hash       facade:{T/P}:own   (group -> "member|generation")
-- ARGV[1]  group id
-- ARGV[2]  owner token of the claimer  "member|generation"
-- ARGV[3]  the token the claimer expects to replace: "" when the partition should be free, or
--          the token of a member the claimer saw leave or expire
-- ARGV[4]  where a new stream group starts: "$" (latest) or "0" (earliest)
--
-- Returns: {1, last_delivered_id} when the claimer now owns the partition;
--          {0, current_token} when someone else holds it (the claimer retries later).
-- Errors:  NOTOPIC when the stream does not exist.
-- Why a CAS: only the previous owner (on revoke) or a member that saw it die may hand a partition
-- on, so two live members never own it at once; every later fetch/commit checks the token.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOTOPIC partition stream ' .. KEYS[1] .. ' does not exist')
end
local current = redis.call('HGET', KEYS[2], ARGV[1]) or ''
if current ~= ARGV[3] and current ~= ARGV[2] then
  return {0, current}
end
local ok = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[4])
if type(ok) == 'table' and ok.err and string.sub(ok.err, 1, 9) ~= 'BUSYGROUP' then
  return redis.error_reply(ok.err)
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local last = '0-0'
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
  if info['name'] == ARGV[1] then last = info['last-delivered-id'] end
end
return {1, last}
