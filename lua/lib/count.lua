-- Shared by realtime.lua and live.lua (included by scripts.py): the visitors whose
-- latest pageview is newer than now - since, on one page's path if `page` is not "".
-- Members older than the window have left; trimming them is pageview.lua's job, and
-- the count never depends on it.
local function count_visitors(visitors, pages, since, page, now)
  if page == '' then
    return redis.call('ZCOUNT', visitors, '(' .. (now - since), '+inf')
  end
  -- The page's entries, from the first one newer than now - since to the page's end.
  local from = '[' .. page .. '\0' .. string.format('%013.0f', now - since + 1)
  return redis.call('ZLEXCOUNT', pages, from, '(' .. page .. '\1')
end
