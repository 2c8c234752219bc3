#!/usr/bin/env bash
# Where a drained message's database time goes: a backlog of template sends queued for
# $SECONDS_EACH s (default 10) under the default channel cap, then drained with the caps lifted
# while PostgreSQL logs every statement of the scratch database with its duration
# (`ALTER DATABASE … SET log_min_duration_statement = 0`); the log is then summed by statement
# (benches/statement_log.py: parse, bind — where a custom plan is made — and execute apart).
#
#   bash benches/drain_profile.sh target/release/atlas-api
#   B_ENV="ATLAS_OUTBOX_PER_CHANNEL=64" bash benches/drain_profile.sh target/release/atlas-api
#
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth; PG=… for another) logging to $PG_LOG
# (default: the Debian cluster's log file), psql, wrk, curl and python3; installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: bash benches/drain_profile.sh SERVER" >&2; exit 2; }
# shellcheck source=benches/backlog.sh
source benches/backlog.sh
for tool in wrk psql curl python3; do
  command -v "$tool" >/dev/null || { echo "benches/drain_profile.sh needs $tool" >&2; exit 2; }
done
PG=${PG:-postgres://postgres@127.0.0.1:5432}
PG_LOG=${PG_LOG:-$(ls /var/log/postgresql/postgresql-*-main.log 2>/dev/null | head -n1)}
[ -r "$PG_LOG" ] || { echo "benches/drain_profile.sh reads PostgreSQL's log: set PG_LOG" >&2; exit 2; }
BIN=$1 SECS=${SECONDS_EACH:-10} PORT=18097
DB=atlas_drain_profile_$$ SERVER=
OUT=${OUT:-/tmp/atlas_drain_profile}
mkdir -p "$OUT"
stop() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  SERVER=
}
trap 'stop; psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true' EXIT
serve() {
  ATLAS_BIND=127.0.0.1:$PORT ATLAS_DATABASE_URL="$PG/$DB?sslmode=disable" ATLAS_SECRET_KEY=bench-secret-key-0123456789abcdef0123456789 \
    ATLAS_RATE_LIMIT_WRITES=50000000/min ATLAS_RATE_LIMIT_MESSAGES=50000000/min RUST_LOG=warn \
    env ${B_ENV:-} "$@" "$BIN" >"$OUT/server.out" 2>"$OUT/server.err" &
  SERVER=$!
  for _ in $(seq 1 200); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && return 0; sleep 0.1; done
  echo "the server did not start: $(cat "$OUT/server.err")" >&2
  exit 1
}
psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null
serve
KEY=$(awk '/admin api key/ {print $4}' "$OUT/server.out")
sleep 1
ATLAS_KEY=$KEY WRK_METHOD=POST WRK_AREA=58 WRK_IDEMPOTENCY="profile-{n}" \
  WRK_BODY='{"phone_number":"{phone}","template_id":"hello_world","category":"utility"}' \
  wrk -t2 -c32 -d"$SECS"s --timeout 10s -s benches/wrk/atlas.lua "http://127.0.0.1:$PORT/v1/atlas/messages" | grep '^requests='
stop
psql -qtAX "$PG/$DB" -c "UPDATE outbox SET lease_until_us = NULL WHERE finished_at_us IS NULL AND lease_until_us IS NOT NULL" >/dev/null
psql -q "$PG/postgres" -c "ALTER DATABASE $DB SET log_min_duration_statement = 0" >/dev/null
from=$(wc -l <"$PG_LOG")
serve ATLAS_CHANNEL_RATE_LIMIT=1000000/s
backlog=$(pending_sends "$PG/$DB")
t0=$(date +%s%N)
left=$(wait_drained "$PG/$DB" "$t0")
echo "drained $((backlog - left)) of $backlog in $((($(date +%s%N) - t0) / 1000000)) ms"
sleep 2 # the last receipts
stop
tail -n +$((from + 1)) "$PG_LOG" | grep "@$DB " >"$OUT/statements.log" || true
python3 benches/statement_log.py "$OUT/statements.log"
