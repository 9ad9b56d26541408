-- Create a website with its first API token; never overwrites an existing one.
--
-- KEYS[1]  site hash
-- ARGV[1]  name, ARGV[2] plan
-- ARGV[3]  SHA-256 hex digest of the first token, ARGV[4] its token id
-- Returns the creation time in ms (the server's clock), or 0 if the website exists.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'plan', ARGV[2], 'created', now,
  ARGV[3], ARGV[4] .. ':' .. now)
return now
