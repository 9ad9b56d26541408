-- Add an API token to an existing website.
--
-- KEYS[1]  site hash      token digest -> "<token id>:<created ms>"
-- ARGV[1]  SHA-256 hex digest of the token, ARGV[2] its token id
-- Returns the creation time in ms (the server's clock), or 0 for an unknown website.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. now)
return now
