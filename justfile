# Conveniences; README's commands stay plain cargo.

# Everything CI runs.
ci:
    bash .ci/run

test:
    cargo test --workspace

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings

# Start the local PostgreSQL and Redis if they are down.
services:
    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main start || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true

# Benchmarks (see docs/benchmarks.md).
bench:
    bash benches/run.sh

# Contract fuzzing with schemathesis against a live server (see docs/api.md).
contract:
    bash .ci/contract
