-- Move an existing website to another plan, carrying its rate-limit bucket over: an
-- upgrade adds the difference of the capacities (92 of 100 left on free becomes 992
-- of 1,000 on pro), a downgrade caps what is left at the new capacity.
--
-- KEYS[1]  site hash (fields plan, bucket, bucket_ts: see lib/authorize.lua)
-- ARGV[1]  the new plan
-- ARGV[2], ARGV[3], ...  plan name, requests per hour; the first pair also serves a
--          plan no longer configured (as lib/authorize.lua)
-- Returns 1 moved, 0 unknown website (nothing is created).
local site = KEYS[1]
local state = redis.call('HMGET', site, 'plan', 'bucket', 'bucket_ts')
if not state[1] then return 0 end

local function limit_of(plan)
  local limit = tonumber(ARGV[3])
  for i = 2, #ARGV - 1, 2 do
    if ARGV[i] == plan then limit = tonumber(ARGV[i + 1]) end
  end
  return limit
end

local old, new = limit_of(state[1]), limit_of(ARGV[1])
redis.call('HSET', site, 'plan', ARGV[1])
local level, ts = tonumber(state[2]), tonumber(state[3])
if level == nil or ts == nil then return 1 end  -- never read: the bucket starts full

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- First the refill the old plan owes up to now, then the change of capacity.
if now > ts then level, ts = math.min(old, level + (now - ts) * old / 3600000), now end
if new > old then level = level + (new - old) else level = math.min(level, new) end
redis.call('HSET', site, 'bucket', tostring(level), 'bucket_ts', ts)
return 1
