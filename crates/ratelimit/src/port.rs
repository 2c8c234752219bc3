//! The `RateLimiter` port: spend one request from a bucket under a policy and learn the
//! verdict (with everything the rate-limit response headers need), or learn that the store
//! behind the limiter is unavailable.

use crate::{GcraOutcome, Policy};
use async_trait::async_trait;
use atlas_kernel::StoreError;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// The answer to one rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The policy's limit (`X-RateLimit-Limit`).
    pub limit: u32,
    /// How many more requests would be admitted right now (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// How long until one more request would be admitted; zero when allowed (`Retry-After`).
    pub retry_after: Duration,
    /// How long until the bucket is entirely full again (`X-RateLimit-Reset` is now plus
    /// this, in Unix seconds; `RateLimit`'s `t` is this, in delta seconds).
    pub reset_after: Duration,
}

impl Verdict {
    /// The verdict GCRA's `outcome` gives under `policy`.
    pub fn from_outcome(policy: &Policy, outcome: &GcraOutcome) -> Self {
        Self {
            allowed: outcome.allowed,
            limit: policy.limit(),
            remaining: outcome.remaining.min(policy.limit()),
            retry_after: micros(outcome.retry_after_us),
            reset_after: micros(outcome.reset_after_us),
        }
    }

    /// `retry_after` in whole seconds rounded up, at least 1 when denied (a `Retry-After: 0`
    /// would invite an immediate, futile retry); 0 when allowed.
    pub fn retry_after_secs(&self) -> u64 {
        if self.allowed {
            0
        } else {
            ceil_secs(self.retry_after).max(1)
        }
    }

    /// `reset_after` in whole seconds, rounded up.
    pub fn reset_after_secs(&self) -> u64 {
        ceil_secs(self.reset_after)
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Failures of a rate limiter.
#[derive(Debug, Error)]
pub enum LimiterError {
    /// The store holding the buckets did not answer (or answered nonsense).
    #[error("rate-limit store unavailable")]
    Unavailable(#[from] StoreError),
}

/// Where rate-limit buckets live and are spent from.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug {
    /// Spends one request from `bucket` (built by [`crate::bucket_key`]) under `policy`,
    /// atomically, and says whether it is admitted. A denied request spends nothing.
    ///
    /// # Errors
    /// [`LimiterError::Unavailable`] when the store holding the buckets fails.
    async fn check(&self, bucket: &str, policy: &Policy) -> Result<Verdict, LimiterError>;
}

#[async_trait]
impl<L: RateLimiter + ?Sized> RateLimiter for Arc<L> {
    async fn check(&self, bucket: &str, policy: &Policy) -> Result<Verdict, LimiterError> {
        (**self).check(bucket, policy).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(allowed: bool, retry_after: Duration, reset_after: Duration) -> Verdict {
        Verdict { allowed, limit: 5, remaining: 0, retry_after, reset_after }
    }

    #[test]
    fn header_seconds_round_up_and_a_denial_never_says_retry_now() {
        let denied = verdict(false, Duration::from_millis(1), Duration::from_millis(1_200));
        assert_eq!(denied.retry_after_secs(), 1);
        assert_eq!(denied.reset_after_secs(), 2);
        let denied = verdict(false, Duration::from_secs(3), Duration::from_secs(4));
        assert_eq!(denied.retry_after_secs(), 3);
        let allowed = verdict(true, Duration::ZERO, Duration::ZERO);
        assert_eq!(allowed.retry_after_secs(), 0);
        assert_eq!(allowed.reset_after_secs(), 0);
    }

    #[test]
    fn a_verdict_carries_the_outcome_in_std_durations() {
        let policy = Policy::parse("5/s").unwrap();
        let outcome = crate::gcra::check(&policy, None, 0);
        let verdict = Verdict::from_outcome(&policy, &outcome);
        assert_eq!(
            verdict,
            Verdict { allowed: true, limit: 5, remaining: 4, retry_after: Duration::ZERO, reset_after: Duration::from_millis(200) }
        );
    }
}
