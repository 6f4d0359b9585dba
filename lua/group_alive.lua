#!lua flags=allow-oom
-- group_alive: which of some owner tokens belong to sessions still in the group. A claimer asks
-- before replacing a token it found on a partition (claim.lua's expected token).
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- KEYS[2]  group members hash          facade:{g/G}:members
-- KEYS[3]  group deadlines zset        facade:{g/G}:deadlines
-- ARGV[…]  owner tokens "<member id>|<session nonce>"
--
-- Returns: one 1 (alive) or 0 (ended) per token. Members past their deadline are removed first,
-- so "ended" is final: nonces are never reused, so an ended session never comes back.
local state, members, deadlines = KEYS[1], KEYS[2], KEYS[3]
expire_members(state, members, deadlines, now_ms(), nil)
local out = {}
for i, token in ipairs(ARGV) do
  local member, nonce = string.match(token, '^(.*)|([^|]*)$')
  local current = member and redis.call('HGET', members, member)
  if current and member_nonce(current) == nonce then out[i] = 1 else out[i] = 0 end
end
return out
