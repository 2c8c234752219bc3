-- wrk script for the Atlas API (run by benches/run.sh from the repository's root), set up by
-- environment variables:
--   ATLAS_KEY         the API key (sent as `Authorization: Bearer …`), required;
--   WRK_METHOD        GET (default) or POST;
--   WRK_BODY          the JSON body of a POST; `{phone}` is replaced by a phone number and `{n}`
--                     by a request tag, both unique per request (across wrk's threads too);
--   WRK_IDEMPOTENCY   the `Idempotency-Key` header, `{n}` replaced the same way (absent: none);
--                     a value without `{n}` is the same key every time (a replay);
--   WRK_RUN           tells runs and scenarios apart in `{n}` (default: the process's clock);
--   WRK_AREA          two digits after `+1` in `{phone}` (default 55), so scenarios of one run
--                     write to different customers.
-- The URL (path and query) comes from wrk's command line. Prints report.lua's line at the end.
--
-- wrk runs `setup` in the main Lua state and each thread in a state of its own:
-- `thread:set("thread_id", …)` writes that thread's global, so `thread_id` must stay a global
-- here (a `local` of the same name would shadow it and every thread would count from 1).

dofile("benches/wrk/report.lua")

local threads_started = 0

function setup(thread)
  threads_started = threads_started + 1
  thread:set("thread_id", threads_started)
end

counter = 0

function init(args)
  method = os.getenv("WRK_METHOD") or "GET"
  body = os.getenv("WRK_BODY")
  idempotency = os.getenv("WRK_IDEMPOTENCY")
  run = os.getenv("WRK_RUN") or tostring(os.time())
  area = os.getenv("WRK_AREA") or "55"
  local key = os.getenv("ATLAS_KEY")
  if key == nil or key == "" then
    error("ATLAS_KEY is not set")
  end
  headers = { ["Authorization"] = "Bearer " .. key }
  if body ~= nil then
    headers["Content-Type"] = "application/json"
  end
  -- Requests that vary per call are formatted in `request`; a fixed one is formatted once.
  varies = (body ~= nil and (body:find("{phone}", 1, true) or body:find("{n}", 1, true)))
    or (idempotency ~= nil and idempotency:find("{n}", 1, true))
  if not varies then
    if idempotency ~= nil then
      headers["Idempotency-Key"] = idempotency
    end
    fixed = wrk.format(method, nil, headers, body)
  end
end

function request()
  if fixed ~= nil then
    return fixed
  end
  counter = counter + 1
  -- thread_id 1..9 and a 7-digit counter: `+1AAT0000001`, 12 digits, valid E.164.
  local n = string.format("%s-%d-%d", run, thread_id, counter)
  local phone = string.format("+1%s%d%07d", area, thread_id % 10, counter % 10000000)
  local h = {}
  for k, v in pairs(headers) do
    h[k] = v
  end
  if idempotency ~= nil then
    h["Idempotency-Key"] = idempotency:gsub("{n}", n)
  end
  local b = body
  if b ~= nil then
    b = b:gsub("{phone}", phone):gsub("{n}", n)
  end
  return wrk.format(method, nil, h, b)
end
