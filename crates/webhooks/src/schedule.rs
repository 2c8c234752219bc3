//! When a failed delivery is tried again, as data ([`RetrySchedule`]) and one pure function
//! ([`next_attempt`]).
//!
//! The standard schedule: after a failed attempt, wait 1 s, 5 s, 25 s, 2 min, 10 min, 1 h (the
//! n-th delay follows the n-th failure), then 1 h after every further failure, as long as the
//! next attempt falls no later than **24 hours after the first attempt** (the deadline). With
//! instant failures that is at most 29 attempts ([`RetrySchedule::max_attempts`]).
//!
//! Three adjustments, none of which ever makes a retry come sooner than the schedule says:
//! - **Retry-After**: a receiver's `Retry-After` (seconds or an HTTP date; see
//!   [`parse_retry_after`]) lengthens the delay to what it asks, capped at
//!   [`RETRY_AFTER_CAP`] (1 hour), so a receiver cannot park a delivery for a day. It never
//!   shortens the scheduled delay.
//! - **Jitter**: the caller passes `jitter` in `[0, 1)` (from its own randomness); the delay
//!   grows by up to [`MAX_JITTER`] (10 %) of itself: `delay · (1 + 0.1 · jitter)`. Jitter only
//!   lengthens. Out-of-range values are clamped, NaN counts as 0.
//! - **Deadline**: if the delay before jitter already lands past the deadline, the delivery
//!   gives up (`None`). If only the jitter would push it past, the attempt is **clamped** to the
//!   deadline itself (an attempt exactly at the deadline is allowed).

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// The longest `Retry-After` honoured; a longer one counts as this.
pub const RETRY_AFTER_CAP: Duration = Duration::hours(1);
/// The largest share of a delay that jitter adds.
pub const MAX_JITTER: f64 = 0.10;

/// The retry schedule: delays after each failure, the delay after those run out, and how long
/// after the first attempt retries may still happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The delay after the 1st, 2nd, … failure.
    pub delays: &'static [Duration],
    /// The delay after every later failure.
    pub then_every: Duration,
    /// No attempt later than `first_attempt_at + deadline`.
    pub deadline: Duration,
    /// The longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

const STANDARD_DELAYS: [Duration; 6] =
    [Duration::seconds(1), Duration::seconds(5), Duration::seconds(25), Duration::minutes(2), Duration::minutes(10), Duration::hours(1)];

/// 1 s, 5 s, 25 s, 2 min, 10 min, 1 h, then hourly, until 24 h after the first attempt;
/// `Retry-After` capped at 1 hour.
pub const STANDARD: RetrySchedule = RetrySchedule {
    delays: &STANDARD_DELAYS,
    then_every: Duration::hours(1),
    deadline: Duration::hours(24),
    retry_after_cap: RETRY_AFTER_CAP,
};

impl Default for RetrySchedule {
    fn default() -> Self {
        STANDARD
    }
}

impl RetrySchedule {
    /// The scheduled delay after failure number `attempt` (1-based; 0 counts as 1). Never
    /// less than one second.
    pub fn delay(&self, attempt: u32) -> Duration {
        let index = attempt.max(1) as usize - 1;
        self.delays.get(index).copied().unwrap_or(self.then_every).max(Duration::SECOND)
    }

    /// The most attempts a delivery can get: the count when every attempt fails instantly,
    /// with no jitter and no `Retry-After` (anything else only spaces attempts further apart).
    pub fn max_attempts(&self) -> u32 {
        let mut attempts = 1u32;
        let mut elapsed = Duration::ZERO;
        loop {
            elapsed += self.delay(attempts);
            if elapsed > self.deadline || attempts == u32::MAX {
                return attempts;
            }
            attempts += 1;
        }
    }

    /// When to try again after attempt number `attempt` (1-based, of the current schedule)
    /// failed at `now`, for a delivery first attempted at `first_attempt_at`; `None` means
    /// give up. `retry_after` is the receiver's request, `jitter` in `[0, 1)` the caller's
    /// randomness (see the module documentation for both).
    pub fn next_attempt(
        &self,
        first_attempt_at: OffsetDateTime,
        attempt: u32,
        now: OffsetDateTime,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<OffsetDateTime> {
        if attempt >= self.max_attempts() {
            return None;
        }
        let deadline = first_attempt_at.saturating_add(self.deadline);
        let asked = retry_after.unwrap_or(Duration::ZERO).clamp(Duration::ZERO, self.retry_after_cap);
        let delay = self.delay(attempt).max(asked);
        let at = now.saturating_add(delay);
        if at > deadline {
            return None;
        }
        let jitter = if jitter.is_nan() { 0.0 } else { jitter.clamp(0.0, 1.0) };
        let extra = Duration::saturating_seconds_f64(delay.as_seconds_f64() * MAX_JITTER * jitter).max(Duration::ZERO);
        Some(at.saturating_add(extra).min(deadline))
    }
}

/// [`RetrySchedule::next_attempt`] on the [`STANDARD`] schedule.
pub fn next_attempt(
    first_attempt_at: OffsetDateTime,
    attempt_number: u32,
    now: OffsetDateTime,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<OffsetDateTime> {
    STANDARD.next_attempt(first_attempt_at, attempt_number, now, retry_after, jitter)
}

const HTTP_DATE: &[FormatItem<'static>] =
    format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");

/// Reads a `Retry-After` value: delay-seconds (`120`) or an IMF-fixdate HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, taken relative to `now`; a date in the past means no
/// wait). `None` for anything else. The cap applies later, in [`RetrySchedule::next_attempt`].
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.len() <= 12 && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<i64>().ok().map(Duration::seconds);
    }
    let at = PrimitiveDateTime::parse(value, HTTP_DATE).ok()?.assume_utc();
    Some((at - now).max(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-04-07 00:00 UTC);

    #[test]
    fn the_delays_are_1s_5s_25s_2m_10m_1h_then_hourly() {
        let expected = [1, 5, 25, 120, 600, 3600, 3600, 3600];
        for (i, seconds) in expected.into_iter().enumerate() {
            assert_eq!(STANDARD.delay(i as u32 + 1), Duration::seconds(seconds), "after failure {}", i + 1);
        }
        assert_eq!(STANDARD.delay(1000), Duration::hours(1));
    }

    #[test]
    fn instant_failures_get_twenty_nine_attempts_within_the_day() {
        assert_eq!(STANDARD.max_attempts(), 29);
        let mut at = T0;
        let mut attempts = 1;
        while let Some(next) = next_attempt(T0, attempts, at, None, 0.0) {
            at = next;
            attempts += 1;
        }
        assert_eq!(attempts, 29);
        assert_eq!(at, T0 + Duration::seconds(1 + 5 + 25 + 120 + 600 + 3600 * 23));
    }

    #[test]
    fn the_next_attempt_counts_from_the_failure_not_from_the_first_attempt() {
        let failed_at = T0 + Duration::seconds(30);
        assert_eq!(next_attempt(T0, 1, failed_at, None, 0.0), Some(failed_at + Duration::seconds(1)));
        assert_eq!(next_attempt(T0, 4, failed_at, None, 0.0), Some(failed_at + Duration::minutes(2)));
    }

    #[test]
    fn retry_after_lengthens_up_to_one_hour_and_never_shortens() {
        assert_eq!(next_attempt(T0, 1, T0, Some(Duration::seconds(30)), 0.0), Some(T0 + Duration::seconds(30)));
        assert_eq!(next_attempt(T0, 1, T0, Some(Duration::days(3)), 0.0), Some(T0 + Duration::hours(1)));
        assert_eq!(next_attempt(T0, 5, T0, Some(Duration::seconds(1)), 0.0), Some(T0 + Duration::minutes(10)));
        assert_eq!(next_attempt(T0, 1, T0, Some(Duration::seconds(-50)), 0.0), Some(T0 + Duration::seconds(1)));
    }

    #[test]
    fn jitter_adds_up_to_a_tenth_of_the_delay() {
        assert_eq!(next_attempt(T0, 6, T0, None, 0.5), Some(T0 + Duration::minutes(63)));
        assert_eq!(next_attempt(T0, 6, T0, None, f64::NAN), Some(T0 + Duration::hours(1)));
        assert_eq!(next_attempt(T0, 6, T0, None, -3.0), Some(T0 + Duration::hours(1)));
        assert_eq!(next_attempt(T0, 6, T0, None, 7.0), Some(T0 + Duration::minutes(66)));
    }

    #[test]
    fn past_the_deadline_the_delivery_gives_up_but_jitter_alone_is_clamped_to_it() {
        let deadline = T0 + Duration::hours(24);
        assert_eq!(next_attempt(T0, 7, deadline - Duration::minutes(59), None, 0.0), None);
        assert_eq!(next_attempt(T0, 7, deadline - Duration::hours(1), None, 0.0), Some(deadline));
        assert_eq!(next_attempt(T0, 7, deadline - Duration::hours(1), None, 0.9), Some(deadline));
        assert_eq!(next_attempt(T0, 1, T0 + Duration::days(2), None, 0.0), None, "a delivery first tried long ago");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = datetime!(2015-10-21 07:27:00 UTC);
        assert_eq!(parse_retry_after("120", now), Some(Duration::seconds(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::minutes(1)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        for junk in ["", "-1", "1.5", "soon", "99999999999999999999", "21 Oct 2015 07:28:00"] {
            assert_eq!(parse_retry_after(junk, now), None, "{junk:?}");
        }
    }

    fn arbitrary_failures() -> impl Strategy<Value = Vec<(i64, Option<i64>, f64)>> {
        proptest::collection::vec((0i64..120_000, proptest::option::of(-10i64..10_000), 0.0f64..1.0), 40)
    }

    /// Plays a delivery that always fails: each attempt takes `latency` ms to fail, the receiver
    /// answers `Retry-After` seconds, the caller draws `jitter`. Returns the attempt times.
    fn simulate(failures: &[(i64, Option<i64>, f64)]) -> Vec<(OffsetDateTime, OffsetDateTime, Option<OffsetDateTime>)> {
        let mut steps = Vec::new();
        let mut at = T0;
        for (n, (latency_ms, retry_after, jitter)) in failures.iter().enumerate() {
            let failed_at = at + Duration::milliseconds(*latency_ms);
            let next = next_attempt(T0, n as u32 + 1, failed_at, retry_after.map(Duration::seconds), *jitter);
            steps.push((at, failed_at, next));
            match next {
                Some(next) => at = next,
                None => break,
            }
        }
        steps
    }

    proptest! {
        /// Attempt times strictly increase: every retry comes after the failure it follows.
        #[test]
        fn attempt_times_strictly_increase(failures in arbitrary_failures()) {
            for (at, failed_at, next) in simulate(&failures) {
                if let Some(next) = next {
                    prop_assert!(next > failed_at && next > at);
                }
            }
        }

        /// No attempt is ever scheduled past 24 hours after the first one.
        #[test]
        fn never_past_the_deadline(failures in arbitrary_failures()) {
            for (_, _, next) in simulate(&failures) {
                if let Some(next) = next {
                    prop_assert!(next <= T0 + Duration::hours(24));
                }
            }
        }

        /// A delivery never gets more attempts than the schedule allows (29), whatever the
        /// latencies, Retry-After answers and jitter.
        #[test]
        fn never_more_attempts_than_the_schedule_allows(failures in arbitrary_failures()) {
            let steps = simulate(&failures);
            let attempts = steps.len() as u32 + u32::from(steps.last().is_some_and(|(_, _, next)| next.is_some()));
            prop_assert!(attempts <= STANDARD.max_attempts());
            prop_assert!(next_attempt(T0, STANDARD.max_attempts(), T0, None, 0.0).is_none());
        }

        /// Jitter and Retry-After never shorten a delay below the schedule: a retry is never
        /// earlier than the failure plus the scheduled delay, and jitter never moves it before
        /// the unjittered time.
        #[test]
        fn jitter_never_shortens_a_delay(
            attempt in 1u32..29,
            elapsed_s in 0i64..90_000,
            retry_after in proptest::option::of(-100i64..100_000),
            jitter in proptest::num::f64::ANY,
        ) {
            let now = T0 + Duration::seconds(elapsed_s);
            let retry_after = retry_after.map(Duration::seconds);
            let plain = next_attempt(T0, attempt, now, retry_after, 0.0);
            let jittered = next_attempt(T0, attempt, now, retry_after, jitter);
            prop_assert_eq!(plain.is_some(), jittered.is_some());
            if let (Some(plain), Some(jittered)) = (plain, jittered) {
                prop_assert!(plain >= now + STANDARD.delay(attempt));
                prop_assert!(jittered >= plain);
                prop_assert!(jittered <= plain + Duration::seconds_f64(STANDARD.delay(attempt).max(RETRY_AFTER_CAP).as_seconds_f64() * MAX_JITTER));
            }
        }
    }
}
