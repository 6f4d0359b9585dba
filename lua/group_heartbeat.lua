#!lua flags=allow-oom
-- group_heartbeat: keep a member alive, expire silent ones, and report the group's state.
-- (allow-oom: consumers keep acknowledging, and so freeing memory, when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- KEYS[2]  group members hash          facade:{g/G}:members
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines
-- ARGV[1]  member id
-- ARGV[2]  session timeout in ms
-- ARGV[3]  the assignment generation the member already knows ("" for none)
--
-- Returns: {generation, assignment_generation, assignment JSON, members}
--           assignment: the stored one, or "" when the member already has it (same assignment
--           generation) and the group is not between generations;
--           members: flat {id, metadata, ...} when generation ~= assignment_generation, else {}.
--           In a new generation without an assignment any member may compute one (group_sync),
--           using the previous assignment (returned then) to keep partitions where they are.
-- Errors:  UNKNOWNMEMBER when this member was expired or removed: it must join again.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
local removed = 0
for _, m in ipairs(dead) do
  if m ~= ARGV[1] then
    redis.call('HDEL', KEYS[2], m)
    redis.call('ZREM', KEYS[3], m)
    removed = removed + 1
  end
end
if removed > 0 then
  redis.call('HINCRBY', KEYS[1], 'generation', 1)
end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 or redis.call('ZSCORE', KEYS[3], ARGV[1]) == false
   or tonumber(redis.call('ZSCORE', KEYS[3], ARGV[1])) < now then
  redis.call('HDEL', KEYS[2], ARGV[1])
  if redis.call('ZREM', KEYS[3], ARGV[1]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'generation', 1)
  end
  return redis.error_reply('UNKNOWNMEMBER member ' .. ARGV[1] .. ' is not in the group (session expired); rejoin')
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'generation', 'assignment_generation', 'assignment')
local gen = state[1] or '0'
local agen = state[2] or ''
local assignment = ''
if agen ~= ARGV[3] or gen ~= agen then
  assignment = state[3] or ''
end
local members = {}
if gen ~= agen then
  members = redis.call('HGETALL', KEYS[2])
end
return {tonumber(gen), agen, assignment, members}
