-- Answer "how many visitors right now?" for a website, or on one of its pages:
-- authenticate, take one request from the website's token bucket, count. One atomic step.
--
-- KEYS[1]  site hash      fields plan, bucket, bucket_ts and one per token digest
-- KEYS[2]  visitors zset  as in pageview.lua
-- KEYS[3]  failures       failed authentications from this client address
-- KEYS[4]  pages zset     as in pageview.lua: "<page>\0<13-digit ms><member>", all scores 0
-- ARGV[1]  how far back to count, in ms (the window, or less)
-- ARGV[2]  SHA-256 hex digest of the presented token
-- ARGV[3]  failed authentications a client address may make per ARGV[4] ms
-- ARGV[5]  a page's path: count only the visitors whose latest pageview is on it; "" all
-- ARGV[6], ARGV[7], ...  plan name, requests per hour (see lib/authorize.lua)
-- Returns {status, visitors, limit, remaining, reset ms, retry-after ms, now ms};
-- status 0 ok, otherwise as lib/authorize.lua.
-- include: lib/authorize
-- include: lib/count
local site, visitors, failures, pages = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local since, page = tonumber(ARGV[1]), ARGV[5]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local refused, limit, remaining, reset = authorize(site, failures, ARGV[2], tonumber(ARGV[3]), ARGV[4], 6, now)
if refused then return refused end

return {0, count_visitors(visitors, pages, since, page, now), limit, remaining, reset, 0, now}
