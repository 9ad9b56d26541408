-- Record one pageview of a website, in one atomic step: the visitor, the page they
-- are on, where their visit came from, their country, and the minute's history.
--
-- KEYS[1]  site hash      (the website must exist; nothing is written otherwise)
-- KEYS[2]  visitors zset  member: visitor id, score: ms of that visitor's latest pageview
-- KEYS[3]  salt string    "<day>:<secret>", today's salt for cookieless ids
-- KEYS[4]  client counter new visitors counted from this client address this window
-- KEYS[5]  details hash, KEYS[6] pages zset, KEYS[7..9] by page, source, country zsets:
--          see lib/breakdowns.lua
-- KEYS[10] history hash   "p<minute>" pageviews and "v<minute>" visitors of each minute
--          (minute: ms / 60000), and "oldest", the oldest minute kept
-- ARGV[1]  window in ms
-- ARGV[2]  mode: "v" ARGV[3] is the visitor's own id; "a" anonymous, identified by
--          ARGV[3] client IP and ARGV[4] User-Agent; "n" a crawler: check, never count
-- ARGV[5]  a fresh random secret, stored only when today's salt is missing
-- ARGV[6]  trim budget: at most this many expired members are removed per call, so
--          one call stays cheap when a large share of the set expires at once
-- ARGV[7]  most new visitors one client address may add per window; 0: no cap
-- ARGV[8]  the page's path; ARGV[9] the source of a visit starting here; ARGV[10] the
--          visitor's country (kept from a visit's first pageview, like the source)
-- ARGV[11] minutes of history kept
-- Returns 0 unknown website, 1 counted, 2 accepted but not counted (a crawler),
-- 3 accepted but not counted (the client address is over its cap).
local site, visitors, salt, client = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local details, pages, by_page, by_source, by_country = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local history = KEYS[10]
local window, mode, who, agent = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local fresh, budget, cap = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local page, source, country, kept = ARGV[8], ARGV[9], ARGV[10], tonumber(ARGV[11])
-- include: lib/breakdowns

-- A visitor's member: 72 bits of SHA-1 in 12 URL-safe base64 characters. Members of
-- at most 12 bytes take 16 bytes less per visitor on Redis 7 than 16 (bench/), and 72
-- bits make a collision in a set of a million visitors a one-in-ten-billion event.
-- Arithmetic on two 36-bit halves: the cheapest conversion measured in Lua.
local ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
local function member_of(text)
  local h = redis.sha1hex(text)
  local a, b = tonumber(string.sub(h, 1, 9), 16), tonumber(string.sub(h, 10, 18), 16)
  local f, A, byte = math.floor, ALPHABET, string.byte
  return string.char(
    byte(A, f(a / 1073741824) + 1), byte(A, f(a / 16777216) % 64 + 1),
    byte(A, f(a / 262144) % 64 + 1), byte(A, f(a / 4096) % 64 + 1),
    byte(A, f(a / 64) % 64 + 1), byte(A, a % 64 + 1),
    byte(A, f(b / 1073741824) + 1), byte(A, f(b / 16777216) % 64 + 1),
    byte(A, f(b / 262144) % 64 + 1), byte(A, f(b / 4096) % 64 + 1),
    byte(A, f(b / 64) % 64 + 1), byte(A, b % 64 + 1))
end

if redis.call('EXISTS', site) == 0 then return 0 end
if mode == 'n' then return 2 end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local member
if mode == 'v' then
  member = member_of('v\0' .. who)
else
  -- The salt rotates at midnight UTC by the server's clock, so an anonymous id
  -- cannot be linked across days (Plausible's scheme).
  local day = tostring(math.floor(now / 86400000)) .. ':'
  local stored = redis.call('GET', salt)
  local secret
  if stored and string.sub(stored, 1, #day) == day then
    secret = string.sub(stored, #day + 1)
  else
    secret = fresh
    redis.call('SET', salt, day .. secret, 'PX', 2 * 86400000)
  end
  member = member_of('a\0' .. secret .. '\0' .. who .. '\0' .. agent)
end

-- One address cannot inflate the count without bound: past `cap` new visitors in a
-- window it only refreshes the visitors it already brought. A visitor who has left
-- the window (trimmed or not yet) comes back as a new one.
local last = tonumber(redis.call('ZSCORE', visitors, member))
local here = last and last > now - window
if cap > 0 and not here then
  local added = redis.call('INCR', client)
  if added == 1 then redis.call('PEXPIRE', client, window) end
  if added > cap then return 3 end
end

-- A repeated pageview moves the visitor forward, never backward (a clock step back).
local at = now
if last and last > now then at = last end
local known = last and redis.call('HGET', details, member)
-- Whether this call may have created a key (a first value, a first visitor), which
-- must then get its expiry.
local created = false
if here and known then
  -- The same visit: it keeps its source and country and moves to this page.
  local was
  country, source, was = split(known)
  if was ~= page or at ~= last then
    -- Added before the old entry goes, so that the set is never empty for a moment.
    redis.call('ZADD', pages, 0, entry(page, at, member))
    redis.call('ZREM', pages, entry(was, last, member))
  end
  if was ~= page then
    bump(by_page, was, -1)
    created = bump(by_page, page, 1) == 1
    redis.call('HSET', details, member, country .. '\t' .. source .. '\t' .. page)
  end
else
  -- A new visit. A visitor who left but is not trimmed yet leaves everything first.
  if last then leave(member, last, known) end
  bump(by_page, page, 1)
  bump(by_source, source, 1)
  bump(by_country, country, 1)
  redis.call('HSET', details, member, country .. '\t' .. source .. '\t' .. page)
  redis.call('ZADD', pages, 0, entry(page, at, member))
  created = true
end
redis.call('ZADD', visitors, at, member)

-- Per minute: pageviews, and visitors whose first pageview of the minute this is.
local minute = math.floor(now / 60000)
if redis.call('HINCRBY', history, 'p' .. minute, 1) == 1 then
  -- The minute's first pageview drops the minutes that fell out of the history.
  local oldest = tonumber(redis.call('HGET', history, 'oldest')) or minute
  for m = oldest, math.min(minute - kept, oldest + kept) do
    redis.call('HDEL', history, 'p' .. m, 'v' .. m)
  end
  redis.call('HSET', history, 'oldest', math.max(oldest, minute - kept + 1))
  redis.call('PEXPIRE', history, (kept + 1) * 60000)
end
if not (last and math.floor(last / 60000) >= minute) then
  redis.call('HINCRBY', history, 'v' .. minute, 1)
end

trim(now, window, budget)
-- An idle website's keys disappear by themselves once its last visitor has left: one
-- window after the latest score (which after a clock step backward may lie ahead),
-- rounded up to a whole second, so that a busy second sets the expiry once, not at
-- every pageview. Expiries only move forward: the latest score is the largest `at`.
local expiry = math.ceil((at + window) / 1000) * 1000
local current = redis.call('PEXPIRETIME', visitors)  -- -1 when it has none
if created or current < expiry then
  expiry = math.max(expiry, current)
  redis.call('PEXPIREAT', visitors, expiry)
  for i = 5, 9 do redis.call('PEXPIREAT', KEYS[i], expiry) end
end
return 1
