-- Take, renew or give back one slot in each of several counting semaphores whose holders
-- expire. One call does what a delivery needs of Redis at each end of its send.
--
--   KEYS[1..n]  genhook:slots:...  zset  member: a holder's token
--                                        score:  when that hold expires (ms, Redis's clock)
--   ARGV[1]  "take", "renew" or "release"
--   ARGV[2]  the holder's token
--   ARGV[3]  how long a hold lasts unless renewed, in ms
--   ARGV[4]  n, how many of the KEYS are semaphores
--
-- take:    ARGV[5..4+n] how many holders each allows; KEYS[n+1], if given, is a string
--          key read in the same call. Returns {0 if every slot is now held, else the
--          1-based index of the first key whose slots were all taken (then none is held);
--          the string's value or false}.
-- renew:   returns {0, false} if every hold was still there (now a TTL away), else {index}.
-- release: KEYS[n+1..n+w] lists marked for waiters (w = ARGV[5]; at most one mark each,
--          expiring after ARGV[6] ms); then, if ARGV[7] is given, KEYS[n+w+1] is set to it
--          unless already set, expiring after ARGV[8] s. Returns {0, false}.
--
-- Holds past their expiry are dropped first, so a holder that died (SIGKILL, a lost host)
-- frees its slot within one TTL. Redis's own clock decides, so the hosts' clocks need not
-- agree. A take is all or nothing.
local mode, token = ARGV[1], ARGV[2]
local ttl, n = tonumber(ARGV[3]), tonumber(ARGV[4])
if mode == 'release' then
  for i = 1, n do
    redis.call('ZREM', KEYS[i], token)
  end
  local waited = tonumber(ARGV[5])
  for i = n + 1, n + waited do
    redis.call('RPUSH', KEYS[i], 1)
    redis.call('LTRIM', KEYS[i], -1, -1)
    redis.call('PEXPIRE', KEYS[i], ARGV[6])
  end
  if ARGV[7] then
    redis.call('SET', KEYS[n + waited + 1], ARGV[7], 'NX', 'EX', ARGV[8])
  end
  return {0, false}
end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if mode == 'renew' then
    if not redis.call('ZSCORE', KEYS[i], token) then
      return {i, false}
    end
  elseif redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[4 + i]) then
    return {i, false}
  end
end
for i = 1, n do
  redis.call('ZADD', KEYS[i], now + ttl, token)
  redis.call('PEXPIRE', KEYS[i], ttl)
end
local value = false
if mode == 'take' and KEYS[n + 1] then
  value = redis.call('GET', KEYS[n + 1])
end
return {0, value}
