#!/usr/bin/env bash
# The benchmarks of docs/benchmarks.md, each compared with a baseline measured in the same run
# on the same machine. Needs PostgreSQL on 127.0.0.1:5432 (trust auth) and pgbench.
#   bash benches/run.sh            # every scenario, 30 s each
#   SECONDS_EACH=10 bash benches/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECONDS_EACH:-30}
CLIENTS=${CLIENTS:-32}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DB=atlas_bench_$$
PORT=18098
export RUST_LOG=warn

cargo build --release -q -p atlas-api -p atlas-bench
BIN=target/release

psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
  [ -n "${HELLO:-}" ] && kill "$HELLO" 2>/dev/null || true
  sleep 1
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS ${DB}_pgbench" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== baseline: pgbench, one-row INSERT with a jsonb column, $CLIENTS clients, ${SECS}s"
psql -q "$PG/postgres" -c "CREATE DATABASE ${DB}_pgbench" >/dev/null
psql -q "$PG/${DB}_pgbench" -c "CREATE TABLE t (id bigserial primary key, body jsonb not null, created_at timestamptz default now())" >/dev/null
echo "INSERT INTO t (body) VALUES ('{\"text\": \"hello\", \"n\": 1}');" > /tmp/atlas_pgbench.sql
PGBENCH=$(pgbench -n -c "$CLIENTS" -j 2 -T "$SECS" -f /tmp/atlas_pgbench.sql "$PG/${DB}_pgbench" 2>/dev/null | awk '/^tps/ {print int($3)}')
echo "pgbench_tps=$PGBENCH"

echo "== baseline: bare axum hello world"
$BIN/hello 127.0.0.1:18099 & HELLO=$!
sleep 1
HELLO_RPS=$($BIN/loadgen http://127.0.0.1:18099/ --clients 64 --seconds "$SECS" | tee /dev/stderr | sed 's/.*rps=\([0-9]*\).*/\1/')
kill $HELLO; HELLO=

echo "== Atlas on PostgreSQL"
ATLAS_BIND=127.0.0.1:$PORT ATLAS_DATABASE_URL="$PG/$DB" ATLAS_SECRET_KEY=bench-secret-key-0123456789abcdef0123456789 \
  ATLAS_WEBHOOKS_ALLOW_PRIVATE=true ATLAS_RATE_LIMIT_READS=50000000/min ATLAS_RATE_LIMIT_WRITES=50000000/min ATLAS_RATE_LIMIT_MESSAGES=50000000/min \
  $BIN/atlas-api > /tmp/atlas_bench_server.out 2>/tmp/atlas_bench_server.err & SERVER=$!
for _ in $(seq 1 50); do grep -q "admin api key" /tmp/atlas_bench_server.out 2>/dev/null && break; sleep 0.2; done
KEY=$(awk '/admin api key/ {print $4}' /tmp/atlas_bench_server.out)
BASE=http://127.0.0.1:$PORT
RSS_IDLE=$(ps -o rss= -p "$SERVER")

echo "-- authenticated GET /v1/atlas/keys (a page of keys)"
GET_RPS=$($BIN/loadgen "$BASE/v1/atlas/keys?limit=50" --key "$KEY" --clients 64 --seconds "$SECS" | tee /dev/stderr | sed 's/.*rps=\([0-9]*\).*/\1/')
RSS_LOAD=$(ps -o rss= -p "$SERVER")

echo "-- idempotent replay of POST /v1/atlas/keys"
curl -s -o /dev/null -X POST "$BASE/v1/atlas/keys" -H "Authorization: Bearer $KEY" -H 'Idempotency-Key: bench-replay' \
  -H 'content-type: application/json' -d '{"name":"replayed","scopes":["atlas.runs.read"]}'
REPLAY_RPS=$($BIN/loadgen "$BASE/v1/atlas/keys" --method POST --key "$KEY" --idempotency-key bench-replay \
  --body '{"name":"replayed","scopes":["atlas.runs.read"]}' --expect 201 --clients 64 --seconds "$SECS" | tee /dev/stderr | sed 's/.*rps=\([0-9]*\).*/\1/')

if [ -f benches/messages.sh ]; then
  # shellcheck source=/dev/null
  source benches/messages.sh
fi
if [ -f benches/webhooks.sh ]; then
  # shellcheck source=/dev/null
  source benches/webhooks.sh
fi

echo
echo "== summary"
echo "pgbench one-row insert tps:          $PGBENCH"
echo "axum hello world rps:                $HELLO_RPS"
echo "authenticated GET rps:               $GET_RPS  ($(awk "BEGIN {printf \"%.2f\", $GET_RPS/$HELLO_RPS}") x hello world; target >= 0.25)"
echo "idempotent replay rps:               $REPLAY_RPS  ($(awk "BEGIN {printf \"%.2f\", $REPLAY_RPS/$GET_RPS}") x authenticated GET; target >= 0.8)"
echo "resident memory idle / after reads:  $((RSS_IDLE/1024)) MB / $((RSS_LOAD/1024)) MB (targets < 30 / < 150)"
