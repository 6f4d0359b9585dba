#!lua flags=allow-oom
-- group_join: add a member (a new session) to a consumer group.
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state     generation, assignment, previous, ...
-- KEYS[2]  group members hash          facade:{g/G}:members   member -> "<nonce> <metadata JSON>"
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines member -> session deadline (ms)
-- ARGV[1]  member id
-- ARGV[2]  session nonce: new for every join; part of the member's owner tokens
-- ARGV[3]  member metadata (JSON: topics, strategy)
-- ARGV[4]  session timeout in ms: the member is removed unless it heartbeats before then
-- ARGV[5]  "static" for a static member (group_instance_id); "rebalance" for a member of the group
--          asking for a new generation (a subscribed topic gained partitions or appeared): its
--          session stays; else ""
-- ARGV[6]  protocol: "facade" (SDK consumers) or "kafka" (Kafka clients through the gateway)
--
-- Returns: the generation. Every change of membership starts a new one, except a static member
--          coming back while still in the group with unchanged metadata: its new session replaces
--          the old one (fencing the old process for good: its heartbeats answer FENCEDINSTANCE
--          and its owner tokens are dead) and the group keeps its generation and assignment.
-- Errors:  UNKNOWNMEMBER ("rebalance" from a session that ended);
--          GROUPLOCKED while an operator resets the group's offsets (retry);
--          GROUPKIND when the group is used by the other protocol.
-- Members past their deadline are removed first (server clock: members' clock skew is harmless).
local state, members, deadlines = KEYS[1], KEYS[2], KEYS[3]
local member, nonce, meta, session, protocol = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[6]
local static, rebalance = ARGV[5] == 'static', ARGV[5] == 'rebalance'
local now = now_ms()
expire_members(state, members, deadlines, now, nil)
local locked = tonumber(redis.call('HGET', state, 'locked_until') or '0')
if locked > now then
  return redis.error_reply('GROUPLOCKED the group\'s offsets are being reset; join again in a moment')
end
local kind = redis.call('HGET', state, 'protocol')
if kind and kind ~= protocol and redis.call('HLEN', members) > 0 then
  return redis.error_reply('GROUPKIND group is used by ' .. kind .. ' clients; a ' .. protocol ..
    ' client cannot join it (use another group id)')
end
local current = redis.call('HGET', members, member)
if rebalance and (not current or member_nonce(current) ~= nonce) then
  return redis.error_reply('UNKNOWNMEMBER member ' .. member .. ' is not in the group (its session ended); rejoin')
end
-- The session deadline is the first write (past expiring dead members): a user allowed to reset
-- a group but not to join it is refused here, before anything else changed.
redis.call('ZADD', deadlines, now + session, member)
redis.call('HSET', state, 'protocol', protocol)
if rebalance then
  return bump_generation(state)
end
redis.call('HSET', members, member, nonce .. ' ' .. meta)
if static and current and string.sub(current, #member_nonce(current) + 2) == meta then
  return tonumber(redis.call('HGET', state, 'generation') or '0')
end
return bump_generation(state)
