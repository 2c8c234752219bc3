//! Benchmark tools: `loadgen` (N concurrent HTTP clients for a fixed time, printing requests
//! per second and latency percentiles) and `hello` (a bare axum hello-world, the baseline the
//! authenticated read is compared with). `benches/run.sh` drives them.
