//! Degraded mode: a limiter that asks a shared primary (Redis) and, when the primary fails,
//! answers from local in-process buckets instead of failing the request. It reports each
//! failure through a callback (the binary logs it) and counts local answers (the binary
//! exports the count as a metric).
//!
//! After a failure the primary is left alone for a short cool-down (one second by default), so
//! an outage costs one slow check per cool-down rather than one per request. The local buckets
//! start full when the fallback begins and are not synchronized back, so during an outage each
//! process enforces the limits on its own.

use crate::in_process::now_us;
use crate::{InProcessLimiter, LimiterError, Policy, RateLimiter, Verdict};
use async_trait::async_trait;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the primary is bypassed after it failed, by default.
pub const DEFAULT_PRIMARY_COOL_DOWN: Duration = Duration::from_secs(1);

/// Called with the primary's error each time the primary fails.
type FallbackHook = Arc<dyn Fn(&LimiterError) + Send + Sync>;

/// Called when the primary answers again after having failed.
type RecoveryHook = Arc<dyn Fn() + Send + Sync>;

/// "The primary is up" in `primary_down_until_us`.
const UP: i64 = i64::MIN;

/// A primary limiter with a local, in-process fallback.
pub struct FallbackLimiter {
    primary: Arc<dyn RateLimiter>,
    local: InProcessLimiter,
    cool_down_us: i64,
    primary_down_until_us: AtomicI64,
    fallbacks: AtomicU64,
    primary_failures: AtomicU64,
    on_fallback: FallbackHook,
    on_recovery: RecoveryHook,
}

impl FallbackLimiter {
    /// Asks `primary` first and `local` when it fails; time (for the cool-down too) comes
    /// from `local`'s clock.
    pub fn new(primary: Arc<dyn RateLimiter>, local: InProcessLimiter) -> Self {
        Self {
            primary,
            local,
            cool_down_us: micros(DEFAULT_PRIMARY_COOL_DOWN),
            primary_down_until_us: AtomicI64::new(UP),
            fallbacks: AtomicU64::new(0),
            primary_failures: AtomicU64::new(0),
            on_fallback: Arc::new(|_| {}),
            on_recovery: Arc::new(|| {}),
        }
    }

    /// Calls `hook` with the error every time the primary fails (not for the checks answered
    /// locally during the cool-down that follows), so the binary can log it.
    pub fn on_fallback(mut self, hook: impl Fn(&LimiterError) + Send + Sync + 'static) -> Self {
        self.on_fallback = Arc::new(hook);
        self
    }

    /// Calls `hook` when the primary answers again after a failure.
    pub fn on_recovery(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_recovery = Arc::new(hook);
        self
    }

    /// Bypasses the primary for `cool_down` after each failure (zero: ask it every time).
    pub fn with_primary_cool_down(mut self, cool_down: Duration) -> Self {
        self.cool_down_us = micros(cool_down);
        self
    }

    /// How many checks were answered by the local buckets (for `/metrics`).
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// How many times the primary failed.
    pub fn primary_failures(&self) -> u64 {
        self.primary_failures.load(Ordering::Relaxed)
    }

    /// Whether the primary last failed and is being bypassed (for `/readyz` or a gauge).
    pub fn is_degraded(&self) -> bool {
        self.primary_down_until_us.load(Ordering::Relaxed) != UP
    }

    /// The local buckets.
    pub fn local(&self) -> &InProcessLimiter {
        &self.local
    }

    fn answer_locally(&self, bucket: &str, policy: &Policy) -> Verdict {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.local.check_now(bucket, policy)
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

#[async_trait]
impl RateLimiter for FallbackLimiter {
    async fn check(&self, bucket: &str, policy: &Policy) -> Result<Verdict, LimiterError> {
        let now = now_us(self.local.clock().as_ref());
        let down_until = self.primary_down_until_us.load(Ordering::Relaxed);
        // The second condition guards against a clock stepped backwards.
        if down_until != UP && now < down_until && down_until - now <= self.cool_down_us {
            return Ok(self.answer_locally(bucket, policy));
        }
        match self.primary.check(bucket, policy).await {
            Ok(verdict) => {
                if self.primary_down_until_us.swap(UP, Ordering::Relaxed) != UP {
                    // The local buckets are idle again: let those already full go.
                    self.local.sweep();
                    (self.on_recovery)();
                }
                Ok(verdict)
            }
            Err(error) => {
                self.primary_down_until_us.store(now.saturating_add(self.cool_down_us), Ordering::Relaxed);
                self.primary_failures.fetch_add(1, Ordering::Relaxed);
                (self.on_fallback)(&error);
                Ok(self.answer_locally(bucket, policy))
            }
        }
    }
}

impl fmt::Debug for FallbackLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLimiter")
            .field("primary", &self.primary)
            .field("local", &self.local)
            .field("cool_down_us", &self.cool_down_us)
            .field("degraded", &self.is_degraded())
            .field("fallbacks", &self.fallbacks())
            .field("primary_failures", &self.primary_failures())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MockRateLimiter;
    use atlas_kernel::{ManualClock, StoreError};
    use std::future::Future;
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};
    use time::macros::datetime;

    /// Drives a future that never waits on I/O (the mock and the local limiter answer at once).
    fn now_or_never<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("the future waited"),
        }
    }

    fn unavailable() -> LimiterError {
        LimiterError::Unavailable(StoreError::new("checking a bucket", "connection refused"))
    }

    /// A primary that fails while `down` is set and otherwise admits with `remaining = 42`,
    /// counting its calls.
    fn switchable_primary(down: Arc<AtomicBool>, calls: Arc<AtomicU64>) -> MockRateLimiter {
        let mut primary = MockRateLimiter::new();
        primary.expect_check().returning(move |_, policy| {
            calls.fetch_add(1, Ordering::Relaxed);
            if down.load(Ordering::Relaxed) {
                Err(unavailable())
            } else {
                Ok(Verdict {
                    allowed: true,
                    limit: policy.limit(),
                    remaining: 42,
                    retry_after: Duration::ZERO,
                    reset_after: Duration::ZERO,
                })
            }
        });
        primary
    }

    struct Harness {
        limiter: FallbackLimiter,
        clock: ManualClock,
        down: Arc<AtomicBool>,
        calls: Arc<AtomicU64>,
        reported: Arc<Mutex<Vec<String>>>,
        recoveries: Arc<AtomicU64>,
    }

    fn harness() -> Harness {
        let clock = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
        let down = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let reported = Arc::new(Mutex::new(Vec::new()));
        let recoveries = Arc::new(AtomicU64::new(0));
        let primary = switchable_primary(down.clone(), calls.clone());
        let log = reported.clone();
        let recovered = recoveries.clone();
        let limiter = FallbackLimiter::new(Arc::new(primary), InProcessLimiter::new(Arc::new(clock.clone())))
            .on_fallback(move |e| log.lock().unwrap().push(e.to_string()))
            .on_recovery(move || {
                recovered.fetch_add(1, Ordering::Relaxed);
            });
        Harness { limiter, clock, down, calls, reported, recoveries }
    }

    fn check(limiter: &FallbackLimiter, policy: &Policy) -> Verdict {
        now_or_never(limiter.check("b", policy)).unwrap()
    }

    #[test]
    fn a_healthy_primary_answers_and_the_local_buckets_stay_untouched() {
        let h = harness();
        let policy = Policy::parse("5/s").unwrap();
        assert_eq!(check(&h.limiter, &policy).remaining, 42);
        assert_eq!(h.limiter.fallbacks(), 0);
        assert!(!h.limiter.is_degraded());
        assert_eq!(h.limiter.local().tracked_buckets(), 0);
    }

    #[test]
    fn a_failing_primary_is_replaced_by_the_local_buckets_reported_and_counted() {
        let h = harness();
        h.down.store(true, Ordering::Relaxed);
        let policy = Policy::parse("2/min").unwrap();
        let verdicts: Vec<Verdict> = (0..3).map(|_| check(&h.limiter, &policy)).collect();
        let admitted: Vec<bool> = verdicts.iter().map(|v| v.allowed).collect();
        assert_eq!(admitted, [true, true, false], "the local buckets enforce the policy");
        assert_eq!(h.limiter.fallbacks(), 3);
        assert!(h.limiter.is_degraded());
        assert_eq!(*h.reported.lock().unwrap(), ["rate-limit store unavailable"]);
    }

    #[test]
    fn during_the_cool_down_the_primary_is_not_asked_then_it_is_probed_again() {
        let h = harness();
        let policy = Policy::parse("100/s").unwrap();
        h.down.store(true, Ordering::Relaxed);
        check(&h.limiter, &policy);
        check(&h.limiter, &policy);
        assert_eq!(h.calls.load(Ordering::Relaxed), 1);

        h.clock.advance(time::Duration::milliseconds(999));
        check(&h.limiter, &policy);
        assert_eq!(h.calls.load(Ordering::Relaxed), 1);

        h.clock.advance(time::Duration::milliseconds(1));
        check(&h.limiter, &policy);
        assert_eq!(h.calls.load(Ordering::Relaxed), 2, "probed after the cool-down");
        assert_eq!(h.limiter.primary_failures(), 2);
        assert_eq!(h.limiter.fallbacks(), 4);
        assert_eq!(h.reported.lock().unwrap().len(), 2, "one report per failure, not per check");
    }

    #[test]
    fn a_recovered_primary_takes_over_again_and_recovery_is_reported_once() {
        let h = harness();
        let policy = Policy::parse("100/s").unwrap();
        h.down.store(true, Ordering::Relaxed);
        check(&h.limiter, &policy);
        h.down.store(false, Ordering::Relaxed);
        h.clock.advance(time::Duration::seconds(1));
        assert_eq!(check(&h.limiter, &policy).remaining, 42);
        assert_eq!(check(&h.limiter, &policy).remaining, 42);
        assert!(!h.limiter.is_degraded());
        assert_eq!(h.recoveries.load(Ordering::Relaxed), 1);
        assert_eq!(h.limiter.fallbacks(), 1);
    }

    #[test]
    fn with_no_cool_down_the_primary_is_asked_every_time() {
        let h = harness();
        let limiter = h.limiter.with_primary_cool_down(Duration::ZERO);
        h.down.store(true, Ordering::Relaxed);
        let policy = Policy::parse("100/s").unwrap();
        for _ in 0..3 {
            check(&limiter, &policy);
        }
        assert_eq!(h.calls.load(Ordering::Relaxed), 3);
        assert_eq!(limiter.fallbacks(), 3);
    }

    #[test]
    fn a_clock_stepped_backwards_does_not_prolong_the_cool_down() {
        let h = harness();
        let policy = Policy::parse("100/s").unwrap();
        h.down.store(true, Ordering::Relaxed);
        check(&h.limiter, &policy);
        h.clock.advance(time::Duration::hours(-1));
        check(&h.limiter, &policy);
        assert_eq!(h.calls.load(Ordering::Relaxed), 2);
    }
}
