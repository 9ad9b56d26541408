-- Shared by pageview.lua and breakdown.lua (included by scripts.py): what is kept per
-- visitor beside the visitors zset, and how a visitor leaves all of it at once.
-- Expects the locals visitors, details, pages, by_page, by_source, by_country (KEYS).
--
-- details    hash  member -> "<country>\t<source>\t<page>" of the visitor's visit
-- pages      zset  "<page>\0<13-digit ms of the latest pageview><member>", all scores 0:
--                  a page's visitors in time order, so any page and window is one
--                  ZLEXCOUNT
-- by_page, by_source, by_country  zsets  value -> visitors now there

local function entry(page, ms, member)
  return page .. '\0' .. string.format('%013.0f', ms) .. member
end

local function split(kept)
  local a = string.find(kept, '\t', 1, true)
  local b = string.find(kept, '\t', a + 1, true)
  return string.sub(kept, 1, a - 1), string.sub(kept, a + 1, b - 1), string.sub(kept, b + 1)
end

-- Returns the value's new count.
local function bump(counts, value, by)
  local count = tonumber(redis.call('ZINCRBY', counts, by, value))
  -- A value nobody is on any more is dropped: the zsets hold only what is live.
  if count <= 0 then redis.call('ZREM', counts, value) end
  return count
end

-- The visitor leaves every breakdown (not the visitors zset: the caller's job).
local function leave(member, ms, kept)
  if not kept then return end  -- recorded before breakdowns were kept
  local country, source, page = split(kept)
  redis.call('ZREM', pages, entry(page, ms, member))
  bump(by_page, page, -1)
  bump(by_source, source, -1)
  bump(by_country, country, -1)
  redis.call('HDEL', details, member)
end

-- Removes at most `budget` visitors who have left the window, oldest first.
-- Returns how many were removed.
local function trim(now, window, budget)
  local gone = redis.call('ZRANGE', visitors, '-inf', now - window, 'BYSCORE',
    'LIMIT', 0, budget, 'WITHSCORES')
  for i = 1, #gone, 2 do
    leave(gone[i], tonumber(gone[i + 1]), redis.call('HGET', details, gone[i]))
  end
  if #gone > 0 then redis.call('ZREMRANGEBYRANK', visitors, 0, #gone / 2 - 1) end
  return #gone / 2
end
