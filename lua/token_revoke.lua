-- Revoke one API token of a website by its (non-secret) token id.
--
-- KEYS[1]  site hash      token digest (64 hex characters) -> "<token id>:<created ms>"
-- ARGV[1]  token id
-- Returns 1 revoked, 0 no such token.
local prefix = ARGV[1] .. ':'
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if #fields[i] == 64 and string.sub(fields[i + 1], 1, #prefix) == prefix then
    redis.call('HDEL', KEYS[1], fields[i])
    return 1
  end
end
return 0
