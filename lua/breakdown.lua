-- "Which pages (sources, countries) are the visitors on right now?" for a website:
-- authenticate, take one request from the bucket, drop the visitors who have left,
-- then read the top values. One atomic step.
--
-- KEYS[1], KEYS[2], KEYS[3]  site hash, visitors zset, failures counter: as in realtime.lua
-- KEYS[4] to KEYS[8]  details hash, pages zset, by page, source, country zsets: see
--             lib/breakdowns.lua
-- ARGV[1]  window in ms
-- ARGV[2], ARGV[3], ARGV[4]  token digest, most failed authentications, their window: as in realtime.lua
-- ARGV[5]  "page", "source" or "country"
-- ARGV[6]  how many values at most
-- ARGV[7]  trim budget, as in pageview.lua
-- ARGV[8], ARGV[9], ...  plan name, requests per hour (see lib/authorize.lua)
-- Returns {status, visitors, limit, remaining, reset ms, retry-after ms, now ms,
-- value, visitors, value, visitors, ...}: most visitors first, then by value.
-- include: lib/authorize
local site, visitors, failures = KEYS[1], KEYS[2], KEYS[3]
local details, pages, by_page, by_source, by_country = KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local window, top, budget = tonumber(ARGV[1]), tonumber(ARGV[6]), tonumber(ARGV[7])
local counts = ({page = by_page, source = by_source, country = by_country})[ARGV[5]]
-- include: lib/breakdowns

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local refused, limit, remaining, reset = authorize(site, failures, ARGV[2], tonumber(ARGV[3]), ARGV[4], 8, now)
if refused then return refused end

-- The breakdowns count whoever has not been trimmed: trim first, so that they are exact.
trim(now, window, budget)
local reply = {0, redis.call('ZCOUNT', visitors, '(' .. (now - window), '+inf'), limit,
  remaining, reset, 0, now}

-- The top values by visitors; among the values tied with the last one, the first by
-- value (a reverse range would give the last).
local ranked = redis.call('ZRANGE', counts, '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, top, 'WITHSCORES')
local items = {}
if #ranked > 0 then
  local floor = ranked[#ranked]
  for i = 1, #ranked, 2 do
    if ranked[i + 1] ~= floor then items[#items + 1] = {ranked[i], tonumber(ranked[i + 1])} end
  end
  local tied = redis.call('ZRANGE', counts, floor, floor, 'BYSCORE', 'LIMIT', 0, top - #items)
  for i = 1, #tied do items[#items + 1] = {tied[i], tonumber(floor)} end
  table.sort(items, function(a, b)
    if a[2] ~= b[2] then return a[2] > b[2] end
    return a[1] < b[1]
  end)
end
for i = 1, #items do
  reply[#reply + 1] = items[i][1]
  reply[#reply + 1] = items[i][2]
end
return reply
