#!/usr/bin/env bash
# The background pipeline's figures on PostgreSQL (issue 9, items 2 and 4):
#   1. the idle database load of a server with nothing to do: transactions per second of its
#      database (pg_stat_database xact_commit + xact_rollback) over $IDLE_SECS seconds after a
#      quiet start. A statement outside a transaction is one transaction there; the old workers'
#      idle poll (BEGIN; SELECT; ROLLBACK) was one transaction of three statements. The exact
#      statement count of an idle server is tests/tests/wakeups.rs (a recording proxy).
#   2. send -> `sent` webhook latency (p50 / p99) and webhook delivery throughput, by sourcing
#      benches/webhooks.sh (short loads) against this server.
#   bash benches/pipeline.sh                                   # builds this tree (release)
#   BIN=/work/main/target/release NO_BUILD=1 bash benches/pipeline.sh   # another build
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth), psql and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DB=atlas_pipeline_$$
PORT=${PORT:-18198}
CLIENTS=${CLIENTS:-8}
IDLE_SECS=${IDLE_SECS:-30}
export RUST_LOG=warn
export WH_LOAD_SECS_1=${WH_LOAD_SECS_1:-2} WH_LOAD_SECS_10=${WH_LOAD_SECS_10:-1} WH_MESSAGES=${WH_MESSAGES:-200} WH_MSG_RATE=${WH_MSG_RATE:-20}
PGBENCH=0

if [ -z "${NO_BUILD:-}" ]; then cargo build --release -q -p atlas-api -p atlas-bench; fi
BIN=${BIN:-target/release}

psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
  sleep 1
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
}
trap cleanup EXIT

ATLAS_BIND=127.0.0.1:$PORT ATLAS_DATABASE_URL="$PG/$DB" ATLAS_SECRET_KEY=bench-secret-key-0123456789abcdef0123456789 \
  ATLAS_WEBHOOKS_ALLOW_PRIVATE=true ATLAS_RATE_LIMIT_READS=50000000/min ATLAS_RATE_LIMIT_WRITES=50000000/min ATLAS_RATE_LIMIT_MESSAGES=50000000/min \
  "$BIN/atlas-api" >/tmp/atlas_pipeline_server.out 2>/tmp/atlas_pipeline_server.err &
SERVER=$!
for _ in $(seq 1 100); do grep -q "admin api key" /tmp/atlas_pipeline_server.out 2>/dev/null && break; sleep 0.2; done
KEY=$(awk '/admin api key/ {print $4}' /tmp/atlas_pipeline_server.out)
BASE=http://127.0.0.1:$PORT

xacts() { psql -qtAX "$PG/postgres" -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$DB'"; }
echo "== idle: transactions per second of the server's database over ${IDLE_SECS}s (after 15 s of quiet)"
sleep 15
IDLE_FROM=$(xacts)
sleep "$IDLE_SECS"
IDLE_TO=$(xacts)
IDLE_RATE=$(awk -v a="$IDLE_FROM" -v b="$IDLE_TO" -v s="$IDLE_SECS" 'BEGIN { printf "%.2f", (b - a) / s }')
echo "idle_xacts=$((IDLE_TO - IDLE_FROM)) idle_xacts_per_s=$IDLE_RATE"

# shellcheck source=/dev/null
source benches/webhooks.sh

echo
echo "== pipeline summary ($BIN)"
echo "idle database transactions per second: $IDLE_RATE (over ${IDLE_SECS}s; pg_stat_database, flushed by PostgreSQL up to 10 s late)"
echo "send -> 'sent' webhook latency:        p50 ${WH_LAT_P50} ms, p99 ${WH_LAT_P99} ms ($WH_LAT_N samples)"
echo "webhook deliveries, 1 / 10 endpoints:  $WH_RATE_1 / $WH_RATE_10 per s"
