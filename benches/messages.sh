# shellcheck shell=bash
# Sourced by benches/run.sh (not run on its own): measures, on the PostgreSQL server run.sh
# started,
#   1. POST /v1/atlas/messages, a template send to a new E.164 number each time (so the 24-hour
#      window never matters) through the default (sandbox) channel, with a unique
#      Idempotency-Key per request, $CLIENTS clients for ${SECS}s: rps, p50, p99, and the ratio
#      to the pgbench one-row-insert baseline (target >= 0.5);
#   2. the outbox drain rate after that load: messages the worker finishes per second, read
#      from `SELECT count(*) FROM outbox WHERE finished_at_us IS NULL` every 0.5 s (0.2 s uncapped).
#      First on run.sh's server as configured, where the per-channel cap (default 80/s, every
#      message goes to the one sandbox channel) bounds it, for at most ${SECS}s. Then, if a
#      backlog is left, the same server restarted with the cap lifted
#      (ATLAS_CHANNEL_RATE_LIMIT=1000000/s, every other setting as before) until the outbox is
#      empty: the worker's own throughput.
# Uses run.sh's BIN, BASE, KEY, SECS, CLIENTS, PG, DB, PGBENCH, SERVER; defines MSG_* variables
# and prints its own summary block. Runs under run.sh's `set -euo pipefail`.

echo
echo "== POST /v1/atlas/messages, template send to the sandbox channel, unique Idempotency-Key, $CLIENTS clients, ${SECS}s"

msg_unfinished() { psql -qtAX "$PG/$DB" -c "SELECT count(*) FROM outbox WHERE finished_at_us IS NULL"; }
msg_now_ms() { echo $(($(date +%s%N) / 1000000)); }
msg_field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
msg_div() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b > 0) printf "%.*f", d, a / b; else print "n/a" }'; }

# Template sends go out whether or not the customer's window is open.
MSG_TEMPLATE_STATUS=$(curl -s -o /tmp/atlas_bench_template.json -w '%{http_code}' -X POST "$BASE/v1/atlas/templates" \
  -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
  -d '{"name":"hello_world","language":"en_US","category":"utility","body":"Hello"}' || true)
if [ "$MSG_TEMPLATE_STATUS" != 201 ]; then
  echo "registering the template answered $MSG_TEMPLATE_STATUS: $(cat /tmp/atlas_bench_template.json)" >&2
fi

MSG_LINE=$($BIN/loadgen "$BASE/v1/atlas/messages" --method POST --key "$KEY" --idempotency-key "bench-msg-$$-{n}" \
  --body '{"phone_number":"{phone}","template_id":"hello_world","category":"utility"}' \
  --expect 202 --clients "$CLIENTS" --seconds "$SECS" | tee /dev/stderr)
MSG_RPS=$(msg_field rps "$MSG_LINE")
MSG_P50=$(msg_field p50_ms "$MSG_LINE")
MSG_P99=$(msg_field p99_ms "$MSG_LINE")
MSG_OK=$(msg_field ok "$MSG_LINE")
MSG_ERRORS=$(msg_field errors "$MSG_LINE")

echo "-- outbox drain after the load (on the server as configured: per-channel cap, default 80/s)"
MSG_BACKLOG=$(msg_unfinished)
MSG_T0=$(msg_now_ms)
MSG_LEFT=$MSG_BACKLOG
while [ "$MSG_LEFT" -gt 0 ] && [ "$(msg_now_ms)" -lt $((MSG_T0 + SECS * 1000)) ]; do
  sleep 0.5
  MSG_LEFT=$(msg_unfinished)
done
MSG_CAPPED_SECS=$(msg_div "$(($(msg_now_ms) - MSG_T0))" 1000 1)
MSG_CAPPED_DRAINED=$((MSG_BACKLOG - MSG_LEFT))
MSG_CAPPED_RATE=$(msg_div "$MSG_CAPPED_DRAINED" "$MSG_CAPPED_SECS" 0)
echo "backlog=$MSG_BACKLOG drained=$MSG_CAPPED_DRAINED in ${MSG_CAPPED_SECS}s: ${MSG_CAPPED_RATE} msg/s; left=$MSG_LEFT"

MSG_UNCAPPED_RATE="n/a"
MSG_UNCAPPED_DETAIL=" (not measured: the outbox emptied under the cap)"
if [ "$MSG_LEFT" -gt 0 ]; then
  echo "-- outbox drain with the per-channel cap lifted (the same server restarted, ATLAS_CHANNEL_RATE_LIMIT=1000000/s)"
  # Every setting run.sh gave the server, except the channel cap.
  mapfile -t MSG_SERVER_ENV < <(tr '\0' '\n' <"/proc/$SERVER/environ" | grep '^ATLAS_' | grep -v '^ATLAS_CHANNEL_RATE_LIMIT=' || true)
  kill "$SERVER"
  wait "$SERVER" 2>/dev/null || true
  # The stopped process may have left its last batch claimed; nobody holds those leases any more,
  # so release them rather than wait out the 120 s lease (that wait is the crash test's subject).
  psql -qtAX "$PG/$DB" -c "UPDATE outbox SET lease_until_us = NULL WHERE finished_at_us IS NULL AND lease_until_us IS NOT NULL" >/dev/null
  env "${MSG_SERVER_ENV[@]}" ATLAS_CHANNEL_RATE_LIMIT=1000000/s \
    "$BIN/atlas-api" >>/tmp/atlas_bench_server.out 2>>/tmp/atlas_bench_server.err &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf -o /dev/null "$BASE/healthz" && break; sleep 0.1; done
  MSG_U0=$(msg_unfinished)
  MSG_T0=$(msg_now_ms)
  MSG_LEFT=$MSG_U0
  while [ "$MSG_LEFT" -gt 0 ] && [ "$(msg_now_ms)" -lt $((MSG_T0 + 600000)) ]; do
    sleep 0.2
    MSG_LEFT=$(msg_unfinished)
  done
  MSG_UNCAPPED_SECS=$(msg_div "$(($(msg_now_ms) - MSG_T0))" 1000 1)
  MSG_UNCAPPED_RATE=$(msg_div "$((MSG_U0 - MSG_LEFT))" "$MSG_UNCAPPED_SECS" 0)
  MSG_UNCAPPED_DETAIL=" ($((MSG_U0 - MSG_LEFT)) in ${MSG_UNCAPPED_SECS}s, $MSG_LEFT left after the restart)"
  echo "backlog=$MSG_U0 drained=$((MSG_U0 - MSG_LEFT)) in ${MSG_UNCAPPED_SECS}s: ${MSG_UNCAPPED_RATE} msg/s; left=$MSG_LEFT"
fi

echo
echo "== messages summary"
echo "POST /v1/atlas/messages rps:         $MSG_RPS  ($(msg_div "$MSG_RPS" "$PGBENCH") x pgbench; target >= 0.5)  p50 ${MSG_P50} ms, p99 ${MSG_P99} ms, ok $MSG_OK, errors $MSG_ERRORS"
echo "outbox backlog after the load:       $MSG_BACKLOG messages (of $MSG_OK accepted)"
echo "outbox drain, channel cap as set:    $MSG_CAPPED_RATE msg/s ($MSG_CAPPED_DRAINED in ${MSG_CAPPED_SECS}s, $((MSG_BACKLOG - MSG_CAPPED_DRAINED)) left)"
echo "outbox drain, channel cap lifted:    $MSG_UNCAPPED_RATE msg/s$MSG_UNCAPPED_DETAIL"
