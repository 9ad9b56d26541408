-- Answer "how many visitors right now?" for a website: authenticate, take one
-- request from the website's token bucket, count. One atomic step.
--
-- KEYS[1]  site hash      field plan
-- KEYS[2]  tokens hash    SHA-256 hex digest of each valid token
-- KEYS[3]  bucket hash    fields tokens (float) and ts (ms)
-- KEYS[4]  visitors zset  as in pageview.lua
-- ARGV[1]  window in ms
-- ARGV[2]  digest of the presented token
-- ARGV[3]  trim budget, as in pageview.lua
-- ARGV[4], ARGV[5], ...  plan name, requests per hour; the first pair also serves
--          a website whose plan is no longer configured
-- Returns {status, visitors, limit, remaining, reset ms, retry-after ms, now ms};
-- status 0 ok, 1 unknown website, 2 invalid token, 3 rate limited.
local site, tokens, bucket, visitors = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local window, digest, budget = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local plan = redis.call('HGET', site, 'plan')
if not plan then return {1, 0, 0, 0, 0, 0, now} end
-- Checked before the bucket: a wrong token never spends the website's budget.
if redis.call('HEXISTS', tokens, digest) == 0 then return {2, 0, 0, 0, 0, 0, now} end

local limit = tonumber(ARGV[5])
for i = 4, #ARGV - 1, 2 do
  if ARGV[i] == plan then limit = tonumber(ARGV[i + 1]) end
end

-- Token bucket: capacity `limit`, refilled continuously at limit per hour.
local rate = limit / 3600000
local state = redis.call('HMGET', bucket, 'tokens', 'ts')
local level, ts = tonumber(state[1]), tonumber(state[2])
if level == nil or ts == nil then level, ts = limit, now end
if now > ts then level, ts = level + (now - ts) * rate, now end
if level > limit then level = limit end

local status, retry = 0, 0
if level >= 1 then
  level = level - 1
else
  status, retry = 3, math.ceil((1 - level) / rate)
end
local reset = math.ceil((limit - level) / rate)
redis.call('HSET', bucket, 'tokens', tostring(level), 'ts', ts)
-- A bucket left alone refills completely; then its key is no longer needed.
redis.call('PEXPIRE', bucket, reset + 1000)
if status == 3 then return {3, 0, limit, 0, reset, retry, now} end

local expired = redis.call('ZCOUNT', visitors, '-inf', now - window)
if expired > 0 then
  redis.call('ZREMRANGEBYRANK', visitors, 0, math.min(expired, budget) - 1)
end
local count = redis.call('ZCOUNT', visitors, '(' .. (now - window), '+inf')
return {0, count, limit, math.floor(level), reset, retry, now}
