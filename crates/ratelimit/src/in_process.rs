//! The embedded `RateLimiter`: buckets in a map inside this process, on the injected clock.
//! It serves when no Redis is configured, and as the local fallback when Redis is down.
//! Memory stays bounded by the buckets in use: a bucket whose TAT has passed is full, which is
//! the same as absent, so periodic sweeps drop it.

use crate::{gcra, LimiterError, Policy, RateLimiter, Verdict};
use async_trait::async_trait;
use atlas_kernel::Clock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many checks pass between sweeps, at least. After a sweep that kept `n` live buckets the
/// next one waits `max(DEFAULT_SWEEP_EVERY, n)` checks, so sweeping costs O(1) amortized per
/// check and the map never holds more than about twice the live buckets plus this many.
pub const DEFAULT_SWEEP_EVERY: usize = 1024;

/// Rate-limit buckets held in process memory.
#[derive(Debug)]
pub struct InProcessLimiter {
    clock: Arc<dyn Clock>,
    sweep_every: usize,
    state: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    tat_us: HashMap<String, i64>,
    checks_since_sweep: usize,
    /// `max(sweep_every, buckets kept by the last sweep)`.
    next_sweep_after: usize,
}

impl InProcessLimiter {
    /// An empty limiter reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, sweep_every: DEFAULT_SWEEP_EVERY, state: Mutex::new(Buckets::default()) }
    }

    /// Sweeps expired buckets after every `checks` checks at least (1 sweeps on every check).
    pub fn with_sweep_every(mut self, checks: usize) -> Self {
        self.sweep_every = checks.max(1);
        self
    }

    /// How many buckets are currently held (full buckets awaiting a sweep included).
    pub fn tracked_buckets(&self) -> usize {
        self.lock().tat_us.len()
    }

    /// Drops every bucket that is full again; returns how many were dropped.
    pub fn sweep(&self) -> usize {
        let now = self.now_us();
        self.lock().sweep(now, self.sweep_every)
    }

    /// The clock this limiter reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Spends one request from `bucket` under `policy`; the synchronous core of
    /// [`RateLimiter::check`], which cannot fail.
    pub fn check_now(&self, bucket: &str, policy: &Policy) -> Verdict {
        let now = self.now_us();
        let mut state = self.lock();

        state.checks_since_sweep += 1;
        if state.checks_since_sweep >= state.next_sweep_after.max(self.sweep_every) {
            state.sweep(now, self.sweep_every);
        }

        let stored = state.tat_us.get(bucket).copied();
        let outcome = gcra::check(policy, stored, now);
        if outcome.allowed {
            match state.tat_us.get_mut(bucket) {
                Some(tat) => *tat = outcome.tat_us,
                None => {
                    state.tat_us.insert(bucket.to_owned(), outcome.tat_us);
                }
            }
        }
        Verdict::from_outcome(policy, &outcome)
    }

    fn now_us(&self) -> i64 {
        now_us(self.clock.as_ref())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        // The map holds plain integers: a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Buckets {
    fn sweep(&mut self, now_us: i64, sweep_every: usize) -> usize {
        let before = self.tat_us.len();
        self.tat_us.retain(|_, tat| *tat > now_us);
        self.checks_since_sweep = 0;
        self.next_sweep_after = sweep_every.max(self.tat_us.len());
        before - self.tat_us.len()
    }
}

/// The clock's reading in microseconds since the Unix epoch.
pub(crate) fn now_us(clock: &dyn Clock) -> i64 {
    let nanos = clock.now().unix_timestamp_nanos() / 1_000;
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

#[async_trait]
impl RateLimiter for InProcessLimiter {
    async fn check(&self, bucket: &str, policy: &Policy) -> Result<Verdict, LimiterError> {
        Ok(self.check_now(bucket, policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_kernel::ManualClock;
    use time::macros::datetime;
    use time::Duration;

    fn limiter() -> (InProcessLimiter, ManualClock) {
        let clock = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
        (InProcessLimiter::new(Arc::new(clock.clone())), clock)
    }

    #[test]
    fn a_bucket_spends_and_refills_on_the_injected_clock() {
        let (limiter, clock) = limiter();
        let policy = Policy::parse("3/s").unwrap();
        let verdicts: Vec<Verdict> = (0..4).map(|_| limiter.check_now("b", &policy)).collect();
        assert_eq!(verdicts.iter().filter(|v| v.allowed).count(), 3);
        let denied = verdicts[3];
        assert_eq!(denied.retry_after, std::time::Duration::from_nanos(333_333_000));

        clock.advance(Duration::milliseconds(333));
        assert!(!limiter.check_now("b", &policy).allowed);
        clock.advance(Duration::microseconds(333));
        assert!(limiter.check_now("b", &policy).allowed);
    }

    #[test]
    fn buckets_with_different_keys_do_not_share_quota() {
        let (limiter, _) = limiter();
        let policy = Policy::parse("1/min").unwrap();
        assert!(limiter.check_now("messages:org_a", &policy).allowed);
        assert!(!limiter.check_now("messages:org_a", &policy).allowed);
        assert!(limiter.check_now("messages:org_b", &policy).allowed);
        assert!(limiter.check_now("reads:org_a", &policy).allowed);
    }

    #[test]
    fn denied_requests_create_no_bucket_state() {
        let (limiter, _) = limiter();
        let policy = Policy::parse("1/min").unwrap();
        limiter.check_now("b", &policy);
        for _ in 0..10 {
            limiter.check_now("b", &policy);
        }
        assert_eq!(limiter.tracked_buckets(), 1);
    }

    #[test]
    fn full_buckets_are_swept_away_and_live_ones_kept() {
        let (limiter, clock) = limiter();
        let limiter = limiter.with_sweep_every(10);
        let short = Policy::parse("5/s").unwrap();
        let long = Policy::parse("5/h").unwrap();
        for i in 0..9 {
            limiter.check_now(&format!("short:{i}"), &short);
        }
        assert_eq!(limiter.tracked_buckets(), 9);
        clock.advance(Duration::seconds(2));
        // The tenth check triggers the sweep: the short buckets are full again, so dropped.
        limiter.check_now("long", &long);
        assert_eq!(limiter.tracked_buckets(), 1);

        clock.advance(Duration::seconds(2));
        assert_eq!(limiter.sweep(), 0, "the long bucket is still refilling");
        clock.advance(Duration::hours(1));
        assert_eq!(limiter.sweep(), 1);
        assert_eq!(limiter.tracked_buckets(), 0);
    }

    #[test]
    fn memory_stays_bounded_under_a_stream_of_one_off_subjects() {
        let (limiter, clock) = limiter();
        let limiter = limiter.with_sweep_every(100);
        let policy = Policy::parse("10/min").unwrap(); // a one-off bucket lives 6 s
        for i in 0..100_000 {
            limiter.check_now(&format!("auth:ip:{i}"), &policy);
            clock.advance(Duration::milliseconds(10)); // 600 subjects per bucket lifetime
        }
        assert!(limiter.tracked_buckets() <= 2 * 600 + 100, "{}", limiter.tracked_buckets());
    }

    #[test]
    fn a_swept_bucket_behaves_like_the_full_bucket_it_was() {
        let (limiter, clock) = limiter();
        let policy = Policy::parse("2/s").unwrap();
        limiter.check_now("b", &policy);
        limiter.check_now("b", &policy);
        clock.advance(Duration::seconds(1));
        let fresh = InProcessLimiter::new(limiter.clock().clone());
        assert_eq!(limiter.sweep(), 1);
        assert_eq!(limiter.check_now("b", &policy), fresh.check_now("b", &policy));
    }
}
