#!lua flags=allow-oom
-- group_sync: store the assignment computed for one generation, unless the group moved on.
-- (allow-oom: consumers keep reading and committing when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- KEYS[2]  group members hash          facade:{g/G}:members
-- ARGV[1]  the generation the assignment was computed for
-- ARGV[2]  assignment JSON: {"member id": [["topic", partition], ...], ...}
--
-- Returns: 1 if stored; 0 if the generation changed meanwhile (the caller recomputes), an
--          assignment for this generation is stored already (first writer wins; all compute
--          alike), or it names a member that is not in the group (never stored).
local state, members, generation, assignment = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
if redis.call('HGET', state, 'generation') ~= generation or redis.call('HEXISTS', state, 'assignment') == 1 then
  return 0
end
for m, _ in pairs(cjson.decode(assignment)) do
  if redis.call('HEXISTS', members, m) == 0 then return 0 end
end
redis.call('HSET', state, 'assignment', assignment, 'assignment_generation', generation)
return 1
