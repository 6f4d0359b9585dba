#!lua flags=allow-oom
-- group_join: add (or refresh) a member of a consumer group and start a new generation.
-- (allow-oom: consumers keep acknowledging, and so freeing memory, when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state     (generation, assignment, ...)
-- KEYS[2]  group members hash          facade:{g/G}:members   (member -> JSON metadata)
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines (member -> session deadline, ms)
-- ARGV[1]  member id
-- ARGV[2]  member metadata (JSON: topics, strategy, session_timeout_ms, ...)
-- ARGV[3]  session timeout in ms: the member is expired if it does not heartbeat before then
-- ARGV[4]  "static" for a static member (group_instance_id), else ""
--
-- Returns: the generation: a new one, except when a static member comes back within its session
--          with unchanged metadata (then the group keeps its generation and assignment: no rebalance).
-- Members whose deadline has passed are removed first (server clock, so client clocks don't matter).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, m in ipairs(dead) do
  redis.call('HDEL', KEYS[2], m)
  redis.call('ZREM', KEYS[3], m)
end
if ARGV[4] == 'static' and redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
  return tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'generation', 1)
