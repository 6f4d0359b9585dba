#!lua flags=allow-oom
-- kafka_join: a Kafka client's JoinGroup (classic protocol) enters the group's next generation.
-- The gateway then calls kafka_join_wait until the generation is formed.
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state     (_lib.lua: "Kafka-protocol groups")
-- KEYS[2]  group members hash          facade:{g/G}:members   member -> "kafka <metadata JSON>"
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines member -> session deadline (ms)
-- KEYS[4]  Kafka members' state hash   facade:{g/G}:kafka
-- KEYS[5]  pending member ids zset     facade:{g/G}:pending   id -> until when it may join (ms)
-- ARGV[1]  member id the client sent ("" on its first join)
-- ARGV[2]  a fresh member id the gateway made, given when the client sent ""
-- ARGV[3]  "1": JoinGroup v4+ (a dynamic member's first join answers MEMBER_ID_REQUIRED and the
--          client joins again with the id it got), else ""
-- ARGV[4]  group.instance.id ("" for a dynamic member)
-- ARGV[5]  protocol type ("consumer" for Kafka consumers)
-- ARGV[6]  the member's description JSON {"topics", "host", "client_id", "kafka": {"session_ms",
--          "rebalance_ms"}} (stored as the member's value for `facade groups describe`; never
--          decoded here)
-- ARGV[7]  session timeout (ms)
-- ARGV[8]  rebalance timeout (ms): how long the others may take to rejoin
-- ARGV[9]  initial delay (ms): a first join into an empty group waits this long for others
--          (Kafka's group.initial.rebalance.delay.ms), within the rebalance timeout
-- ARGV[10] most members a group may have
-- ARGV[11] digest of the protocols with their metadata (a static member's new process with the
--          same digest keeps its place)
-- ARGV[12] the protocols with their metadata, packed by the gateway (facade/gateway/coordinator.py
--          pack_protocols; at most its max_member_metadata_bytes): stored as "m:<id>", never read
-- ARGV[13] a fresh token naming this JoinGroup (kafka_join_cancel withdraws it only while it is
--          the member's latest)
-- ARGV[14…] the protocol names, in the client's order (short: the gateway bounds their number
--          and length)
--
-- Returns: {code, member id}; code is a Kafka error name: "none" (joined: now wait),
--          "member_id_required" (with the id to join with), "unknown_member_id",
--          "fenced_instance_id", "inconsistent_group_protocol" (a facade SDK group with live
--          members, or a protocol type or assignors no member has in common),
--          "coordinator_load_in_progress" (an operator resets offsets: retry),
--          "group_max_size_reached". Any join into a formed generation starts a rebalance, except
--          a static member's new process (group.instance.id, member id "") with unchanged
--          protocols into a stable group whose leader it is not: it replaces the old member id,
--          with its assignment, in the current generation (the old process is fenced).
-- Bounded: O(protocol names) plus one HSET of each given value; no member's metadata or
-- description is read (the assignor check uses the counts "c:<name>", as Kafka's
-- supportedProtocols).
local state, members, deadlines, kafka, pending = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local member, minted, require_known, instance = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4]
local ptype, described, session, rebalance = ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local delay, max_members, digest, packed, token = tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11], ARGV[12], ARGV[13]
local names = {}
for i = 14, #ARGV do names[#names + 1] = ARGV[i] end
local names_json = cjson.encode(names)
local now = now_ms()
kafka_expire(state, members, deadlines, kafka, now)
for _, m in ipairs(redis.call('ZRANGEBYSCORE', pending, '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', pending, m)
end
if tonumber(redis.call('HGET', state, 'locked_until') or '0') > now then
  return {'coordinator_load_in_progress', member}
end
local count = redis.call('HLEN', members)
local kind = redis.call('HGET', state, 'protocol')
if kind and kind ~= 'kafka' and count > 0 then
  return {'inconsistent_group_protocol', member}
end

-- Store the member's join: its description, protocols (names counted, metadata opaque), token.
local function store(m)
  kafka_count(kafka, redis.call('HGET', kafka, 'p:' .. m), -1)
  kafka_count(kafka, names_json, 1)
  redis.call('HSET', members, m, 'kafka ' .. described)
  redis.call('HSET', kafka, 'p:' .. m, names_json, 'h:' .. m, digest, 'm:' .. m, packed, 't:' .. m, token)
end

if member == '' then
  if instance ~= '' then
    local old = redis.call('HGET', kafka, 'i:' .. instance)
    if old then  -- a new process of this static instance: the old one is fenced from now on
      local s = redis.call('HMGET', state, 'phase', 'leader', 'ptype', 'generation')
      if redis.call('HEXISTS', members, old) == 1 and s[1] == 'stable' and s[2] ~= old and s[3] == ptype and
          redis.call('HGET', kafka, 'h:' .. old) == digest then
        -- A follower back with the same subscription while the group is stable: it takes the
        -- old member's place and assignment in the current generation; no rebalance (Kafka's
        -- static membership).
        local assigned = redis.call('HGET', kafka, 'a:' .. old) or ''
        kafka_forget(state, members, deadlines, kafka, old)
        store(minted)
        redis.call('ZADD', deadlines, now + session, minted)
        redis.call('HSET', kafka, 'j:' .. minted, s[4], 'a:' .. minted, assigned, 's:' .. minted, session,
          'n:' .. minted, instance, 'i:' .. instance, minted)
        local table_json = redis.call('HGET', state, 'assignment')
        if table_json then
          local table_ = cjson.decode(table_json)
          table_[minted], table_[old] = table_[old], nil
          redis.call('HSET', state, 'assignment', cjson.encode(table_))
        end
        return {'none', minted}
      end
      kafka_forget(state, members, deadlines, kafka, old)
      count = redis.call('HLEN', members)
    end
  elseif require_known then
    redis.call('ZADD', pending, now + session, minted)
    return {'member_id_required', minted}
  end
  member = minted
elseif redis.call('HEXISTS', members, member) == 0 then
  if not redis.call('ZSCORE', pending, member) then return {'unknown_member_id', member} end
  redis.call('ZREM', pending, member)
else
  local err = kafka_check(state, members, kafka, member, instance, nil)
  if err then return {err, member} end
end
-- The protocol type must be the group's, and one of the member's assignors must be supported by
-- every other member (Kafka's supportedProtocols: counts, not a walk of the members).
if count > 0 and redis.call('HGET', state, 'ptype') and redis.call('HGET', state, 'ptype') ~= ptype then
  return {'inconsistent_group_protocol', member}
end
local new = redis.call('HEXISTS', members, member) == 0
local old_names = {}
local old_json = (not new) and redis.call('HGET', kafka, 'p:' .. member)
if old_json then for _, name in ipairs(cjson.decode(old_json)) do old_names[name] = true end end
local others = tonumber(redis.call('HGET', kafka, 'c') or '0') - (old_json and 1 or 0)
if others > 0 then
  local shared = false
  for _, name in ipairs(names) do
    local n = tonumber(redis.call('HGET', kafka, 'c:' .. name) or '0') - (old_names[name] and 1 or 0)
    if n == others then shared = true break end
  end
  if not shared then return {'inconsistent_group_protocol', member} end
end
if new and count >= max_members then return {'group_max_size_reached', member} end
redis.call('ZADD', deadlines, now + session, member)
local longest = tonumber(redis.call('HGET', state, 'rebalance_ms') or '0')
if count == 0 or rebalance > longest then longest = rebalance end
redis.call('HSET', state, 'protocol', 'kafka', 'ptype', ptype, 'rebalance_ms', longest)
store(member)
if redis.call('HGET', kafka, 'j:' .. member) ~= 'w' then redis.call('HINCRBY', state, 'waiting', 1) end
redis.call('HSET', kafka, 'j:' .. member, 'w', 's:' .. member, session)
if instance ~= '' then
  redis.call('HSET', kafka, 'i:' .. instance, member, 'n:' .. member, instance)
end
local phase = redis.call('HGET', state, 'phase')
if count == 0 and phase ~= 'joining' then  -- the first member of an empty group
  redis.call('HSET', state, 'phase', 'joining', 'initial', '1', 'join_deadline', now + math.min(delay, rebalance),
    'join_cap', now + rebalance)
elseif phase ~= 'joining' then
  kafka_start_rebalance(state, now)
elseif redis.call('HGET', state, 'initial') == '1' then
  -- each newcomer during the initial delay gives the others the delay again, up to the cap
  local cap = tonumber(redis.call('HGET', state, 'join_cap') or '0')
  redis.call('HSET', state, 'join_deadline', math.min(now + delay, cap))
end
return {'none', member}
