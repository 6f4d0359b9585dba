-- first_uncommitted: where a consumer group's oldest uncommitted record is, and when it was
-- appended (how far behind the group is, in time). Read only.
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- KEYS[2]  committed offsets hash      facade:{T/P}:off
-- ARGV[1]  group id
--
-- Returns: {offset, append ms} of the first stored record at or after the group's committed
--          offset (the log start when it committed nothing), or {} when it has committed
--          everything stored.
-- Bounded: one offset lookup (a binary search of at most ~45 single-entry reads).
local stream, off, group = KEYS[1], KEYS[2], ARGV[1]
if redis.call('EXISTS', stream) == 0 then return {} end
local at = committed_offset(off, group) or 0
local e = find_entry(stream, at)
if not e then return {} end
local ms, seq = id_parts(e[1])
return {seq, ms}
