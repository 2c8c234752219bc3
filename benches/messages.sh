# shellcheck shell=bash
# Sourced by benches/run.sh (not run on its own): measures, on the PostgreSQL server run.sh
# started,
#   1. POST /v1/atlas/messages, a template send to a new E.164 number each time (so the 24-hour
#      window never matters) through the default (sandbox) channel, with a unique
#      Idempotency-Key per request (benches/wrk/atlas.lua), $CLIENTS wrk connections for
#      $SEND_SECS seconds (at least 30: sustained throughput, not a burst): accepted (202)
#      req/s, p50, p99, and the ratio to the pgbench one-row-insert baseline (target >= 0.5);
#      next to it the backlog at the end: accepted messages not yet handed to the provider
#      (`delivery_state` still `queued` or `sending`, as GET …/messages shows it);
#   2. the outbox drain: the same server restarted with the per-channel caps lifted
#      (ATLAS_CHANNEL_RATE_LIMIT=1000000/s, and ATLAS_OUTBOX_PER_CHANNEL=$DRAIN_PER_CHANNEL,
#      default 64: every message is on one channel, and 16 sends in flight, the default, bound
#      one channel's drain; every other setting as before) works that backlog
#      off; the figure is messages handed to the provider per second until none is left
#      (polled every 0.2 s, at most 600 s). During the load the cap (default 80/s: every message
#      goes to the one sandbox channel) keeps the worker from competing with the requests.
# Only the API's effects are read (the messages' delivery states), not the worker's tables, so
# the figures stay comparable whatever the worker's internals.
# Uses run.sh's BIN, API_BIN, BASE, KEY, SECS, CLIENTS, PG, DB, PGBENCH, SERVER and helpers (field, ratio,
# loadavg, wrk_atlas); defines MSG_* and SEND_SECS and prints its own summary block. Runs under
# run.sh's `set -euo pipefail`.

SEND_SECS=${SEND_SECONDS:-$((SECS > 30 ? SECS : 30))}
msg_pending() { psql -qtAX "$PG/$DB" -c "SELECT count(*) FROM messages WHERE direction = 'outbound' AND delivery_state IN ('queued', 'sending')"; }
msg_now_ms() { echo $(($(date +%s%N) / 1000000)); }

echo
echo "== POST /v1/atlas/messages, template send to the sandbox channel, unique Idempotency-Key, wrk $CLIENTS connections, ${SEND_SECS}s"

# Template sends go out whether or not the customer's window is open.
MSG_TEMPLATE_STATUS=$(curl -s -o /tmp/atlas_bench_template.json -w '%{http_code}' -X POST "$BASE/v1/atlas/templates" \
  -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
  -d '{"name":"hello_world","language":"en_US","category":"utility","body":"Hello"}' || true)
# 409: the organization has it already (the sandbox channel brings `hello_world`).
if [ "$MSG_TEMPLATE_STATUS" != 201 ] && [ "$MSG_TEMPLATE_STATUS" != 409 ]; then
  echo "registering the template answered $MSG_TEMPLATE_STATUS: $(cat /tmp/atlas_bench_template.json)" >&2
fi

MSG_LOAD=$(loadavg)
MSG_BEFORE=$(psql -qtAX "$PG/$DB" -c "SELECT count(*) FROM messages WHERE kind = 'template'")
MSG_LINE=$(WRK_METHOD=POST WRK_AREA=55 WRK_IDEMPOTENCY="bench-msg-{n}" \
  WRK_BODY='{"phone_number":"{phone}","template_id":"hello_world","category":"utility"}' \
  wrk_atlas "$CLIENTS" "$SEND_SECS" "$BASE/v1/atlas/messages")
MSG_RPS=$(field ok_rps "$MSG_LINE")
MSG_P50=$(field p50_ms "$MSG_LINE")
MSG_P99=$(field p99_ms "$MSG_LINE")
MSG_OK=$(field ok "$MSG_LINE")
MSG_ERRORS=$(($(field non2xx3xx "$MSG_LINE") + $(field socket_errors "$MSG_LINE")))
MSG_BACKLOG=$(msg_pending)
MSG_WRITTEN=$(($(psql -qtAX "$PG/$DB" -c "SELECT count(*) FROM messages WHERE kind = 'template'") - MSG_BEFORE))
echo "accepted=$MSG_OK written=$MSG_WRITTEN refused_or_failed=$MSG_ERRORS backlog_at_end=$MSG_BACKLOG (load average before: $MSG_LOAD)"
note_rss

DRAIN_PER_CHANNEL=${DRAIN_PER_CHANNEL:-64}
echo "-- outbox drain with the per-channel caps lifted (the same server restarted, ATLAS_CHANNEL_RATE_LIMIT=1000000/s, ATLAS_OUTBOX_PER_CHANNEL=$DRAIN_PER_CHANNEL)"
# Every setting run.sh gave the server, except the channel cap.
mapfile -t MSG_SERVER_ENV < <(tr '\0' '\n' <"/proc/$SERVER/environ" | grep -E '^(ATLAS_|RUST_LOG=)' | grep -v -E '^ATLAS_(CHANNEL_RATE_LIMIT|OUTBOX_PER_CHANNEL)=' || true)
kill "$SERVER"
wait "$SERVER" 2>/dev/null || true
# A stopped process may have left its last batch leased; nobody holds those leases any more, so
# they are released rather than waited out (that wait is the crash test's subject).
psql -qtAX "$PG/$DB" -c "UPDATE outbox SET lease_until_us = NULL WHERE finished_at_us IS NULL AND lease_until_us IS NOT NULL" >/dev/null 2>&1 || true
env "${MSG_SERVER_ENV[@]}" ATLAS_CHANNEL_RATE_LIMIT=1000000/s ATLAS_OUTBOX_PER_CHANNEL="$DRAIN_PER_CHANNEL" "$API_BIN" >>/tmp/atlas_bench_server.out 2>>/tmp/atlas_bench_server.err &
SERVER=$!
for _ in $(seq 1 100); do curl -sf -o /dev/null "$BASE/healthz" && break; sleep 0.1; done
MSG_U0=$(msg_pending)
MSG_T0=$(msg_now_ms)
MSG_LEFT=$MSG_U0
MSG_DRAIN_LOAD=$(loadavg)
while [ "$MSG_LEFT" -gt 0 ] && [ "$(msg_now_ms)" -lt $((MSG_T0 + 600000)) ]; do
  sleep 0.2
  MSG_LEFT=$(msg_pending)
done
MSG_UNCAPPED_SECS=$(ratio "$(($(msg_now_ms) - MSG_T0))" 1000 1)
MSG_UNCAPPED_RATE=$(ratio "$((MSG_U0 - MSG_LEFT))" "$MSG_UNCAPPED_SECS" 0)
if [ "$MSG_U0" -eq 0 ]; then MSG_UNCAPPED_RATE="n/a (no backlog to drain)"; fi
echo "backlog=$MSG_U0 drained=$((MSG_U0 - MSG_LEFT)) in ${MSG_UNCAPPED_SECS}s: ${MSG_UNCAPPED_RATE} msg/s; left=$MSG_LEFT (load average before: $MSG_DRAIN_LOAD)"
note_rss

echo
echo "== messages summary"
echo "POST /v1/atlas/messages accepted:    $MSG_RPS req/s over ${SEND_SECS}s ($(ratio "$MSG_RPS" "$PGBENCH") x pgbench; target >= 0.5)  p50 ${MSG_P50} ms, p99 ${MSG_P99} ms, accepted $MSG_OK, refused or failed $MSG_ERRORS; load $MSG_LOAD"
echo "backlog at the end of the load:      $MSG_BACKLOG messages not yet handed to the provider (of $MSG_WRITTEN written)"
echo "outbox drain, caps lifted ($DRAIN_PER_CHANNEL in flight per channel): $MSG_UNCAPPED_RATE msg/s ($(ratio "$MSG_UNCAPPED_RATE" "$PGBENCH") x pgbench; target >= 0.25): $((MSG_U0 - MSG_LEFT)) in ${MSG_UNCAPPED_SECS}s, $MSG_LEFT left"
