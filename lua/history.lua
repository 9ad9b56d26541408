-- "How many visitors and pageviews in each of the last minutes?" for a website:
-- authenticate, take one request from the bucket, read the minutes. One atomic step.
--
-- KEYS[1], KEYS[2], KEYS[3]  site hash, visitors zset, failures counter: as in realtime.lua
-- KEYS[4]     history hash, as in pageview.lua
-- ARGV[1]  minutes to read, the current one last
-- ARGV[2], ARGV[3], ARGV[4]  token digest, most failed authentications, their window: as in realtime.lua
-- ARGV[5], ARGV[6], ...  plan name, requests per hour (see lib/authorize.lua)
-- Returns {status, 0, limit, remaining, reset ms, retry-after ms, now ms,
-- pageviews, visitors, pageviews, visitors, ...}, oldest minute first.
-- include: lib/authorize
local site, failures, history = KEYS[1], KEYS[3], KEYS[4]
local minutes = tonumber(ARGV[1])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local refused, limit, remaining, reset = authorize(site, failures, ARGV[2], tonumber(ARGV[3]), ARGV[4], 5, now)
if refused then return refused end

local minute = math.floor(now / 60000)
local fields = {}
for m = minute - minutes + 1, minute do
  fields[#fields + 1] = 'p' .. m
  fields[#fields + 1] = 'v' .. m
end
local reply = {0, 0, limit, remaining, reset, 0, now}
local values = redis.call('HMGET', history, unpack(fields))
for i = 1, #values do reply[#reply + 1] = tonumber(values[i] or 0) end
return reply
