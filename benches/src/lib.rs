//! Benchmark tools: `hello` (a bare axum hello-world, the read baseline), `receiver` (a webhook
//! receiver for benches/webhooks.sh), `graph` (the dependency-graph benchmark) and `loadgen` (N
//! concurrent HTTP clients for a fixed time, for ad-hoc use: `benches/run.sh` drives the API
//! with wrk and `benches/wrk/atlas.lua`, a load generator in C that costs about what pgbench
//! costs).
