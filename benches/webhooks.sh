# shellcheck shell=bash
# Sourced by benches/run.sh (not run on its own): measures webhook delivery on the PostgreSQL
# server run.sh started, to a local receiver (target/release/receiver, answering 200 at once):
#   1. deliveries per second with 1 endpoint, then with 10 endpoints, all subscribed to
#      `atlas.event.received` and pointing at the receiver: inbound events are created as fast
#      as wrk can ($CLIENTS connections, POST /v1/atlas/events, a new number each time) for
#      $WH_LOAD_SECS_1 / $WH_LOAD_SECS_10 seconds (E events), then the deliveries are left to
#      drain. The figure is succeeded deliveries / (wrk's start .. the last delivery's
#      `finished_at_us`), read from `webhook_deliveries` (polled with psql every 0.5 s until
#      none is pending); compared with the pgbench one-row-insert baseline (target >= 0.25).
#      The 1-endpoint and 10-endpoint loads write to customers of their own (`+166…`, `+177…`).
#      Also shown: the rate while events were still being created and the drain rate after.
#   2. send → webhook latency: an endpoint subscribed to `agent.message_delivery`; $WH_MESSAGES
#      text sends (each to a number whose window an inbound event opened) about $WH_MSG_RATE/s;
#      the receiver records, per message, its arrival time of the `sent` delivery minus the
#      message's `created_at` (its queue time): p50 and p99.
# Delivery to a loopback receiver needs ATLAS_WEBHOOKS_ALLOW_PRIVATE=true (off by default on
# PostgreSQL, and checked again at every attempt): when run.sh's server lacks it, the server is
# restarted with it and every other setting as before (as messages.sh does for the channel cap).
# Uses run.sh's BIN, API_BIN, BASE, KEY, CLIENTS, PG, DB, PGBENCH, SERVER and helpers (field, wrk_atlas);
# defines WH_* variables and
# prints its own summary block. Runs under run.sh's `set -euo pipefail`.

WH_LOAD_SECS_1=${WH_LOAD_SECS_1:-5}
WH_LOAD_SECS_10=${WH_LOAD_SECS_10:-2}
WH_MESSAGES=${WH_MESSAGES:-200}
WH_MSG_RATE=${WH_MSG_RATE:-20}
WH_RECV_ADDR=${WH_RECV_ADDR:-127.0.0.1:18097}
# Unique per run, so the rows of this run's endpoints are told apart by URL.
WH_HOOK=http://$WH_RECV_ADDR/hook/$$

wh_sql() { psql -qtAX "$PG/$DB" -c "$1"; }
wh_now_us() { echo $(($(date +%s%N) / 1000)); }
wh_div() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b > 0) printf "%.*f", d, a / b; else print "n/a" }'; }
wh_field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
wh_api() { # METHOD PATH [BODY]: prints the body, then the status on its own line
  curl -s -w '\n%{http_code}' -X "$1" "$BASE$2" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' ${3:+-d "$3"}
}
wh_endpoint() { # URL EVENT: creates an endpoint, prints its id
  local answer
  answer=$(wh_api POST /v1/atlas/webhooks "{\"url\":\"$1\",\"events\":[\"$2\"]}")
  if [ "$(tail -n1 <<<"$answer")" != 201 ]; then
    echo "creating the endpoint $1 answered: $answer" >&2
    return 1
  fi
  sed -n 's/.*"id":"\(whep_[0-9a-f]*\)".*/\1/p' <<<"$answer" | head -n1
}
wh_disable() { for id in "$@"; do wh_api PATCH "/v1/atlas/webhooks/$id" '{"enabled":false}' >/dev/null; done; }
wh_cleanup() {
  [ -n "${WH_RECV:-}" ] && kill "$WH_RECV" 2>/dev/null || true
  if declare -F cleanup >/dev/null; then cleanup; fi
}
trap wh_cleanup EXIT

echo
echo "== webhook deliveries to a local receiver (PostgreSQL)"

# The server must allow a loopback target.
if ! tr '\0' '\n' <"/proc/$SERVER/environ" | grep -qiE '^ATLAS_WEBHOOKS_ALLOW_PRIVATE=(1|true|yes|on)$'; then
  echo "-- restarting the server with ATLAS_WEBHOOKS_ALLOW_PRIVATE=true (every other setting as before)"
  mapfile -t WH_SERVER_ENV < <(tr '\0' '\n' <"/proc/$SERVER/environ" | grep -E '^(ATLAS_|RUST_LOG=)' | grep -v '^ATLAS_WEBHOOKS_ALLOW_PRIVATE=' || true)
  kill "$SERVER"
  wait "$SERVER" 2>/dev/null || true
  # Release what the stopped process held (its leases would otherwise keep the rows for minutes).
  wh_sql "UPDATE outbox SET lease_until_us = NULL WHERE finished_at_us IS NULL AND lease_until_us IS NOT NULL" >/dev/null
  wh_sql "UPDATE webhook_deliveries SET lease_until_us = NULL WHERE status = 'pending' AND lease_until_us IS NOT NULL" >/dev/null
  env "${WH_SERVER_ENV[@]}" RUST_LOG="${RUST_LOG:-warn}" ATLAS_WEBHOOKS_ALLOW_PRIVATE=true \
    "$API_BIN" >>/tmp/atlas_bench_server.out 2>>/tmp/atlas_bench_server.err &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf -o /dev/null "$BASE/healthz" && break; sleep 0.1; done
fi

# Start from a quiet server: the earlier scenarios' sends and their webhook events (fanned out
# in creation order, so a backlog would delay ours) are finished first.
WH_T=$(wh_now_us)
while :; do
  WH_BUSY=$(wh_sql "SELECT (SELECT count(*) FROM outbox WHERE finished_at_us IS NULL) + (SELECT count(*) FROM webhook_events WHERE fanned_out_at_us IS NULL)")
  [ "$WH_BUSY" -eq 0 ] && break
  if [ "$(wh_now_us)" -gt $((WH_T + 300000000)) ]; then
    echo "still $WH_BUSY outbox rows / webhook events unfinished after 300 s; measuring anyway" >&2
    break
  fi
  sleep 0.5
done
WH_QUIET_SECS=$(wh_div "$(($(wh_now_us) - WH_T))" 1000000 1)
echo "(waited ${WH_QUIET_SECS}s for the outbox and the webhook fan-out to be idle)"

if curl -s -o /dev/null "http://$WH_RECV_ADDR/stats"; then
  echo "something already listens on $WH_RECV_ADDR (set WH_RECV_ADDR)" >&2
  exit 1
fi
"$BIN/receiver" "$WH_RECV_ADDR" >/tmp/atlas_bench_receiver.out &
WH_RECV=$!
for _ in $(seq 1 50); do curl -s -o /dev/null "http://$WH_RECV_ADDR/stats" && break; sleep 0.1; done

# wh_throughput TAG ENDPOINTS LOAD_SECS: the endpoints are already created with URLs under
# $WH_HOOK/TAG/; sets WH_LINE (the result) and WH_RATE.
wh_throughput() {
  local tag=$1 endpoints=$2 load_secs=$3 area=$4
  local mine="d.endpoint_id IN (SELECT id FROM webhook_endpoints WHERE url LIKE '$WH_HOOK/$tag/%')"
  local t0 t1 line ok expected counts done_ failed pending undispatched last_change progress now
  t0=$(wh_now_us)
  line=$(WRK_METHOD=POST WRK_AREA="$area" \
    WRK_BODY='{"customer":{"phone_number":"{phone}"},"event_type":"message.received","message":{"text":"hi"}}' \
    wrk_atlas "$CLIENTS" "$load_secs" "$BASE/v1/atlas/events")
  t1=$(wh_now_us)
  # wrk counts the answers it read before its deadline; the requests in flight then are served
  # too, so a few more events (and deliveries) than `ok` may exist: the rate counts the rows.
  ok=$(field ok "$line")
  expected=$((ok * endpoints))
  last_change=$t1
  progress=-1
  while :; do
    counts=$(wh_sql "SELECT count(*) FILTER (WHERE status = 'succeeded') || ' ' || count(*) FILTER (WHERE status = 'failed') || ' '
      || count(*) FILTER (WHERE status = 'pending') || ' ' || (SELECT count(*) FROM webhook_events WHERE fanned_out_at_us IS NULL)
      FROM webhook_deliveries d WHERE $mine")
    read -r done_ failed pending undispatched <<<"$counts"
    now=$(wh_now_us)
    [ $((done_ + failed)) -ge "$expected" ] && [ "$pending" -eq 0 ] && [ "$undispatched" -eq 0 ] && break
    if [ $((done_ + failed)) -ne "$progress" ]; then
      progress=$((done_ + failed))
      last_change=$now
    elif [ "$now" -gt $((last_change + 60000000)) ]; then
      echo "no delivery finished for 60 s: $done_ succeeded, $failed failed, $pending pending of $expected" >&2
      break
    fi
    sleep 0.5
  done
  # Exact figures from the rows (server clock = this machine's clock).
  local stats last during after p50 p99
  stats=$(wh_sql "SELECT count(*) || ' ' || coalesce(max(finished_at_us), 0) || ' ' || count(*) FILTER (WHERE finished_at_us <= $t1)
      FROM webhook_deliveries d WHERE $mine AND status = 'succeeded'")
  read -r done_ last during <<<"$stats"
  after=$((done_ - during))
  read -r p50 p99 <<<"$(wh_sql "SELECT coalesce(percentile_disc(0.5) WITHIN GROUP (ORDER BY a.latency_ms), 0) || ' '
      || coalesce(percentile_disc(0.99) WITHIN GROUP (ORDER BY a.latency_ms), 0)
      FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE $mine")"
  failed=$(wh_sql "SELECT count(*) FROM webhook_deliveries d WHERE $mine AND status <> 'succeeded'")
  WH_RATE=$(wh_div "$((done_ * 1000000))" "$((last - t0))" 0)
  local during_rate after_rate
  during_rate=$(wh_div "$((during * 1000000))" "$((t1 - t0))" 0)
  if [ "$after" -gt 0 ]; then after_rate=$(wh_div "$((after * 1000000))" "$((last - t1))" 0); else after_rate=n/a; fi
  WH_LINE="$WH_RATE/s ($(wh_div "$WH_RATE" "${PGBENCH:-0}") x pgbench; target >= 0.25): $ok events, $done_ of $expected deliveries succeeded"
  WH_LINE+=" ($failed not) in $(wh_div "$((last - t0))" 1000000 1)s; $during_rate/s during the ${load_secs}s of event creation, $after_rate/s after;"
  WH_LINE+=" attempt p50 ${p50} ms, p99 ${p99} ms"
  echo "deliveries=$done_ expected=$expected failed=$failed events=$ok rate=$WH_RATE during_load=$during_rate after_load=$after_rate attempt_p50_ms=$p50 attempt_p99_ms=$p99"
}

echo "-- 1 endpoint (atlas.event.received), events from $CLIENTS clients for ${WH_LOAD_SECS_1}s, then drained"
WH_EP1=$(wh_endpoint "$WH_HOOK/one/1" atlas.event.received)
wh_throughput one 1 "$WH_LOAD_SECS_1" 66
WH_RATE_1=$WH_RATE
WH_LINE_1=$WH_LINE
wh_disable "$WH_EP1"

echo "-- 10 endpoints (atlas.event.received), events from $CLIENTS clients for ${WH_LOAD_SECS_10}s, then drained"
WH_EP10=()
for i in $(seq 1 10); do WH_EP10+=("$(wh_endpoint "$WH_HOOK/ten/$i" atlas.event.received)"); done
wh_throughput ten 10 "$WH_LOAD_SECS_10" 77
WH_RATE_10=$WH_RATE
WH_LINE_10=$WH_LINE
wh_disable "${WH_EP10[@]}"

echo "-- send -> webhook latency: $WH_MESSAGES text sends at about $WH_MSG_RATE/s, 1 endpoint (agent.message_delivery)"
WH_EPL=$(wh_endpoint "$WH_HOOK/latency/1" agent.message_delivery)
# Open each number's window first (these events go to no endpoint now).
for i in $(seq 1 "$WH_MESSAGES"); do
  printf -v WH_PHONE '+1555777%04d' "$i"
  curl -s -o /dev/null -X POST "$BASE/v1/atlas/events" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
    -d "{\"customer\":{\"phone_number\":\"$WH_PHONE\"},\"event_type\":\"message.received\",\"message\":{\"text\":\"hi\"}}"
done
WH_T=$(wh_now_us)
WH_SEND_ERRORS=0
for i in $(seq 1 "$WH_MESSAGES"); do
  printf -v WH_PHONE '+1555777%04d' "$i"
  WH_STATUS=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/v1/atlas/messages" -H "Authorization: Bearer $KEY" \
    -H 'content-type: application/json' -H "Idempotency-Key: bench-wh-$$-$i" -d "{\"phone_number\":\"$WH_PHONE\",\"text\":\"hello\"}" || true)
  [ "$WH_STATUS" = 202 ] || WH_SEND_ERRORS=$((WH_SEND_ERRORS + 1))
  # Pace to WH_MSG_RATE: sleep until this send's slot.
  WH_DUE=$((WH_T + i * 1000000 / WH_MSG_RATE))
  WH_NOW=$(wh_now_us)
  if [ "$WH_NOW" -lt "$WH_DUE" ]; then sleep "$(wh_div "$((WH_DUE - WH_NOW))" 1000000 3)"; fi
done
WH_SEND_SECS=$(wh_div "$(($(wh_now_us) - WH_T))" 1000000 1)
WH_SENT=$((WH_MESSAGES - WH_SEND_ERRORS))
# Wait (at most 30 s) for every accepted send's `sent` delivery.
for _ in $(seq 1 60); do
  WH_SAMPLES=$(wh_field latency_samples "$(curl -s "http://$WH_RECV_ADDR/stats" || true)")
  [ "${WH_SAMPLES:-0}" -ge "$WH_SENT" ] && break
  sleep 0.5
done
wh_disable "$WH_EPL"
kill "$WH_RECV"
wait "$WH_RECV" 2>/dev/null || true
WH_RECV=
WH_RECV_LINE=$(tail -n1 /tmp/atlas_bench_receiver.out)
echo "$WH_RECV_LINE (sends: $WH_SENT accepted, $WH_SEND_ERRORS refused, in ${WH_SEND_SECS}s)"
WH_LAT_P50=$(wh_field latency_p50_ms "$WH_RECV_LINE")
WH_LAT_P99=$(wh_field latency_p99_ms "$WH_RECV_LINE")
WH_LAT_N=$(wh_field latency_samples "$WH_RECV_LINE")
# Where that time goes, step by step, from the rows (benches/latency_steps.sql).
WH_LAT_STEPS=$(psql -qtAX "$PG/$DB" -v hook="$WH_HOOK/latency/1" -f benches/latency_steps.sql || true)
echo "steps, p50 / p99 ms: $WH_LAT_STEPS"

echo
echo "== webhooks summary"
echo "webhook deliveries, 1 endpoint:      $WH_LINE_1"
echo "webhook deliveries, 10 endpoints:    $WH_LINE_10"
echo "send -> 'sent' webhook latency:      p50 ${WH_LAT_P50} ms, p99 ${WH_LAT_P99} ms ($WH_LAT_N of $WH_SENT sends sampled, $(wh_div "$WH_SENT" "$WH_SEND_SECS" 1)/s)"
echo "  its steps, p50 / p99 ms:           $WH_LAT_STEPS"
