-- Record one pageview of a website, in one atomic step.
--
-- KEYS[1]  site hash      (the website must exist; nothing is written otherwise)
-- KEYS[2]  visitors zset  member: visitor id, score: ms of that visitor's latest pageview
-- KEYS[3]  salt string    "<day>:<secret>", today's salt for cookieless ids
-- KEYS[4]  client counter new visitors counted from this client address this window
-- ARGV[1]  window in ms
-- ARGV[2]  mode: "v" ARGV[3] is the visitor's own id; "a" anonymous, identified by
--          ARGV[3] client IP and ARGV[4] User-Agent; "n" a crawler: check, never count
-- ARGV[5]  a fresh random secret, stored only when today's salt is missing
-- ARGV[6]  trim budget: at most this many expired members are removed per call, so
--          one call stays cheap when a large share of the set expires at once
-- ARGV[7]  most new visitors one client address may add per window; 0: no cap
-- Returns 0 unknown website, 1 counted, 2 accepted but not counted (a crawler),
-- 3 accepted but not counted (the client address is over its cap).
local site, visitors, salt, client = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local window, mode, who, agent = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local fresh, budget, cap = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])

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
if cap > 0 and not (last and last > now - window) then
  local added = redis.call('INCR', client)
  if added == 1 then redis.call('PEXPIRE', client, window) end
  if added > cap then return 3 end
end

-- GT: a repeated pageview moves the visitor forward, never backward.
redis.call('ZADD', visitors, 'GT', now, member)

local expired = redis.call('ZCOUNT', visitors, '-inf', now - window)
if expired > 0 then
  redis.call('ZREMRANGEBYRANK', visitors, 0, math.min(expired, budget) - 1)
end
-- An idle website's set disappears by itself once its last visitor has left: one
-- window after the latest score, which after a clock step backward may lie ahead.
local latest = redis.call('ZRANGE', visitors, -1, -1, 'WITHSCORES')[2]
redis.call('PEXPIREAT', visitors, math.max(now, tonumber(latest)) + window)
return 1
