#!lua flags=allow-oom
-- group_sync: store the assignment computed for one generation, unless the group moved on.
-- (allow-oom: consumers keep acknowledging, and so freeing memory, when the server is full)
--
-- KEYS[1]  group state hash            facade:{g/G}:state
-- ARGV[1]  the generation the assignment was computed for
-- ARGV[2]  assignment JSON: {"member id": [["topic", partition], ...], ...}
--
-- Returns: 1 if stored; 0 if the generation changed meanwhile (the caller recomputes) or an
--          assignment for this generation is already stored (first writer wins; all compute alike).
local gen = redis.call('HGET', KEYS[1], 'generation')
if gen ~= ARGV[1] or redis.call('HGET', KEYS[1], 'assignment_generation') == ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'assignment', ARGV[2], 'assignment_generation', ARGV[1])
return 1
