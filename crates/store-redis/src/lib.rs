//! Redis adapters: the shared GCRA rate limiter (one atomic Lua script per check, on Redis's
//! clock), an idempotency store, and the connection handling every adapter here shares. One module per port; each
//! adapter is also re-exported at the crate root.

pub mod connection;
pub mod idempotency;
pub mod rate_limiter;

pub use idempotency::RedisIdempotencyStore;
pub use rate_limiter::RedisRateLimiter;
