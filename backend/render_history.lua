-- Fold one real render duration into the moving history of one (model, route).
--
-- KEYS[1]  genhook:render_time:{model}:{route_key}   hash, TTL refreshed on every write
--            mean   exponentially weighted moving average of render seconds
--            mad    the same average of |sample - mean| (how much renders vary)
--            n      samples folded in so far
--
-- ARGV[1]  the sample, seconds
-- ARGV[2]  alpha: weight of a new sample once warmed up
-- ARGV[3]  warm-up: the first samples are a plain running mean, never clamped
-- ARGV[4]  after warm-up a sample is clamped to mean +- max(ARGV[4] * mad, ARGV[5] * mean),
-- ARGV[5]  so one outlier moves the mean a little while a lasting change still wins
-- ARGV[6]  TTL of the key, seconds
--
-- Returns the new sample count.
local x = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'mean', 'mad', 'n')
local n = tonumber(state[3]) or 0
local mean = tonumber(state[1]) or x
local mad = tonumber(state[2]) or 0

if n >= tonumber(ARGV[3]) then
  local width = math.max(tonumber(ARGV[4]) * mad, tonumber(ARGV[5]) * mean)
  x = math.min(math.max(x, mean - width), mean + width)
end

local alpha = math.max(tonumber(ARGV[2]), 1 / (n + 1))
mad = mad + alpha * (math.abs(x - mean) - mad)
mean = mean + alpha * (x - mean)

redis.call('HSET', KEYS[1], 'mean', tostring(mean), 'mad', tostring(mad), 'n', tostring(n + 1))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
return n + 1
