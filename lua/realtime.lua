-- Answer "how many visitors right now?" for a website: authenticate, take one
-- request from the website's token bucket, count. One atomic step.
--
-- KEYS[1]  site hash      fields plan, bucket, bucket_ts and one per token digest
-- KEYS[2]  visitors zset  as in pageview.lua
-- KEYS[3]  failures       failed authentications from this client address
-- ARGV[1]  window in ms
-- ARGV[2]  SHA-256 hex digest of the presented token
-- ARGV[3]  failed authentications a client address may make per ARGV[4] ms
-- ARGV[5], ARGV[6], ...  plan name, requests per hour; the first pair also serves
--          a website whose plan is no longer configured
-- Returns {status, visitors, limit, remaining, reset ms, retry-after ms, now ms};
-- status 0 ok, 1 unknown website, 2 invalid token, 3 rate limited, 4 too many
-- failed authentications from this client address (retry-after ms set).
local site, visitors, failures = KEYS[1], KEYS[2], KEYS[3]
local window, max_failures, failure_window = tonumber(ARGV[1]), tonumber(ARGV[3]), ARGV[4]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Everything the request needs to know about the website, in one read.
local state = redis.call('HMGET', site, 'plan', 'bucket', 'bucket_ts', ARGV[2])
local plan = state[1]
if not plan then return {1, 0, 0, 0, 0, 0, now} end
-- Guessing tokens costs the guesser: past max_failures, its address waits.
local failed = tonumber(redis.call('GET', failures) or '0')
if failed >= max_failures then
  return {4, 0, 0, 0, 0, math.max(1, redis.call('PTTL', failures)), now}
end
-- Checked before the bucket: a wrong token never spends the website's budget.
if not state[4] then
  if redis.call('INCR', failures) == 1 then redis.call('PEXPIRE', failures, failure_window) end
  return {2, 0, 0, 0, 0, 0, now}
end

local limit = tonumber(ARGV[6])
for i = 5, #ARGV - 1, 2 do
  if ARGV[i] == plan then limit = tonumber(ARGV[i + 1]) end
end

-- Token bucket: capacity `limit`, refilled continuously at limit per hour.
local rate = limit / 3600000
local level, ts = tonumber(state[2]), tonumber(state[3])
if level == nil or ts == nil then level, ts = limit, now end
if now > ts then level, ts = level + (now - ts) * rate, now end
if level > limit then level = limit end

local status, retry = 0, 0
if level >= 1 then
  level = level - 1
else
  status, retry = 3, math.ceil((1 - level) / rate)
end
redis.call('HSET', site, 'bucket', tostring(level), 'bucket_ts', ts)
local reset = math.ceil((limit - level) / rate)
if status == 3 then return {3, 0, limit, 0, reset, retry, now} end

-- Members whose latest pageview is older than the window have left. Trimming
-- them is pageview.lua's job; the count never depends on it.
local count = redis.call('ZCOUNT', visitors, '(' .. (now - window), '+inf')
return {0, count, limit, math.floor(level), reset, retry, now}
