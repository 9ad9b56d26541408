-- The live count for public reads and streams: no token, no budget. Each API process
-- calls it at most once a second per website, path and window, and shares the answer.
--
-- KEYS[1]  site hash      (only whether it exists)
-- KEYS[2]  visitors zset  as in pageview.lua
-- KEYS[3]  pages zset     as in pageview.lua
-- KEYS[4]  public hash    publishable key digest -> "<token id>:<created ms>:<origins>"
-- ARGV[1]  how far back to count, in ms
-- ARGV[2]  a page's path: count only the visitors whose latest pageview is on it; "" all
-- Returns {found, visitors, now ms, digest, value, digest, value, ...}: found 0 for an
-- unknown website; the pairs are the website's publishable keys, so that a process
-- checks every key of the website against one answer.
-- include: lib/count
local site, visitors, pages, public = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local since, page = tonumber(ARGV[1]), ARGV[2]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', site) == 0 then return {0, 0, now} end

local reply = {1, count_visitors(visitors, pages, since, page, now), now}
for _, item in ipairs(redis.call('HGETALL', public)) do reply[#reply + 1] = item end
return reply
