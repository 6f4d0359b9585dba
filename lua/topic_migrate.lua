-- topic_migrate: the last step of carrying one partition of a layout-1 topic (stream-ID offsets)
-- over to dense offsets. The caller copied the old stream into KEYS[2] with IDs "<ms>-<offset>"
-- (facade/_async/migrate.py); this script puts the copy in the old stream's place, with the
-- groups' committed offsets and processed marks converted, if and only if the old stream did not
-- change since the copy was finished.
--
-- KEYS[1]  partition stream            facade:{T/P}:log
-- KEYS[2]  the dense copy              facade:{T/P}:mig     (absent when the old stream was empty)
-- KEYS[3]  where the old stream goes   facade:{T/P}:old     (the caller UNLINKs it afterwards)
-- KEYS[4]  migrated marker             facade:{T/P}:layout
-- KEYS[5]  committed offsets           facade:{T/P}:off
-- KEYS[6]  processed marks             facade:{T/P}:done
-- KEYS[7..12] state of the old layout that has no meaning in the new one, dropped:
--          :own (owner tokens), :dlv, :pid, :pidx, :dedup, :dedupx (idempotence windows restart)
-- ARGV[1]  the old stream's length when the copy was finished
-- ARGV[2]  the old stream's last entry ID then ("" when it was empty)
-- ARGV[3]  n, the number of (group, committed offset) pairs that follow
-- ARGV[4 .. 3+2n]   group, committed offset (the next offset the group reads)
-- ARGV[4+2n ..]     group, processed mark (exactly-once groups), as offsets
--
-- Returns: 1 when the partition was carried over now, 0 when it already was (marker set), -1 when
--          the old stream's length or last entry differs from ARGV[1..2], or the copy is not
--          complete (a producer of the older facade appended, or retention trimmed, during the
--          copy): nothing was changed; copy again.
-- Errors:  NOTOPIC when the partition stream does not exist.
-- Bounded: every step is O(1) or O(number of groups); the old stream is renamed, not deleted
-- (deleting a large stream here would block the server), and dropped hashes are UNLINKed.
local stream, copy, old, marker, off, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local length, last = tonumber(ARGV[1]), ARGV[2]
local n = tonumber(ARGV[3])
if redis.call('EXISTS', marker) == 1 then
  return 0
end
if redis.call('EXISTS', stream) == 0 then
  return redis.error_reply('NOTOPIC partition stream ' .. stream .. ' does not exist')
end
local tail = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
local now_last = ''
if tail[1] then now_last = tail[1][1] end
local copied = 0
if redis.call('EXISTS', copy) == 1 then copied = redis.call('XLEN', copy) end
if redis.call('XLEN', stream) ~= length or now_last ~= last or copied ~= length then
  return -1
end
redis.call('UNLINK', old)
redis.call('RENAME', stream, old)
if length > 0 then
  redis.call('RENAME', copy, stream)
else
  -- A stream cannot be created empty by XADD; a consumer group with MKSTREAM can (as partition_init).
  redis.call('XGROUP', 'CREATE', stream, '__facade_init__', '$', 'MKSTREAM')
  redis.call('XGROUP', 'DESTROY', stream, '__facade_init__')
end
for i = 7, 12 do
  redis.call('UNLINK', KEYS[i])
end
redis.call('UNLINK', off, done)
for i = 4, 3 + 2 * n, 2 do
  redis.call('HSET', off, ARGV[i], ARGV[i + 1])
end
for i = 4 + 2 * n, #ARGV, 2 do
  redis.call('HSET', done, ARGV[i], ARGV[i + 1])
end
redis.call('SET', marker, '2')
return 1
