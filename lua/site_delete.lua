-- Delete a website and every key it has, in one step.
--
-- KEYS[1]  site hash (its existence is the answer)
-- KEYS[2..] the website's other keys, and its per-client counters found by SCAN
-- Returns 1 deleted, 0 no such website.
local existed = redis.call('EXISTS', KEYS[1])
-- In slices: unpack() of a busy website's thousands of counters would overflow Lua's stack.
for first = 1, #KEYS, 1000 do
  redis.call('UNLINK', unpack(KEYS, first, math.min(first + 999, #KEYS)))
end
return existed
