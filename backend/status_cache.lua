-- Write one job's status-cache entry unless the entry already there is newer.
--
--   KEYS[1]  genhook:job:{job_id}   string  the entry JSON (see status_cache.py)
--   ARGV[1]  the new entry JSON, whose "version" is the job's updated_at in microseconds
--   ARGV[2]  its version, as a number
--   ARGV[3]  TTL in seconds
--
-- Two workers (or a worker and the API's cancel) may write the same job's entry in the
-- opposite order of their database commits; the newer commit must win, or a canceled job
-- could read as still processing until the entry expires.
local current = redis.call('GET', KEYS[1])
if current then
  local ok, entry = pcall(cjson.decode, current)
  if ok and type(entry) == 'table' and tonumber(entry['version']) and
      tonumber(entry['version']) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
