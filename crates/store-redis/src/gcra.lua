-- GCRA, one atomic step on Redis's own clock: the formulas of atlas_ratelimit::gcra::check.
--
-- KEYS[1]  the bucket; its value is the TAT (theoretical arrival time), in microseconds since
--          the Unix epoch, written as a decimal integer
-- ARGV[1]  T, the emission interval in microseconds (period / limit, at least 1)
-- ARGV[2]  tau, the burst tolerance in microseconds (T * (limit - 1))
--
-- Returns {allowed (1 or 0), remaining, retry_after_us, reset_after_us, tat_us}.
-- Only an admitted request writes. The key expires when its bucket is full again, since a
-- full bucket and a missing one are the same state, so idle buckets vanish by themselves.
-- Every number stays below 2^53, where Lua's doubles are exact integers.

-- Redis 3.2 to 4 must be told to replicate effects before a script may write after TIME;
-- from Redis 5 this is the default (and the call a no-op).
if redis.replicate_commands then
  redis.replicate_commands()
end

local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

-- tat = max(stored TAT, now); a missing (or unreadable) TAT is a full bucket.
local tat = now
local stored = tonumber(redis.call('GET', KEYS[1]) or '')
if stored and stored > now then
  tat = stored
end

-- Denied when now < tat - tau: nothing is written.
local allow_at = tat - tolerance
if now < allow_at then
  return {0, 0, allow_at - now, tat - now, tat}
end

-- Admitted: new_tat = tat + T; remaining = floor((tau - (new_tat - now)) / T) + 1, or 0.
local new_tat = tat + interval
local ahead = new_tat - now
local remaining = 0
if tolerance >= ahead then
  local slack = tolerance - ahead
  local whole = math.floor(slack / interval)
  if whole * interval > slack then
    whole = whole - 1 -- the division rounded up to the next integer
  end
  remaining = whole + 1
end

-- Formatted explicitly: Lua would print a 16-digit number in exponent notation.
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
  'PX', string.format('%.0f', math.ceil(ahead / 1000)))
return {1, remaining, 0, ahead, new_tat}
