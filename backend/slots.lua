-- Take or renew one slot of a counting semaphore whose holders expire.
--
--   KEYS[1]  genhook:slots:...   zset  member: a holder's token
--                                      score:  when that hold expires (ms, Redis's clock)
--   ARGV[1]  "take" or "renew"
--   ARGV[2]  the holder's token
--   ARGV[3]  how many holders the semaphore allows (take)
--   ARGV[4]  how long a hold lasts unless renewed, in ms
--
-- Holds past their expiry are dropped first, so a holder that died (SIGKILL, a lost host)
-- frees its slot within one TTL. Redis's own clock decides, so the hosts' clocks need not
-- agree. Returns 1 if the caller holds a slot now, 0 if not (all taken, or, for "renew",
-- the hold had already expired).
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[1] == 'renew' then
  if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
    return 0
  end
elseif redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
