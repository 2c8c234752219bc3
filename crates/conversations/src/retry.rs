//! The outbox's retry policy, pure: exponential backoff with caller-supplied jitter, a cap on
//! the delay, a maximum number of attempts and a deadline after which the message fails.
//!
//! Jitter only ever *lengthens* a delay: `delay = min(base · 2^(attempt-1), max_delay) ·
//! (1 + jitter / 2)` with `jitter` in `[0, 1)`, so no retry comes sooner than the plain
//! exponential schedule (and never sooner than `base_delay`), and at most 1.5 times later.
//! A provider's `Retry-After` is honoured as a lower bound.

use time::{Duration, OffsetDateTime};

/// How delivery retries are spaced and when they stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failed attempt (at least one millisecond is used).
    pub base_delay: Duration,
    /// The longest delay before jitter.
    pub max_delay: Duration,
    /// Attempts in all (the first one included) before the message fails.
    pub max_attempts: u32,
    /// How long after queueing a message may still be sent: its deadline.
    pub max_age: Duration,
    /// How long a claimed outbox row stays with its worker; must exceed the provider call's
    /// timeout, or a slow but live send is claimed again.
    pub lease: Duration,
}

impl Default for RetryPolicy {
    /// 2 s, doubling, capped at 5 min; 12 attempts; 1 hour deadline; 2 min lease.
    fn default() -> Self {
        Self {
            base_delay: Duration::seconds(2),
            max_delay: Duration::minutes(5),
            max_attempts: 12,
            max_age: Duration::hours(1),
            lease: Duration::minutes(2),
        }
    }
}

/// Why retrying stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// `max_attempts` attempts were made.
    Attempts,
    /// The next attempt would fall on or after the deadline.
    Deadline,
}

impl GiveUp {
    /// The message error code recorded for it.
    pub const fn code(self) -> &'static str {
        match self {
            GiveUp::Attempts => "attempts_exhausted",
            GiveUp::Deadline => "deadline_exceeded",
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at this instant (strictly after `now`, strictly before the deadline).
    RetryAt(OffsetDateTime),
    /// Fail the message.
    GiveUp(GiveUp),
}

const MIN_DELAY: Duration = Duration::milliseconds(1);

impl RetryPolicy {
    /// The deadline of a message queued at `queued_at`.
    pub fn deadline(&self, queued_at: OffsetDateTime) -> OffsetDateTime {
        queued_at.saturating_add(self.max_age)
    }

    /// The delay after `attempt` failed attempts (1 for the first), with `jitter` in `[0, 1)`
    /// (values outside are clamped; NaN counts as 0).
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let jitter = if jitter.is_nan() { 0.0 } else { jitter.clamp(0.0, 1.0) };
        let base = self.base_delay.max(MIN_DELAY);
        let cap = self.max_delay.max(base);
        let exponent = attempt.saturating_sub(1).min(40);
        let plain = Duration::saturating_seconds_f64(base.as_seconds_f64() * 2f64.powi(exponent as i32)).min(cap);
        Duration::saturating_seconds_f64(plain.as_seconds_f64() * (1.0 + jitter / 2.0)).max(plain)
    }

    /// The decision after attempt number `attempt` (1-based) failed at `now`, for a message
    /// whose deadline is `deadline`; `retry_after` is the provider's own lower bound.
    pub fn next_attempt(
        &self,
        attempt: u32,
        now: OffsetDateTime,
        deadline: OffsetDateTime,
        jitter: f64,
        retry_after: Option<Duration>,
    ) -> RetryDecision {
        if attempt >= self.max_attempts {
            return RetryDecision::GiveUp(GiveUp::Attempts);
        }
        let delay = self.backoff(attempt, jitter).max(retry_after.unwrap_or(Duration::ZERO));
        let at = now.saturating_add(delay);
        if at >= deadline {
            RetryDecision::GiveUp(GiveUp::Deadline)
        } else {
            RetryDecision::RetryAt(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-04-07 00:00 UTC);

    #[test]
    fn delays_double_from_the_base_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 0.0), Duration::seconds(2));
        assert_eq!(p.backoff(2, 0.0), Duration::seconds(4));
        assert_eq!(p.backoff(3, 0.0), Duration::seconds(8));
        assert_eq!(p.backoff(30, 0.0), Duration::minutes(5));
        assert_eq!(p.backoff(u32::MAX, 0.0), Duration::minutes(5));
    }

    #[test]
    fn jitter_only_lengthens_a_delay_by_up_to_half() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 0.5), Duration::seconds(2) + Duration::milliseconds(500));
        assert!(p.backoff(1, 0.999) < Duration::seconds(3));
        assert_eq!(p.backoff(1, -4.0), Duration::seconds(2));
        assert_eq!(p.backoff(1, f64::NAN), Duration::seconds(2));
    }

    #[test]
    fn a_provider_retry_after_is_a_lower_bound() {
        let p = RetryPolicy::default();
        let deadline = p.deadline(T0);
        assert_eq!(p.next_attempt(1, T0, deadline, 0.0, Some(Duration::seconds(30))), RetryDecision::RetryAt(T0 + Duration::seconds(30)));
    }

    #[test]
    fn retrying_stops_at_the_deadline_or_after_the_last_attempt() {
        let p = RetryPolicy::default();
        let deadline = p.deadline(T0);
        assert_eq!(p.next_attempt(1, deadline - Duration::seconds(1), deadline, 0.0, None), RetryDecision::GiveUp(GiveUp::Deadline));
        assert_eq!(p.next_attempt(12, T0, deadline, 0.0, None), RetryDecision::GiveUp(GiveUp::Attempts));
        assert_eq!(GiveUp::Deadline.code(), "deadline_exceeded");
    }

    proptest! {
        /// Simulating a message that always fails: attempt times strictly increase, every
        /// scheduled attempt lies strictly before the deadline, and the simulation ends (by
        /// the deadline or the attempt limit).
        #[test]
        fn attempts_strictly_increase_and_never_pass_the_deadline(
            base_ms in 1i64..10_000,
            cap_s in 1i64..1_000,
            max_attempts in 1u32..40,
            max_age_s in 1i64..100_000,
            jitters in proptest::collection::vec(0.0f64..1.0, 40),
            latencies_ms in proptest::collection::vec(0i64..5_000, 40),
            retry_after_s in proptest::option::of(0i64..120),
        ) {
            let p = RetryPolicy {
                base_delay: Duration::milliseconds(base_ms),
                max_delay: Duration::seconds(cap_s),
                max_attempts,
                max_age: Duration::seconds(max_age_s),
                lease: Duration::minutes(2),
            };
            let deadline = p.deadline(T0);
            let mut attempt_at = T0;
            let mut attempt = 1u32;
            loop {
                let failed_at = attempt_at + Duration::milliseconds(latencies_ms[(attempt as usize - 1) % 40]);
                match p.next_attempt(attempt, failed_at, deadline, jitters[(attempt as usize - 1) % 40], retry_after_s.map(Duration::seconds)) {
                    RetryDecision::RetryAt(next) => {
                        prop_assert!(next > failed_at && next > attempt_at);
                        prop_assert!(next < deadline);
                        attempt_at = next;
                        attempt += 1;
                        prop_assert!(attempt <= max_attempts);
                    }
                    RetryDecision::GiveUp(_) => break,
                }
            }
        }

        /// A delay is never shorter than the base delay nor than the plain exponential delay,
        /// and never longer than 1.5 times the cap.
        #[test]
        fn jitter_never_shortens(attempt in 1u32..64, jitter in proptest::num::f64::ANY) {
            let p = RetryPolicy::default();
            let d = p.backoff(attempt, jitter);
            prop_assert!(d >= p.base_delay);
            prop_assert!(d >= p.backoff(attempt, 0.0));
            prop_assert!(d <= p.max_delay + p.max_delay / 2);
        }

        /// For a fixed jitter, later attempts never wait less.
        #[test]
        fn backoff_is_monotone(attempt in 1u32..64, jitter in 0.0f64..1.0) {
            let p = RetryPolicy::default();
            prop_assert!(p.backoff(attempt + 1, jitter) >= p.backoff(attempt, jitter));
        }
    }
}
