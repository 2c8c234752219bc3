#!/usr/bin/env bash
# The benchmarks of docs/benchmarks.md (issue 9), each compared with a baseline measured in the
# same run on the same machine:
#   - pgbench: a one-row INSERT with a jsonb column, $CLIENTS clients (the write baseline);
#   - a bare axum hello world (target/release/hello) under wrk, 64 connections (the read
#     baseline).
# The HTTP load comes from wrk (a load generator in C, so the client costs about what pgbench
# costs), scripted by benches/wrk/atlas.lua (unique Idempotency-Keys and phone numbers). The
# server is the release build on PostgreSQL with `sslmode=disable`.
#
# Needs: PostgreSQL on 127.0.0.1:5432 (trust auth; PG=… for another), psql, pgbench, wrk, curl.
# Installs nothing: a missing tool is named with the command that installs it.
#
#   bash benches/run.sh                      # every scenario, 30 s each
#   SECONDS_EACH=10 bash benches/run.sh      # shorter (the send load stays >= 30 s)
#   ONLY=reads bash benches/run.sh           # baselines and the reads only (no sends, no webhooks)
#
# Settings (environment): SECONDS_EACH (30), CLIENTS (32: pgbench clients, send and event
# connections), READ_CONNECTIONS (64), SEND_SECONDS (max(30, SECONDS_EACH)), SEED_CONVERSATIONS
# (5000), SEED_MESSAGES (200: the messages of the conversation whose page is read),
# PG_SSLMODE (disable), ONLY (all | reads), PERF (0; 1 profiles the reads with perf), PG, ATLAS_API_BIN (target/release/atlas-api), RUST_LOG
# (warn), BUILD (1; 0 measures the binaries already in target/release).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECONDS_EACH:-30}
CLIENTS=${CLIENTS:-32}
READ_CONNECTIONS=${READ_CONNECTIONS:-64}
SEED_CONVERSATIONS=${SEED_CONVERSATIONS:-5000}
SEED_MESSAGES=${SEED_MESSAGES:-200}
PG_SSLMODE=${PG_SSLMODE:-disable}
ONLY=${ONLY:-all}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DB=atlas_bench_$$
PORT=18098
HELLO_ADDR=127.0.0.1:18099
export RUST_LOG=${RUST_LOG:-warn}
export WRK_RUN=$$

missing=()
for tool in wrk:wrk pgbench:postgresql-client psql:postgresql-client curl:curl; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  for tool in "${missing[@]}"; do
    echo "benches/run.sh needs \`${tool%%:*}\` (Debian package ${tool##*:}): apt-get install -y ${tool##*:}" >&2
  done
  exit 2
fi

if [ "${BUILD:-1}" = 1 ]; then cargo build --release -q -p atlas-api -p atlas-bench; fi
BIN=target/release
# Another server binary to measure (e.g. a copy of an earlier build): ATLAS_API_BIN=path.
API_BIN=${ATLAS_API_BIN:-$BIN/atlas-api}

psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
  [ -n "${HELLO:-}" ] && kill "$HELLO" 2>/dev/null || true
  sleep 1
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS ${DB}_pgbench" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Helpers shared with messages.sh and webhooks.sh.
field() { sed -n "s/.*[ ^]$1=\([0-9.]*\).*/\1/p; s/^$1=\([0-9.]*\).*/\1/p" <<<"$2" | head -n1; }
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b > 0) printf "%.*f", d, a / b; else print "n/a" }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$SERVER/status"; }
RSS_MAX=0
note_rss() { local r; r=$(rss_mb); [ "$r" -gt "$RSS_MAX" ] && RSS_MAX=$r; true; }
# wrk_atlas CONNECTIONS SECONDS URL: wrk with benches/wrk/atlas.lua (WRK_* and ATLAS_KEY from the
# environment); prints the report line (and wrk's own output on stderr).
wrk_atlas() {
  local out
  out=$(ATLAS_KEY=$KEY wrk -t2 -c"$1" -d"$2"s --timeout 10s -s benches/wrk/atlas.lua "$3")
  echo "$out" >&2
  grep '^requests=' <<<"$out"
}

echo "== load average at the start: $(loadavg) (2 cores shared by client, database and server)"

echo "== baseline: pgbench, one-row INSERT with a jsonb column, $CLIENTS clients, ${SECS}s"
psql -q "$PG/postgres" -c "CREATE DATABASE ${DB}_pgbench" >/dev/null
psql -q "$PG/${DB}_pgbench" -c "CREATE TABLE t (id bigserial primary key, body jsonb not null, created_at timestamptz default now())" >/dev/null
echo "INSERT INTO t (body) VALUES ('{\"text\": \"hello\", \"n\": 1}');" >/tmp/atlas_pgbench.sql
PGBENCH_LOAD=$(loadavg)
PGBENCH=$(pgbench -n -c "$CLIENTS" -j 2 -T "$SECS" -f /tmp/atlas_pgbench.sql "$PG/${DB}_pgbench?sslmode=$PG_SSLMODE" 2>/dev/null | awk '/^tps/ {print int($3)}')
echo "pgbench_tps=$PGBENCH (load average before: $PGBENCH_LOAD)"

echo "== baseline: bare axum hello world, wrk $READ_CONNECTIONS connections, ${SECS}s"
$BIN/hello $HELLO_ADDR &
HELLO=$!
for _ in $(seq 1 50); do curl -s -o /dev/null "http://$HELLO_ADDR/" && break; sleep 0.1; done
HELLO_LOAD=$(loadavg)
HELLO_OUT=$(wrk -t2 -c"$READ_CONNECTIONS" -d"$SECS"s -s benches/wrk/plain.lua "http://$HELLO_ADDR/")
echo "$HELLO_OUT" >&2
HELLO_LINE=$(grep '^requests=' <<<"$HELLO_OUT")
HELLO_RPS=$(field ok_rps "$HELLO_LINE")
kill $HELLO
HELLO=

echo "== Atlas on PostgreSQL (release build, sslmode=$PG_SSLMODE)"
DATABASE_URL="$PG/$DB?sslmode=$PG_SSLMODE"
ATLAS_BIND=127.0.0.1:$PORT ATLAS_DATABASE_URL="$DATABASE_URL" ATLAS_SECRET_KEY=bench-secret-key-0123456789abcdef0123456789 \
  ATLAS_WEBHOOKS_ALLOW_PRIVATE=true ATLAS_RATE_LIMIT_READS=50000000/min ATLAS_RATE_LIMIT_WRITES=50000000/min \
  ATLAS_RATE_LIMIT_MESSAGES=50000000/min "$API_BIN" >/tmp/atlas_bench_server.out 2>/tmp/atlas_bench_server.err &
SERVER=$!
for _ in $(seq 1 100); do grep -q "admin api key" /tmp/atlas_bench_server.out 2>/dev/null && break; sleep 0.2; done
KEY=$(awk '/admin api key/ {print $4}' /tmp/atlas_bench_server.out)
if [ -z "$KEY" ]; then
  echo "the server did not start: $(cat /tmp/atlas_bench_server.err)" >&2
  exit 1
fi
BASE=http://127.0.0.1:$PORT
sleep 2
RSS_IDLE=$(rss_mb)
note_rss

echo "-- seeding $SEED_CONVERSATIONS conversations (SQL, one statement) and $SEED_MESSAGES messages in the newest"
# Rows as the API writes them: a customer and a conversation on the default (sandbox) channel
# each, one in two with an inbound message's time (so the window fields vary), a second apart,
# older than anything the run creates later.
psql -qtAX "$PG/$DB" -v ON_ERROR_STOP=1 >/dev/null <<SQL
WITH ch AS (SELECT org_id, id FROM channels WHERE is_default AND disconnected_at_us IS NULL LIMIT 1),
base AS (SELECT (extract(epoch FROM now()) * 1e6)::bigint - 86400000000 AS us),
cust AS (
  INSERT INTO customers (id, org_id, phone_number, name, created_at_us)
  SELECT gen_random_uuid(), ch.org_id, '+1444' || lpad(g::text, 7, '0'), CASE WHEN g % 3 = 0 THEN NULL ELSE 'Customer ' || g END,
    base.us - g::bigint * 1000000
  FROM ch, base, generate_series(1, $SEED_CONVERSATIONS) g
  RETURNING id, org_id, created_at_us)
INSERT INTO conversations (id, org_id, channel_id, customer_id, status, last_inbound_at_us, created_at_us)
SELECT gen_random_uuid(), cust.org_id, ch.id, cust.id, 'open',
  CASE WHEN cust.created_at_us % 2000000 = 0 THEN cust.created_at_us + 500000 END, cust.created_at_us
FROM cust, ch;
WITH c AS (SELECT id, org_id, created_at_us FROM conversations ORDER BY created_at_us DESC, id DESC LIMIT 1)
INSERT INTO messages (id, org_id, conversation_id, direction, kind, text, template, provider_message_id, delivery_state,
  sent_at_us, delivered_at_us, read_at_us, failed_at_us, error_code, error_message, created_at_us, content)
SELECT gen_random_uuid(), c.org_id, c.id,
  CASE WHEN g % 2 = 0 THEN 'inbound' ELSE 'outbound' END, 'text', 'message number ' || g, NULL, 'wamid.seed.' || g,
  CASE WHEN g % 2 = 0 THEN NULL ELSE 'delivered' END,
  CASE WHEN g % 2 = 0 THEN NULL ELSE c.created_at_us + g * 1000 + 100 END,
  CASE WHEN g % 2 = 0 THEN NULL ELSE c.created_at_us + g * 1000 + 200 END,
  NULL, NULL, NULL, NULL, c.created_at_us + g * 1000, NULL
FROM c, generate_series(1, $SEED_MESSAGES) g;
ANALYZE customers;
ANALYZE conversations;
ANALYZE messages;
SQL
CONVERSATION=$(curl -s "$BASE/v1/atlas/conversations?limit=1" -H "Authorization: Bearer $KEY" | sed -n 's/.*"conversations":\[{[^]]*"id":"\([^"]*\)".*/\1/p')
SEEDED=$(psql -qtAX "$PG/$DB" -c "SELECT count(*) FROM conversations")
echo "conversations=$SEEDED; the message page reads conversation $CONVERSATION"

READS_LINES=()
# read_scenario NAME URL SLUG: wrk GETs of URL; sets READ_RPS, READ_P99, READ_LINE. With PERF=1
# (and perf installed: apt-get install -y linux-perf) the server is profiled meanwhile.
read_scenario() {
  local name=$1 url=$2 status load
  status=$(curl -s -o /tmp/atlas_bench_read.json -w '%{http_code}' "$url" -H "Authorization: Bearer $KEY")
  if [ "$status" != 200 ]; then
    echo "$name answered $status: $(head -c 300 /tmp/atlas_bench_read.json)" >&2
    exit 1
  fi
  load=$(loadavg)
  echo "-- $name: GET $url, wrk $READ_CONNECTIONS connections, ${SECS}s (load average $load)"
  local perf_pid=
  if [ "${PERF:-0}" = 1 ]; then
    # A flat CPU profile of the server during the load (sampled at 499 Hz, no call graphs).
    perf record -q -F 499 -p "$SERVER" -o "/tmp/atlas_bench_perf_$3.data" -- sleep "$SECS" 2>/dev/null &
    perf_pid=$!
  fi
  READ_LINE=$(wrk_atlas "$READ_CONNECTIONS" "$SECS" "$url")
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || true
    perf report -q -i "/tmp/atlas_bench_perf_$3.data" --no-children --sort dso,sym --stdio 2>/dev/null | head -n 40 >"/tmp/atlas_bench_perf_$3.txt" || true
    echo "profile: /tmp/atlas_bench_perf_$3.txt (perf report -i /tmp/atlas_bench_perf_$3.data)"
  fi
  note_rss
  READ_RPS=$(field ok_rps "$READ_LINE")
  READ_P99=$(field p99_ms "$READ_LINE")
  READS_LINES+=("$(printf '%-38s %6s req/s, p99 %s ms (%s x hello world; target >= 0.25); %s non-2xx; load %s' \
    "$name" "$READ_RPS" "$READ_P99" "$(ratio "$READ_RPS" "$HELLO_RPS")" "$(field non2xx3xx "$READ_LINE")" "$load")")
}

read_scenario "conversation page (50 of $SEEDED)" "$BASE/v1/atlas/conversations?limit=50" conversations
CONV_RPS=$READ_RPS
CONV_P99=$READ_P99
read_scenario "message page (50 of $SEED_MESSAGES)" "$BASE/v1/atlas/conversations/$CONVERSATION/messages?limit=50" messages
MSGPAGE_RPS=$READ_RPS
MSGPAGE_P99=$READ_P99
read_scenario "page of API keys" "$BASE/v1/atlas/keys?limit=50" keys
KEYS_RPS=$READ_RPS

echo "-- idempotent replay of POST /v1/atlas/messages (one key, answered from its stored outcome)"
REPLAY_BODY='{"phone_number":"+14449999999","text":"replayed"}'
# A text send needs an open window: an inbound event opens it.
curl -s -o /dev/null -X POST "$BASE/v1/atlas/events" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
  -d '{"customer":{"phone_number":"+14449999999"},"event_type":"message.received","message":{"text":"hi"}}'
REPLAY_FIRST=$(curl -s -o /tmp/atlas_bench_replay.json -w '%{http_code}' -X POST "$BASE/v1/atlas/messages" -H "Authorization: Bearer $KEY" \
  -H "Idempotency-Key: bench-replay-$$" -H 'content-type: application/json' -d "$REPLAY_BODY")
if [ "$REPLAY_FIRST" != 202 ]; then
  echo "the first send answered $REPLAY_FIRST: $(cat /tmp/atlas_bench_replay.json)" >&2
  exit 1
fi
REPLAY_LOAD=$(loadavg)
REPLAY_LINE=$(WRK_METHOD=POST WRK_BODY=$REPLAY_BODY WRK_IDEMPOTENCY=bench-replay-$$ wrk_atlas "$READ_CONNECTIONS" "$SECS" "$BASE/v1/atlas/messages")
note_rss
REPLAY_RPS=$(field ok_rps "$REPLAY_LINE")
REPLAY_P99=$(field p99_ms "$REPLAY_LINE")
REPLAYED_MESSAGES=$(psql -qtAX "$PG/$DB" -c "SELECT count(*) FROM messages WHERE text = 'replayed'")
RSS_READS=$(rss_mb)
# What the server's pool actually negotiated (sslmode=disable: no TLS; prefer: TLS when offered).
TLS_CONNS=$(psql -qtAX "$PG/postgres" -c "SELECT count(*) FILTER (WHERE s.ssl) || ' with TLS, ' || count(*) FILTER (WHERE NOT s.ssl) || ' without'
  FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = '$DB'")

echo
echo "== reads summary"
for line in "${READS_LINES[@]}"; do echo "$line"; done
echo "server's database connections (sslmode=$PG_SSLMODE): $TLS_CONNS"
echo "idempotent replay (POST /v1/atlas/messages): $REPLAY_RPS req/s, p99 $REPLAY_P99 ms ($(ratio "$REPLAY_RPS" "$CONV_RPS") x the conversation page; target >= 0.8); $(field non2xx3xx "$REPLAY_LINE") non-2xx; $REPLAYED_MESSAGES message(s) written; load $REPLAY_LOAD"

if [ "$ONLY" != reads ]; then
  # shellcheck source=/dev/null
  source benches/messages.sh
  # shellcheck source=/dev/null
  source benches/webhooks.sh
fi
note_rss

echo
echo "== summary (load average now: $(loadavg); pgbench ran at $PGBENCH_LOAD, hello world at $HELLO_LOAD)"
echo "| measure | now | baseline, same run | ratio | target |"
echo "|---|---|---|---|---|"
if [ "$ONLY" != reads ]; then
  echo "| \`POST /v1/atlas/messages\` accepted (wrk, $CLIENTS connections, ${SEND_SECS}s) | $MSG_RPS req/s, p99 $MSG_P99 ms; backlog at the end $MSG_BACKLOG | pgbench one-row insert $PGBENCH tps | $(ratio "$MSG_RPS" "$PGBENCH")× | ≥ 0.5× |"
  echo "| outbox drain, caps lifted ($DRAIN_PER_CHANNEL in flight per channel) | $MSG_UNCAPPED_RATE msg/s | pgbench | $(ratio "$MSG_UNCAPPED_RATE" "$PGBENCH")× | ≥ 0.25× |"
fi
echo "| (baselines) | pgbench one-row insert $PGBENCH tps; hello world $HELLO_RPS req/s | | | |"
echo "| authenticated GET of a page of 50 conversations of $SEEDED (wrk, $READ_CONNECTIONS connections) | $CONV_RPS req/s, p99 $CONV_P99 ms | hello world $HELLO_RPS req/s (wrk) | $(ratio "$CONV_RPS" "$HELLO_RPS")× | ≥ 0.25× |"
echo "| authenticated GET of a page of 50 messages | $MSGPAGE_RPS req/s, p99 $MSGPAGE_P99 ms | hello world | $(ratio "$MSGPAGE_RPS" "$HELLO_RPS")× | ≥ 0.25× |"
echo "| authenticated GET of a page of keys | $KEYS_RPS req/s | hello world | $(ratio "$KEYS_RPS" "$HELLO_RPS")× | ≥ 0.25× |"
echo "| idempotent replay of a send | $REPLAY_RPS req/s | the conversation page | $(ratio "$REPLAY_RPS" "$CONV_RPS")× | ≥ 0.8× |"
if [ "$ONLY" != reads ]; then
  echo "| webhook deliveries, 1 / 10 endpoints | $WH_RATE_1 / $WH_RATE_10 per s | pgbench | $(ratio "$WH_RATE_1" "$PGBENCH") / $(ratio "$WH_RATE_10" "$PGBENCH")× | ≥ 0.25× |"
fi
echo "| resident memory idle / after the reads / peak | $RSS_IDLE / $RSS_READS / $RSS_MAX MB | | | < 30 / < 150 MB |"
