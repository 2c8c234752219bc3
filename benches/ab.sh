#!/usr/bin/env bash
# Two builds of the server, measured in turns (A, B, A, B, …) on the same machine in the same
# minutes, so that the noise of a shared two-core machine falls on both alike. Each turn starts
# the build on a fresh PostgreSQL database (`sslmode=disable`) and measures:
#   - sends: `POST /v1/atlas/messages` (a template send to a new number, a unique
#     Idempotency-Key each), wrk with $CONNECTIONS connections for $SECONDS_EACH s, the
#     pipeline running (default channel cap); accepted req/s and the CPU the server and
#     PostgreSQL used (jiffies, 100 per second per core);
#   - webhooks: $ENDPOINTS endpoints (default 1; `atlas.event.received`) at a local receiver, inbound events from
#     $CONNECTIONS connections for 5 s, then drained; deliveries per second from the first
#     event to the last delivery's `finished_at_us`;
#   - drain: a backlog of template sends queued for $SECONDS_EACH s under the default channel
#     cap, then the same database served again with the cap lifted
#     (ATLAS_CHANNEL_RATE_LIMIT=1000000/s); messages per second until none is `queued` or
#     `sending`, and the CPU per drained message (the outbox worker, the sandbox's receipts and
#     fan-out: the pipeline without the request path);
#   - latency: one endpoint (`agent.message_delivery`) at the receiver, $LATENCY_SENDS text
#     sends paced at 20/s (each to a number an inbound event opened), an idle server otherwise;
#     p50 / p99 of each message's queue time → its `sent` delivery's arrival at the receiver,
#     and of each step on the way (benches/latency_steps.sql). With LATENCY_GROW=SECS the
#     database is grown first, as a full run grows it: template sends for SECS s, drained with
#     the caps lifted, the fan-out left to finish, then the server restarted with its own
#     settings. With LATENCY_LOG=DIR PostgreSQL logs every statement of the latency sends
#     (needs PG_LOG, default the Debian cluster's log), summed by benches/statement_log.py
#     into DIR/statements.txt.
#
#   bash benches/ab.sh /tmp/old/atlas-api target/release/atlas-api      # 2 rounds
#   ROUNDS=3 SECONDS_EACH=30 bash benches/ab.sh A B
#   STAGES=latency ROUNDS=3 bash benches/ab.sh A B                     # some of the stages
#   STAGES=drain bash benches/ab.sh A B                                 # not in the default stages
#   LATENCY_GROW=30 STAGES=latency bash benches/ab.sh A B               # latency on a grown database
#   LATENCY_GROW=30 LATENCY_LOG=/tmp/lat STAGES=latency ROUNDS=1 bash benches/ab.sh A A   # … its statements
#   B_ENV="ATLAS_SEND_BATCH_WINDOW_MS=2" bash benches/ab.sh S S         # one build, two settings
#
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth; PG=… for another), psql, wrk, curl, and
# target/release/receiver (`cargo build --release -p atlas-bench`); installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: bash benches/ab.sh SERVER_A SERVER_B" >&2; exit 2; }
# shellcheck source=benches/backlog.sh
source benches/backlog.sh
for tool in wrk psql curl; do
  command -v "$tool" >/dev/null || { echo "benches/ab.sh needs $tool (apt-get install -y $tool)" >&2; exit 2; }
done
[ -x target/release/receiver ] || { echo "benches/ab.sh needs target/release/receiver: cargo build --release -p atlas-bench" >&2; exit 2; }
PG=${PG:-postgres://postgres@127.0.0.1:5432}
PG_LOG=${PG_LOG:-$(ls /var/log/postgresql/postgresql-*-main.log 2>/dev/null | head -n1)}
SECS=${SECONDS_EACH:-20}
CONNS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-2}
LATENCY_SENDS=${LATENCY_SENDS:-200}
STAGES=${STAGES:-sends webhooks latency}
ENDPOINTS=${ENDPOINTS:-1}
PORT=18095
RECV=127.0.0.1:18096
export RUST_LOG=warn WRK_RUN=$$

SERVER= RECEIVER= DB=
stop() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  [ -n "$RECEIVER" ] && kill "$RECEIVER" 2>/dev/null && wait "$RECEIVER" 2>/dev/null || true
  [ -n "$DB" ] && psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  SERVER= RECEIVER= DB=
}
trap stop EXIT

# start BINARY [SETTING…]: the server on a fresh database, with $SIDE_ENV's settings and then
# the given ones; sets SERVER, DB, KEY.
start() {
  DB=atlas_ab_$$_$RANDOM
  psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null
  serve "$@"
  KEY=$(awk '/admin api key/ {print $4}' /tmp/atlas_ab_server.out)
  [ -n "$KEY" ] || { echo "the server printed no admin key: $(cat /tmp/atlas_ab_server.err)" >&2; exit 1; }
  sleep 1
}

# serve BINARY [SETTING…]: the server on database $DB (as `start` made it), once it answers;
# sets SERVER.
serve() {
  local binary=$1
  shift
  ATLAS_BIND=127.0.0.1:$PORT ATLAS_DATABASE_URL="$PG/$DB?sslmode=disable" ATLAS_SECRET_KEY=bench-secret-key-0123456789abcdef0123456789 \
    ATLAS_WEBHOOKS_ALLOW_PRIVATE=true ATLAS_RATE_LIMIT_READS=50000000/min ATLAS_RATE_LIMIT_WRITES=50000000/min \
    ATLAS_RATE_LIMIT_MESSAGES=50000000/min env $SIDE_ENV "$@" "$binary" >/tmp/atlas_ab_server.out 2>/tmp/atlas_ab_server.err &
  SERVER=$!
  for _ in $(seq 1 200); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && return 0; sleep 0.1; done
  echo "the server did not start: $(cat /tmp/atlas_ab_server.err)" >&2
  exit 1
}

postgres_jiffies() {
  local total=0 pid
  for pid in $(pgrep -x postgres); do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done
  echo "$total"
}
# wait_for_none COUNT_SQL: polls $DB every 0.5 s, for at most 300 s, until COUNT_SQL counts 0.
wait_for_none() {
  for _ in $(seq 1 600); do
    [ "$(psql -qtAX "$PG/$DB" -c "$1")" = 0 ] && return 0
    sleep 0.5
  done
}
field() { sed -n "s/.*[ ^]$1=\([0-9.]*\).*/\1/p" <<<"$2" | head -n1; }

sends() {
  start "$1"
  local s0 p0 line
  s0=$(awk '{print $14 + $15}' "/proc/$SERVER/stat")
  p0=$(postgres_jiffies)
  line=$(ATLAS_KEY=$KEY WRK_METHOD=POST WRK_AREA=55 WRK_IDEMPOTENCY="ab-{n}" \
    WRK_BODY='{"phone_number":"{phone}","template_id":"hello_world","category":"utility"}' \
    wrk -t2 -c"$CONNS" -d"$SECS"s --timeout 10s -s benches/wrk/atlas.lua "http://127.0.0.1:$PORT/v1/atlas/messages" | grep '^requests=')
  echo "sends $(field ok_rps "$line") req/s, p99 $(field p99_ms "$line") ms, non-2xx $(field non2xx3xx "$line");" \
    "cpu jiffies: server $(($(awk '{print $14 + $15}' "/proc/$SERVER/stat") - s0)), postgres $(($(postgres_jiffies) - p0))"
  stop
}

# queue_backlog BINARY SECS TAG: the server on a fresh database takes template sends for SECS s
# under the default channel cap, then stops; the rows it held are released rather than waited out.
queue_backlog() {
  start "$1"
  ATLAS_KEY=$KEY WRK_METHOD=POST WRK_AREA=57 WRK_IDEMPOTENCY="ab-$3-{n}" \
    WRK_BODY='{"phone_number":"{phone}","template_id":"hello_world","category":"utility"}' \
    wrk -t2 -c"$CONNS" -d"$2"s --timeout 10s -s benches/wrk/atlas.lua "http://127.0.0.1:$PORT/v1/atlas/messages" >/dev/null
  kill "$SERVER" && wait "$SERVER" 2>/dev/null || true
  psql -qtAX "$PG/$DB" -c "UPDATE outbox SET lease_until_us = NULL WHERE finished_at_us IS NULL AND lease_until_us IS NOT NULL" >/dev/null
}

drain() {
  queue_backlog "$1" "$SECS" drain
  local backlog left t0 ms s0 p0
  serve "$1" ATLAS_CHANNEL_RATE_LIMIT=1000000/s
  backlog=$(pending_sends "$PG/$DB")
  p0=$(postgres_jiffies)
  s0=$(awk '{print $14 + $15}' "/proc/$SERVER/stat")
  t0=$(date +%s%N)
  left=$(wait_drained "$PG/$DB" "$t0")
  ms=$((($(date +%s%N) - t0) / 1000000))
  echo "drain $(awk -v n=$((backlog - left)) -v ms="$ms" 'BEGIN { printf "%.0f", n * 1000 / ms }') msg/s ($((backlog - left)) of $backlog in $ms ms," \
    "$left left); cpu per message, ms: server $(awk -v j=$(($(awk '{print $14 + $15}' "/proc/$SERVER/stat") - s0)) -v n=$((backlog - left)) 'BEGIN { printf "%.2f", j * 10 / n }')," \
    "postgres $(awk -v j=$(($(postgres_jiffies) - p0)) -v n=$((backlog - left)) 'BEGIN { printf "%.2f", j * 10 / n }')"
  stop
}

webhooks() {
  start "$1"
  target/release/receiver "$RECV" >/tmp/atlas_ab_receiver.out &
  RECEIVER=$!
  local t0 line i
  for i in $(seq 1 "$ENDPOINTS"); do
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$PORT/v1/atlas/webhooks" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
      -d "{\"url\":\"http://$RECV/hook/ab/$i\",\"events\":[\"atlas.event.received\"]}"
  done
  t0=$(($(date +%s%N) / 1000))
  line=$(ATLAS_KEY=$KEY WRK_METHOD=POST WRK_AREA=66 \
    WRK_BODY='{"customer":{"phone_number":"{phone}"},"event_type":"message.received","message":{"text":"hi"}}' \
    wrk -t2 -c"$CONNS" -d5s --timeout 10s -s benches/wrk/atlas.lua "http://127.0.0.1:$PORT/v1/atlas/events" | grep '^requests=')
  wait_for_none "SELECT (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') + (SELECT count(*) FROM webhook_events WHERE fanned_out_at_us IS NULL)"
  echo "webhooks, $ENDPOINTS endpoint(s): $(field ok "$line") events; $(psql -qtAX "$PG/$DB" -c "SELECT count(*) || ' delivered, ' ||
    round(count(*) * 1e6 / (max(finished_at_us) - $t0)) || ' per s' FROM webhook_deliveries WHERE status = 'succeeded'")"
  stop
}

# grown BINARY: a database grown by $LATENCY_GROW s of sends, drained and fanned out, then served
# by BINARY with its side's settings; sets SERVER, DB, KEY.
grown() {
  queue_backlog "$1" "$LATENCY_GROW" grow
  serve "$1" ATLAS_CHANNEL_RATE_LIMIT=1000000/s ATLAS_OUTBOX_PER_CHANNEL=64
  wait_drained "$PG/$DB" "$(date +%s%N)" >/dev/null
  wait_for_none "SELECT count(*) FROM webhook_events WHERE fanned_out_at_us IS NULL"
  kill "$SERVER" && wait "$SERVER" 2>/dev/null || true
  SERVER=
  serve "$1"
}

latency() {
  if [ -n "${LATENCY_GROW:-}" ]; then grown "$1"; else start "$1"; fi
  local from=
  if [ -n "${LATENCY_LOG:-}" ]; then
    # Logged from the next connection on: the server is restarted to open its pool again.
    psql -q "$PG/postgres" -c "ALTER DATABASE $DB SET log_min_duration_statement = 0" >/dev/null
    kill "$SERVER" && wait "$SERVER" 2>/dev/null || true
    serve "$1"
    from=0
  fi
  target/release/receiver "$RECV" >/tmp/atlas_ab_receiver.out &
  RECEIVER=$!
  local hook="http://$RECV/hook/latency" api=(-H "Authorization: Bearer $KEY" -H 'content-type: application/json')
  curl -sf -o /dev/null -X POST "http://127.0.0.1:$PORT/v1/atlas/webhooks" "${api[@]}" \
    -d "{\"url\":\"$hook\",\"events\":[\"agent.message_delivery\"]}"
  local i phone t0 due now samples=0
  for i in $(seq 1 "$LATENCY_SENDS"); do
    printf -v phone '+1555888%04d' "$i"
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$PORT/v1/atlas/events" "${api[@]}" \
      -d "{\"customer\":{\"phone_number\":\"$phone\"},\"event_type\":\"message.received\",\"message\":{\"text\":\"hi\"}}"
  done
  sleep 1
  [ -n "$from" ] && from=$(wc -l <"$PG_LOG")
  t0=$(($(date +%s%N) / 1000))
  for i in $(seq 1 "$LATENCY_SENDS"); do
    printf -v phone '+1555888%04d' "$i"
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$PORT/v1/atlas/messages" "${api[@]}" -H "Idempotency-Key: ab-latency-$i" \
      -d "{\"phone_number\":\"$phone\",\"text\":\"hello\"}"
    due=$((t0 + i * 50000))
    now=$(($(date +%s%N) / 1000))
    [ "$now" -lt "$due" ] && sleep "$(awk -v d=$((due - now)) 'BEGIN { printf "%.3f", d / 1e6 }')"
  done
  for _ in $(seq 1 60); do
    samples=$(curl -s "http://$RECV/stats" | sed -n 's/.*latency_samples=\([0-9]*\).*/\1/p')
    [ "${samples:-0}" -ge "$LATENCY_SENDS" ] && break
    sleep 0.5
  done
  local line
  line=$(curl -s "http://$RECV/stats")
  echo "latency p50 $(field latency_p50_ms " $line") ms, p99 $(field latency_p99_ms " $line") ms ($samples samples$([ -n "${LATENCY_GROW:-}" ] && echo ", grown $LATENCY_GROW s"));" \
    "steps p50 / p99: $(psql -qtAX "$PG/$DB" -v hook="$hook" -f benches/latency_steps.sql)"
  if [ -n "$from" ]; then
    mkdir -p "$LATENCY_LOG"
    tail -n +$((from + 1)) "$PG_LOG" | grep "@$DB " >"$LATENCY_LOG/statements.log" || true
    python3 benches/statement_log.py "$LATENCY_LOG/statements.log" 30 >"$LATENCY_LOG/statements.txt"
  fi
  stop
}

echo "== A = $1 ${A_ENV:-}, B = $2 ${B_ENV:-}; $ROUNDS rounds; sends ${SECS}s, $CONNS connections; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    binary=$1 SIDE_ENV=${A_ENV:-}
    [ "$side" = B ] && binary=$2 SIDE_ENV=${B_ENV:-}
    for stage in $STAGES; do echo "round $round $side: $($stage "$binary")"; done
  done
done
