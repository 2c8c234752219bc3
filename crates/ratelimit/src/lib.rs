//! Rate limiting, pure: GCRA over integer microseconds, route classes and their policies
//! (defaults and per-organization overrides), the `RateLimiter` port, the embedded
//! in-process limiter, and the fallback that keeps serving from local buckets when the shared
//! (Redis) limiter is unreachable. No I/O lives here; time comes through the `Clock` port.
//!
//! ```
//! use atlas_ratelimit::{bucket_key, gcra, Policies, RouteClass};
//!
//! let policy = Policies::new().policy_for(None, RouteClass::Auth); // 10/min
//! let bucket = bucket_key(RouteClass::Auth, "ip:203.0.113.7");
//! assert_eq!(bucket, "auth:ip:203.0.113.7");
//! let first = gcra::check(&policy, None, 0);
//! assert!(first.allowed);
//! assert_eq!(first.remaining, 9);
//! ```

mod class;
mod fallback;
pub mod gcra;
mod in_process;
mod policy;
mod port;

pub use class::{bucket_key, Policies, RouteClass, UnknownRouteClass};
pub use fallback::{FallbackLimiter, DEFAULT_PRIMARY_COOL_DOWN};
pub use gcra::GcraOutcome;
pub use in_process::{InProcessLimiter, DEFAULT_SWEEP_EVERY};
pub use policy::{Policy, PolicyError, MAX_PERIOD};
#[cfg(any(test, feature = "mocks"))]
pub use port::MockRateLimiter;
pub use port::{LimiterError, RateLimiter, Verdict};
