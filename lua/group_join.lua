-- group_join: add (or refresh) a member of a consumer group and start a new generation.
--
-- KEYS[1]  group state hash            facade:{g/G}:state     (generation, assignment, ...)
-- KEYS[2]  group members hash          facade:{g/G}:members   (member -> JSON metadata)
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines (member -> session deadline, ms)
-- ARGV[1]  member id
-- ARGV[2]  member metadata (JSON: topics, strategy, session_timeout_ms, ...)
-- ARGV[3]  session timeout in ms: the member is expired if it does not heartbeat before then
--
-- Returns: the new generation (an integer that only grows).
-- Members whose deadline has passed are removed first (server clock, so client clocks don't matter).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, m in ipairs(dead) do
  redis.call('HDEL', KEYS[2], m)
  redis.call('ZREM', KEYS[3], m)
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'generation', 1)
