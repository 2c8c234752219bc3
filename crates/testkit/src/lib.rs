//! Test support shared by every adapter's tests: access to the real PostgreSQL and Redis
//! servers (a loud skip when they are absent, a failure when `ATLAS_REQUIRE_SERVICES=1`), and
//! the behavioural suites each port's adapters must all pass.

pub mod accounts;
pub mod conversations;
pub mod idempotency;
pub mod ratelimit;
pub mod runs;
pub mod services;
pub mod webhooks;
