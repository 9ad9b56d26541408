-- Revoke one API token or publishable key of a website by its (non-secret) token id.
--
-- KEYS[1]  site hash      secret token digest (64 hex characters) -> "<token id>:<created ms>"
-- KEYS[2]  public hash    publishable key digest -> "<token id>:<created ms>:<origins>"
-- ARGV[1]  token id
-- Returns 1 revoked, 0 no such token.
local prefix = ARGV[1] .. ':'
for _, key in ipairs(KEYS) do
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    if #fields[i] == 64 and string.sub(fields[i + 1], 1, #prefix) == prefix then
      redis.call('HDEL', key, fields[i])
      return 1
    end
  end
end
return 0
