-- partition_init: create one partition's empty stream (used when a topic is created or grows).
--
-- KEYS[1]  partition stream            facade:{T/P}:log
--
-- Returns: 1 if the stream was created, 0 if it already existed (left untouched).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
-- Both steps must be allowed before the first: a user allowed only to create would leave a
-- stray group behind (Redis does not undo a script's earlier writes when a later one is refused).
if not redis.acl_check_cmd('XGROUP', 'CREATE', KEYS[1], '__facade_init__', '$', 'MKSTREAM')
   or not redis.acl_check_cmd('XGROUP', 'DESTROY', KEYS[1], '__facade_init__') then
  return redis.error_reply('NOPERM this user may not create partition streams (needs the admin role)')
end
-- A stream cannot be created empty by XADD; a consumer group with MKSTREAM can, and is dropped at once.
redis.call('XGROUP', 'CREATE', KEYS[1], '__facade_init__', '$', 'MKSTREAM')
redis.call('XGROUP', 'DESTROY', KEYS[1], '__facade_init__')
return 1
