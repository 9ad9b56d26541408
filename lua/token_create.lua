-- Add an API token or a publishable key to an existing website.
--
-- KEYS[1]  site hash      secret token digest -> "<token id>:<created ms>"
-- KEYS[2]  public hash    publishable key digest -> "<token id>:<created ms>:<origins>"
-- ARGV[1]  SHA-256 hex digest of the token, ARGV[2] its token id
-- ARGV[3]  "secret" or "public"; ARGV[4] a public key's origins, space-separated
-- Returns the creation time in ms (the server's clock), or 0 for an unknown website.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] == 'public' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':' .. now .. ':' .. ARGV[4])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. now)
end
return now
