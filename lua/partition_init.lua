-- partition_init: create one partition's empty stream (used when a topic is created or grows).
--
-- KEYS[1]  partition stream            facade:{T/P}:log
--
-- Returns: 1 if the stream was created, 0 if it already existed (left untouched).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
-- A stream cannot be created empty by XADD; a consumer group with MKSTREAM can, and is dropped at once.
redis.call('XGROUP', 'CREATE', KEYS[1], '__facade_init__', '$', 'MKSTREAM')
redis.call('XGROUP', 'DESTROY', KEYS[1], '__facade_init__')
return 1
