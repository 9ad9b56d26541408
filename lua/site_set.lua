-- Set one field of an existing website (its plan).
--
-- KEYS[1]  site hash
-- ARGV[1]  field, ARGV[2] value
-- Returns 1 set, 0 unknown website (nothing is created).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
