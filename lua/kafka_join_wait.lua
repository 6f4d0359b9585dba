#!lua flags=allow-oom
-- kafka_join_wait: one look at a forming generation by a member waiting in JoinGroup (the
-- gateway calls it every few tens of ms until it answers). Completes the generation when every
-- member has rejoined, or when the join deadline passed (members that did not rejoin are
-- removed); during the initial delay of an empty group, only at the deadline.
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- KEYS[2]  group members hash          facade:{g/G}:members
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines
-- KEYS[4]  Kafka members' state hash   facade:{g/G}:kafka
-- ARGV[1]  member id (a waiting member's session is kept alive by these calls)
--
-- Returns: {"wait"} (not formed yet); {"unknown_member_id"} (removed meanwhile: join again);
--          {"none", generation, protocol name, leader, protocol type, members} where members
--          (the leader's answer only, else empty) is a flat list {id, instance id or "", ...} of
--          the generation's members. Their metadata is not in the answer: the gateway reads the
--          members' "m:<id>" fields (HMGET) for the leader's JoinGroup answer.
-- Protocol choice (Kafka's): among the assignors every member supports, each member votes for
-- the first of its own list; most votes wins (ties: the order of the leader's list). The leader's
-- SyncGroup is due within the rebalance timeout (else it is removed: _lib.lua kafka_expire).
-- Bounded: a look is O(1) until the generation may form; forming walks the members once (a group
-- has at most the gateway's max members), reading only their small fields (join, protocol names):
-- never a member's metadata.
local state, members, deadlines, kafka = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local member = ARGV[1]
local now = now_ms()
kafka_expire(state, members, deadlines, kafka, now)
if redis.call('HEXISTS', members, member) == 0 then return {'unknown_member_id'} end
kafka_touch(deadlines, kafka, member, now)

local phase = redis.call('HMGET', state, 'phase', 'join_deadline', 'initial', 'waiting')
local deadline, initial = tonumber(phase[2] or '0'), phase[3] == '1'
-- The members are walked only when the generation may form: the count of waiting members says
-- all are there (checked by the walk), or the deadline passed.
if phase[1] == 'joining' and (now >= deadline or
    (not initial and tonumber(phase[4] or '0') >= redis.call('HLEN', members))) then
  local waiting, missing = {}, {}
  for _, m in ipairs(member_ids(deadlines)) do
    if redis.call('HGET', kafka, 'j:' .. m) == 'w' then waiting[#waiting + 1] = m else missing[#missing + 1] = m end
  end
  redis.call('HSET', state, 'waiting', #waiting)
  if now >= deadline or #missing == 0 then
    for _, m in ipairs(missing) do kafka_forget(state, members, deadlines, kafka, m) end
    -- the leader stays if it rejoined; else the first member that did
    local leader = redis.call('HGET', state, 'leader')
    if not leader or redis.call('HGET', kafka, 'j:' .. leader) ~= 'w' then leader = member end
    local metas, supported, order = {}, {}, {}
    -- (a member stored by an older gateway has no "p:": it neither votes nor restricts the choice)
    local voters = 0
    for _, m in ipairs(waiting) do
      local names = redis.call('HGET', kafka, 'p:' .. m)
      metas[m] = names and cjson.decode(names) or {}
      if names then voters = voters + 1 end
      for _, name in ipairs(metas[m]) do supported[name] = (supported[name] or 0) + 1 end
    end
    for i, name in ipairs(metas[leader]) do order[name] = i end
    local votes = {}
    for _, m in ipairs(waiting) do
      for _, name in ipairs(metas[m]) do
        if supported[name] == voters then votes[name] = (votes[name] or 0) + 1 break end
      end
    end
    local chosen, best = '', -1
    for name, n in pairs(votes) do
      if n > best or (n == best and (order[name] or 1e9) < (order[chosen] or 1e9)) then chosen, best = name, n end
    end
    local gen = redis.call('HINCRBY', state, 'generation', 1)
    for _, m in ipairs(waiting) do
      redis.call('HSET', kafka, 'j:' .. m, gen)
      redis.call('HDEL', kafka, 'a:' .. m)
    end
    redis.call('HSET', state, 'waiting', 0)
    local wait = tonumber(redis.call('HGET', state, 'rebalance_ms') or '300000')
    redis.call('HSET', state, 'phase', 'syncing', 'leader', leader, 'pname', chosen, 'sync_deadline', now + wait)
    redis.call('HDEL', state, 'initial', 'join_deadline', 'join_cap')
  end
end

local s = redis.call('HMGET', state, 'generation', 'leader', 'pname', 'ptype')
local gen = s[1] or '0'
if redis.call('HGET', kafka, 'j:' .. member) ~= gen then return {'wait'} end
local list = {}
if s[2] == member then
  for _, m in ipairs(member_ids(deadlines)) do
    if redis.call('HGET', kafka, 'j:' .. m) == gen then
      list[#list + 1] = m
      list[#list + 1] = redis.call('HGET', kafka, 'n:' .. m) or ''
    end
  end
end
return {'none', tonumber(gen), s[3] or '', s[2] or '', s[4] or '', list}
