#!lua flags=allow-oom
-- group_heartbeat: keep a member's session alive, remove silent members, report the group's state.
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- KEYS[2]  group members hash          facade:{g/G}:members
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines
-- ARGV[1]  member id
-- ARGV[2]  session nonce of the caller
-- ARGV[3]  session timeout in ms
-- ARGV[4]  the assignment generation the member already follows ("" for none)
--
-- Returns: {generation, assignment generation ("" while none), assignment JSON, members, previous}
--          assignment: the current one when it is not the one the member follows, else "";
--          members (flat {id, "<nonce> <metadata>", ...}) and previous (the last assignment JSON,
--          for sticky strategies) only while the generation has no assignment yet: any member
--          may then compute one and offer it with group_sync.
-- Errors:  UNKNOWNMEMBER when this member's session was ended (expired or left): join again;
--          FENCEDINSTANCE when a newer session of this static member replaced this one.
local state, members, deadlines = KEYS[1], KEYS[2], KEYS[3]
local member, nonce, session, known = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now = now_ms()
expire_members(state, members, deadlines, now, member)
local current = redis.call('HGET', members, member)
if not current then
  return redis.error_reply('UNKNOWNMEMBER member ' .. member .. ' is not in the group (its session ended); rejoin')
end
if member_nonce(current) ~= nonce then
  return redis.error_reply('FENCEDINSTANCE a newer process with group_instance_id ' .. member ..
    ' joined the group; this one is fenced and stops')
end
local deadline = tonumber(redis.call('ZSCORE', deadlines, member) or '0')
if deadline < now then
  redis.call('HDEL', members, member)
  redis.call('ZREM', deadlines, member)
  bump_generation(state)
  return redis.error_reply('UNKNOWNMEMBER member ' .. member .. ' is not in the group (session expired); rejoin')
end
redis.call('ZADD', deadlines, now + session, member)
local s = redis.call('HMGET', state, 'generation', 'assignment_generation', 'assignment', 'previous')
local gen, agen = s[1] or '0', s[2] or ''
local assignment, listed, previous = '', {}, ''
if agen == gen then
  if agen ~= known then assignment = s[3] end
else
  agen = ''
  listed = redis.call('HGETALL', members)
  previous = s[4] or ''
end
return {tonumber(gen), agen, assignment, listed, previous}
