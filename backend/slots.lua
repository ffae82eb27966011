-- Take or renew one slot in each of several counting semaphores whose holders expire.
--
--   KEYS[i]  genhook:slots:...   zset  member: a holder's token
--                                      score:  when that hold expires (ms, Redis's clock)
--   ARGV[1]  "take" or "renew"
--   ARGV[2]  the holder's token
--   ARGV[3]  how long a hold lasts unless renewed, in ms
--   ARGV[3+i] how many holders KEYS[i] allows (take)
--
-- Holds past their expiry are dropped first, so a holder that died (SIGKILL, a lost host)
-- frees its slot within one TTL. Redis's own clock decides, so the hosts' clocks need not
-- agree. All or nothing: a take holds a slot of every key, or of none. Returns 0 if the
-- caller holds them all now, else the index of the first key refused (1-based: its slots
-- were all taken, or, for "renew", the hold had already expired).
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local ttl = tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if ARGV[1] == 'renew' then
    if not redis.call('ZSCORE', key, ARGV[2]) then
      return i
    end
  elseif redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then
    return i
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[2])
  redis.call('PEXPIRE', key, ttl)
end
return 0
