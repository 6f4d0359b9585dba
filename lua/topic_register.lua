-- topic_register: record a topic's metadata, or change its partition count (increase only).
--
-- KEYS[1]  topic registry hash         facade:{meta}:topics
-- ARGV[1]  topic name
-- ARGV[2]  JSON TopicConfig to store ("created_ms" is filled in from the server clock when 0)
-- ARGV[3]  mode: "create" (the topic must not exist), "alter" (it must exist, with fewer
--          partitions than the new config) or "relayout" (the end of `facade topics migrate`: the
--          stored config gets the new config's layout, nothing else changes; the partition count
--          must still be the new config's)
--
-- Returns: the stored JSON.
-- Errors:  TOPICEXISTS (create, exists); NOTOPIC (alter or relayout, missing); BADARG (alter that
--          does not grow); CHANGED (relayout of a topic whose partition count changed meanwhile).
local cfg = cjson.decode(ARGV[2])
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] == 'create' then
  if current then
    return redis.error_reply('TOPICEXISTS topic ' .. ARGV[1] .. ' already exists')
  end
  if tonumber(cfg['created_ms']) == 0 then
    local t = redis.call('TIME')
    cfg['created_ms'] = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
else
  if not current then
    return redis.error_reply('NOTOPIC topic ' .. ARGV[1] .. ' does not exist')
  end
  local old = cjson.decode(current)
  if ARGV[3] == 'relayout' then
    if tonumber(cfg['partitions']) ~= tonumber(old['partitions']) then
      return redis.error_reply('CHANGED topic ' .. ARGV[1] .. ' now has ' .. old['partitions'] ..
        ' partitions; migrate it again')
    end
    old['layout'] = cfg['layout']
    cfg = old
  else
    if tonumber(cfg['partitions']) <= tonumber(old['partitions']) then
      return redis.error_reply('BADARG topic ' .. ARGV[1] .. ' has ' .. old['partitions'] ..
        ' partitions; the count can only grow')
    end
    cfg['created_ms'] = old['created_ms']
    cfg['layout'] = old['layout']
  end
end
local stored = cjson.encode(cfg)
redis.call('HSET', KEYS[1], ARGV[1], stored)
return stored
