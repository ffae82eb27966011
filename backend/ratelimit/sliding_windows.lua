-- Every window of one policy counted in one round trip: the sliding-window counter of the
-- `limits` library (its acquire_sliding_window.lua and sliding_window.lua, for several
-- windows at once). Per window two keys: KEYS[2i-1] the previous window's counter,
-- KEYS[2i] the current one, whose TTL runs over two windows.
-- ARGV[1]: cost; ARGV[2]: '1' to count, '0' only to look; then per window its limit and
-- its length in seconds. Windows are tried in order; after one refuses, the later ones are
-- only read (a refused hit costs nothing anywhere).
-- Returns per window {allowed (0/1), previous count, previous TTL ms, current count,
-- current TTL ms}, the counts as they are after this hit.
local cost = tonumber(ARGV[1])
local count = ARGV[2] == '1'
local refused = false
local result = {}
for i = 1, #KEYS / 2 do
    local previous_key, current_key = KEYS[2 * i - 1], KEYS[2 * i]
    local limit = tonumber(ARGV[1 + 2 * i])
    local expiry = tonumber(ARGV[2 + 2 * i]) * 1000

    local current_ttl = tonumber(redis.call('pttl', current_key))
    if current_ttl > 0 and current_ttl < expiry then
        -- The current window is over: it becomes the previous one
        redis.call('rename', current_key, previous_key)
        redis.call('set', current_key, 0, 'PX', current_ttl + expiry)
    end
    local previous_count = tonumber(redis.call('get', previous_key)) or 0
    local previous_ttl = math.max(tonumber(redis.call('pttl', previous_key)), 0)
    local current_count = tonumber(redis.call('get', current_key)) or 0
    current_ttl = math.max(tonumber(redis.call('pttl', current_key)), 0)

    local allowed = 1
    if not refused then
        local weighted = math.floor(previous_count * previous_ttl / expiry) + current_count
        if cost > limit or weighted + cost > limit then
            allowed = 0
            refused = true
        elseif count then
            if current_ttl > 0 then
                current_count = redis.call('incrby', current_key, cost)
            else
                redis.call('set', current_key, cost, 'PX', expiry * 2)
                current_count = cost
                current_ttl = expiry * 2
            end
        end
    end
    result[i] = {allowed, previous_count, previous_ttl, current_count, current_ttl}
end
return result
