-- Shared by the read scripts (included by scripts.py): authenticate a read and take
-- one request from the website's token bucket, before anything is counted.
--
-- authorize(site, failures, digest, max_failures, failure_window, plans_from, now)
--   site, failures  the site hash and this client address's failure counter (KEYS)
--   digest          SHA-256 hex digest of the presented token
--   plans_from      index in ARGV of the first "plan name, requests per hour" pair; the
--                   first pair also serves a website whose plan is no longer configured
-- Returns nil, limit, remaining, reset ms when the read may go on; otherwise the
-- whole reply {status, 0, limit, remaining, reset ms, retry-after ms, now ms}:
-- status 1 unknown website, 2 invalid token, 3 rate limited, 4 too many failed
-- authentications from this client address (retry-after ms set).
local function authorize(site, failures, digest, max_failures, failure_window, plans_from, now)
  -- Everything the request needs to know about the website, in one read.
  local state = redis.call('HMGET', site, 'plan', 'bucket', 'bucket_ts', digest)
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

  local limit = tonumber(ARGV[plans_from + 1])
  for i = plans_from, #ARGV - 1, 2 do
    if ARGV[i] == plan then limit = tonumber(ARGV[i + 1]) end
  end

  -- Token bucket: capacity `limit`, refilled continuously at limit per hour.
  local rate = limit / 3600000
  local level, ts = tonumber(state[2]), tonumber(state[3])
  if level == nil or ts == nil then level, ts = limit, now end
  if now > ts then level, ts = level + (now - ts) * rate, now end
  if level > limit then level = limit end

  local limited = level < 1
  if not limited then level = level - 1 end
  redis.call('HSET', site, 'bucket', tostring(level), 'bucket_ts', ts)
  local reset = math.ceil((limit - level) / rate)
  if limited then return {3, 0, limit, 0, reset, math.ceil((1 - level) / rate), now} end
  return nil, limit, math.floor(level), reset
end
