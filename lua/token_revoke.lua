-- Revoke one API token of a website by its (non-secret) token id.
--
-- KEYS[1]  tokens hash    digest -> "<token id>:<created ms>"
-- ARGV[1]  token id
-- Returns 1 revoked, 0 no such token.
local prefix = ARGV[1] .. ':'
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  if string.sub(entries[i + 1], 1, #prefix) == prefix then
    redis.call('HDEL', KEYS[1], entries[i])
    return 1
  end
end
return 0
