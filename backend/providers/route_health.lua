-- Record one outcome of a call to a route and open or close the route's circuit breaker.
--
-- KEYS[1]  genhook:route_health:{route_key}    hash, TTL ARGV[12], refreshed on every write
--            consecutive_failures   failures since the last success
--            cooling_until          epoch seconds the route was opened until; left in place
--                                   after it passes (half-open) until a success deletes it
--            last_error, last_error_at, last_success_at
-- KEYS[2]  genhook:route_outcomes:{route_key}  sorted set, TTL ARGV[11]
--            score   epoch seconds of the outcome
--            member  "ok:{latency}:{nonce}" or "fail:{latency}:{nonce}" (latency may be empty)
--
-- ARGV[1]  now, epoch seconds          ARGV[7]   window, seconds
-- ARGV[2]  "ok" or "fail"              ARGV[8]   minimum samples for the rate rule
-- ARGV[3]  the sample's member         ARGV[9]   cooldown, seconds
-- ARGV[4]  reason of a failure         ARGV[10]  most samples kept
-- ARGV[5]  consecutive failures that open the route
-- ARGV[6]  failure rate over the window that opens it
-- ARGV[11] TTL of the outcomes, seconds    ARGV[12] TTL of the state, seconds
--
-- Returns {1 if this call opened the route else 0, cooling_until or ""}.
local now = tonumber(ARGV[1])
local window_start = '(' .. (now - tonumber(ARGV[7]))

redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', window_start)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[10]) + 1))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[11]))

local opened = 0
if ARGV[2] == 'ok' then
  -- A success always closes the route.
  redis.call('HSET', KEYS[1], 'consecutive_failures', 0, 'last_success_at', ARGV[1])
  redis.call('HDEL', KEYS[1], 'cooling_until')
else
  local failures = redis.call('HINCRBY', KEYS[1], 'consecutive_failures', 1)
  redis.call('HSET', KEYS[1], 'last_error', ARGV[4], 'last_error_at', ARGV[1])
  local cooling_until = tonumber(redis.call('HGET', KEYS[1], 'cooling_until'))
  local open = false
  if cooling_until and now < cooling_until then
    open = false -- already open: the cooldown stands as it was set
  elseif cooling_until then
    open = true -- half-open: the first failure after the cooldown opens it again
  elseif failures >= tonumber(ARGV[5]) then
    open = true
  else
    local samples = redis.call('ZRANGEBYSCORE', KEYS[2], window_start, '+inf')
    if #samples >= tonumber(ARGV[8]) then
      local failed = 0
      for _, member in ipairs(samples) do
        if string.sub(member, 1, 5) == 'fail:' then
          failed = failed + 1
        end
      end
      open = failed / #samples >= tonumber(ARGV[6])
    end
  end
  if open then
    redis.call('HSET', KEYS[1], 'cooling_until', tostring(now + tonumber(ARGV[9])))
    opened = 1
  end
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[12]))
return {opened, redis.call('HGET', KEYS[1], 'cooling_until') or ''}
