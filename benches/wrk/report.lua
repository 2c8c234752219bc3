-- Shared by the scripts of benches/wrk: wrk's `done` hook prints one parseable line,
--   requests=… seconds=… rps=… ok=… ok_rps=… non2xx3xx=… socket_errors=… p50_ms=… p90_ms=… p99_ms=… max_ms=…
-- where `ok` counts the answers below 400 (wrk counts every status >= 400 as a status error)
-- and `ok_rps` is ok / seconds: the figure benches/run.sh reports.
function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  local ok = summary.requests - e.status
  io.write(string.format(
    "requests=%d seconds=%.1f rps=%.0f ok=%d ok_rps=%.0f non2xx3xx=%d socket_errors=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, seconds, summary.requests / seconds, ok, ok / seconds, e.status, socket,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
