#!/usr/bin/env bash
# Group commit of sends, measured: the same send load against the release server on
# PostgreSQL, once per ATLAS_SEND_BATCH_WINDOW_MS in $WINDOWS (0 = off). Each run gets a fresh
# database and server; the load is wrk (Debian package `wrk`) with a Lua script that gives
# every request its own Idempotency-Key and a new E.164 number (a template send to a new
# customer, the benchmark's case), $CONNECTIONS connections for ${SECONDS_EACH}s. Prints wrk's
# figures and the outbox backlog left at the end of each run.
#   bash benches/send_batching.sh
#   WINDOWS="0 1 2 5" SECONDS_EACH=30 CONNECTIONS=32 bash benches/send_batching.sh
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth), psql and wrk; installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk psql cargo; do
  command -v "$tool" >/dev/null || { echo "send_batching.sh needs $tool (wrk: apt-get install wrk)" >&2; exit 1; }
done
SECS=${SECONDS_EACH:-30}
CONNS=${CONNECTIONS:-32}
WINDOWS=${WINDOWS:-"0 2"}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
PORT=${PORT:-18097}
BASE=http://127.0.0.1:$PORT
export RUST_LOG=warn

cargo build --release -q -p atlas-api
BIN=target/release

LUA=$(mktemp /tmp/atlas_send_XXXX.lua)
cat > "$LUA" <<'LUA'
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local n = 0
function request()
  n = n + 1
  local id = tid * 5000000 + n
  local body = string.format('{"phone_number":"+1415%07d","template_id":"hello_world","category":"utility"}', id % 10000000)
  wrk.headers["Idempotency-Key"] = string.format("batch-%d-%d", tid, n)
  return wrk.format("POST", "/v1/atlas/messages", wrk.headers, body)
end
LUA

SERVER=
DB=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  if [ -n "$DB" ]; then psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true; fi
  rm -f "$LUA"
}
trap cleanup EXIT

for WINDOW in $WINDOWS; do
  DB=atlas_batch_$$_$WINDOW
  psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null
  OUT=$(mktemp /tmp/atlas_batch_server_XXXX.out)
  ATLAS_BIND=127.0.0.1:$PORT ATLAS_DATABASE_URL="$PG/$DB" ATLAS_SECRET_KEY=bench-secret-key-0123456789abcdef0123456789 \
    ATLAS_RATE_LIMIT_WRITES=50000000/min ATLAS_RATE_LIMIT_MESSAGES=50000000/min ATLAS_RATE_LIMIT_READS=50000000/min \
    ATLAS_SEND_BATCH_WINDOW_MS=$WINDOW \
    $BIN/atlas-api >"$OUT" 2>"$OUT.err" & SERVER=$!
  for _ in $(seq 1 100); do grep -q "admin api key" "$OUT" 2>/dev/null && break; sleep 0.2; done
  KEY=$(awk '/admin api key/ {print $4}' "$OUT")
  [ -n "$KEY" ] || { echo "the server did not start: $(cat "$OUT.err")" >&2; exit 1; }
  curl -s -o /dev/null -X POST "$BASE/v1/atlas/templates" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
    -d '{"name":"hello_world","language":"en_US","category":"utility","body":"Hello"}' || true
  echo "== ATLAS_SEND_BATCH_WINDOW_MS=$WINDOW: POST /v1/atlas/messages, $CONNS connections, ${SECS}s"
  wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -H "Authorization: Bearer $KEY" -H 'content-type: application/json' -s "$LUA" "$BASE" \
    | grep -E "Requests/sec|Latency|50%|99%|Non-2xx|requests in|Socket errors"
  echo "outbox backlog at the end: $(psql -qtAX "$PG/$DB" -c "SELECT count(*) FROM outbox WHERE finished_at_us IS NULL")"
  echo "messages accepted: $(psql -qtAX "$PG/$DB" -c "SELECT count(*) FROM messages")"
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true; DB=
  rm -f "$OUT" "$OUT.err"
done
