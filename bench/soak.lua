-- wrk script of `make soak`: a mix of realtime reads and pageviews, counted by status.
-- Arguments (after wrk's `--`): websiteId, token, share of realtime reads (0..1),
-- delay in ms before each request (0: as fast as the server answers).
-- done() prints one line, "SOAK-RESULT {json}", for bench/soak.py to parse.

-- Visitors come and go: ids are drawn from a window of ACTIVE ids that slides by one
-- every PAGES_PER_VISITOR pageviews, so old ids stop being seen, age out of the
-- sliding window and get trimmed, and the set settles at a steady size as on a real site.
local ACTIVE = 2000
local PAGES_PER_VISITOR = 4

local threads = {}
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("id", thread_id)
  table.insert(threads, thread)
end

counts = {}
local realtime, pageview_head, share, delay_ms, pageviews, prefix

function init(args)
  local website, token = args[1], args[2]
  share, delay_ms = tonumber(args[3]), tonumber(args[4])
  math.randomseed(id * 7919 + os.time())
  prefix = "t" .. id .. "-"
  pageviews = 0
  realtime = wrk.format("GET", "/api/v1/realtime?websiteId=" .. website,
                        { ["Authorization"] = "Bearer " .. token })
  pageview_head = '{"websiteId":"' .. website .. '","url":"https://soak.example/","visitorId":"'
  if delay_ms <= 0 then
    delay = nil  -- wrk checks for delay() after init(): without it, no timer per request
  end
end

function delay()
  -- wrk waits whole milliseconds: dither so that the mean delay is delay_ms.
  return math.floor(delay_ms + math.random())
end

function request()
  if math.random() < share then
    return realtime
  end
  pageviews = pageviews + 1
  local visitor = math.floor(pageviews / PAGES_PER_VISITOR) + math.random(0, ACTIVE - 1)
  return wrk.format("POST", "/api/v1/pageview", { ["Content-Type"] = "application/json" },
                    pageview_head .. prefix .. visitor .. '"}')
end

function response(status, headers, body)
  local key = tostring(status)
  counts[key] = (counts[key] or 0) + 1
end

function done(summary, latency, requests)
  local statuses = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do
      statuses[status] = (statuses[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(statuses) do
    table.insert(parts, string.format('"%s":%d', status, n))
  end
  local errors = summary.errors
  io.write(string.format(
    'SOAK-RESULT {"requests":%d,"duration_us":%d,"statuses":{%s},' ..
    '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, table.concat(parts, ","),
    errors.connect, errors.read, errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
