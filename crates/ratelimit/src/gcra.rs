//! The Generic Cell Rate Algorithm, as one pure function over integer microseconds. Every
//! limiter (in process, Redis's Lua script) applies exactly these formulas; the only state a
//! bucket keeps is its theoretical arrival time (TAT).
//!
//! With `T = period / limit` (the emission interval) and `τ = T × (limit − 1)` (the burst
//! tolerance), for a request arriving at `now`:
//!
//! ```text
//! tat      = max(stored TAT, now)            (a missing or past TAT means a full bucket)
//! allow_at = tat − τ                         (the earliest instant this request may pass)
//!
//! denied   when now < allow_at:
//!     retry_after = allow_at − now           (> 0; a request exactly then is admitted)
//!     reset_after = tat − now
//!     remaining   = 0                        (the stored TAT is left unchanged)
//!
//! admitted otherwise:
//!     new_tat     = tat + T                  (store it)
//!     retry_after = 0
//!     reset_after = new_tat − now            (when the bucket is entirely full again)
//!     remaining   = ⌊(τ − (new_tat − now)) / T⌋ + 1   if τ ≥ new_tat − now, else 0
//! ```
//!
//! `remaining` counts the further requests that would be admitted at this same instant: the
//! k-th of them passes iff `now ≥ new_tat + (k − 1)·T − τ`. Consequences (each checked by a
//! property test): a fresh bucket admits exactly `limit` requests at once; in any interval of
//! length `d` at most `limit + ⌊d / T⌋` requests are admitted; denied requests cost nothing.

use crate::Policy;

/// What GCRA decided for one request, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraOutcome {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// The TAT to store when admitted. When denied it is the unchanged current TAT, so
    /// storing it is harmless but unnecessary.
    pub tat_us: i64,
    /// How many more requests would be admitted right now, after this one.
    pub remaining: u32,
    /// How long until one more request would be admitted; zero when this one was admitted.
    pub retry_after_us: i64,
    /// How long until the bucket is entirely full again (no request in flight counts).
    pub reset_after_us: i64,
}

/// Applies GCRA to a request arriving at `now_us` on a bucket whose stored TAT is `tat_us`
/// (`None` for a bucket never used or expired). See the module documentation for the formulas.
pub fn check(policy: &Policy, tat_us: Option<i64>, now_us: i64) -> GcraOutcome {
    let interval = policy.emission_interval_us();
    let tolerance = policy.burst_tolerance_us();
    let tat = tat_us.map_or(now_us, |stored| stored.max(now_us));
    let allow_at = tat.saturating_sub(tolerance);

    if now_us < allow_at {
        return GcraOutcome { allowed: false, tat_us: tat, remaining: 0, retry_after_us: allow_at - now_us, reset_after_us: tat - now_us };
    }

    let new_tat = tat.saturating_add(interval);
    let ahead = new_tat - now_us;
    let remaining = if tolerance >= ahead {
        // At most `limit − 1`, since `ahead ≥ T` and `τ = T × (limit − 1)`.
        u32::try_from((tolerance - ahead) / interval + 1).unwrap_or(u32::MAX)
    } else {
        0
    };
    GcraOutcome { allowed: true, tat_us: new_tat, remaining, retry_after_us: 0, reset_after_us: ahead }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::Duration;

    const NOW: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z in microseconds

    fn policy(text: &str) -> Policy {
        Policy::parse(text).unwrap()
    }

    /// Sends `n` requests at `now` through `check`, carrying the TAT; returns the outcomes
    /// and the final TAT.
    fn burst(policy: &Policy, mut tat: Option<i64>, now: i64, n: usize) -> (Vec<GcraOutcome>, Option<i64>) {
        let mut outcomes = Vec::with_capacity(n);
        for _ in 0..n {
            let outcome = check(policy, tat, now);
            if outcome.allowed {
                tat = Some(outcome.tat_us);
            }
            outcomes.push(outcome);
        }
        (outcomes, tat)
    }

    #[test]
    fn a_fresh_bucket_admits_exactly_limit_requests_at_once() {
        let p = policy("5/s");
        let (outcomes, _) = burst(&p, None, NOW, 6);
        let admitted: Vec<bool> = outcomes.iter().map(|o| o.allowed).collect();
        assert_eq!(admitted, [true, true, true, true, true, false]);
        let remaining: Vec<u32> = outcomes.iter().map(|o| o.remaining).collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0, 0]);
    }

    #[test]
    fn the_first_denied_request_waits_one_emission_interval() {
        let p = policy("5/s"); // T = 200 ms
        let (outcomes, _) = burst(&p, None, NOW, 6);
        let denied = outcomes[5];
        assert_eq!(denied.retry_after_us, 200_000);
        assert_eq!(denied.reset_after_us, 1_000_000);
        assert_eq!(outcomes[4].retry_after_us, 0);
        assert_eq!(outcomes[4].reset_after_us, 1_000_000);
    }

    #[test]
    fn a_request_exactly_retry_after_later_is_admitted_and_one_microsecond_earlier_is_not() {
        let p = policy("5/s");
        let (outcomes, tat) = burst(&p, None, NOW, 6);
        let wait = outcomes[5].retry_after_us;
        assert!(!check(&p, tat, NOW + wait - 1).allowed);
        let later = check(&p, tat, NOW + wait);
        assert!(later.allowed);
        assert_eq!(later.remaining, 0);
    }

    #[test]
    fn denied_requests_do_not_spend_quota() {
        let p = policy("2/s");
        let (_, tat) = burst(&p, None, NOW, 2);
        let (denials, tat_after) = burst(&p, tat, NOW, 100);
        assert!(denials.iter().all(|o| !o.allowed));
        assert_eq!(tat_after, tat);
        assert!(check(&p, tat, NOW + 500_000).allowed);
    }

    #[test]
    fn a_bucket_refills_one_request_per_emission_interval() {
        let p = policy("60/min"); // T = 1 s
        let (_, tat) = burst(&p, None, NOW, 60);
        let after_ten_seconds = check(&p, tat, NOW + 10_000_000);
        assert!(after_ten_seconds.allowed);
        assert_eq!(after_ten_seconds.remaining, 9);
    }

    #[test]
    fn a_bucket_idle_for_a_whole_period_is_full_again() {
        let p = policy("60/min");
        let (outcomes, tat) = burst(&p, None, NOW, 60);
        let reset = outcomes[59].reset_after_us;
        assert_eq!(reset, 60_000_000);
        let fresh = check(&p, tat, NOW + reset);
        assert_eq!(fresh, check(&p, None, NOW + reset));
        assert_eq!(fresh.remaining, 59);
    }

    #[test]
    fn a_limit_of_one_allows_no_burst() {
        let p = policy("1/min");
        let first = check(&p, None, NOW);
        assert!(first.allowed);
        assert_eq!(first.remaining, 0);
        let second = check(&p, Some(first.tat_us), NOW + 1);
        assert!(!second.allowed);
        assert_eq!(second.retry_after_us, 60_000_000 - 1);
    }

    #[test]
    fn a_stored_tat_in_the_past_counts_as_a_full_bucket() {
        let p = policy("3/s");
        assert_eq!(check(&p, Some(NOW - 5_000_000), NOW), check(&p, None, NOW));
    }

    fn policy_strategy() -> impl Strategy<Value = Policy> {
        (1u32..=20, 1i64..=5_000).prop_map(|(limit, period_ms)| Policy::new(limit, Duration::milliseconds(period_ms)).unwrap())
    }

    /// Non-decreasing request times (simultaneous requests allowed), starting at `NOW`, with
    /// gaps from zero up to about two periods so that bursts, trickles and idle spells all occur.
    fn arrivals(max_gap_us: i64) -> impl Strategy<Value = Vec<i64>> {
        prop::collection::vec(prop_oneof![3 => Just(0i64), 5 => 0..=max_gap_us / 10, 2 => 0..=max_gap_us], 1..150).prop_map(|gaps| {
            gaps.iter()
                .scan(NOW, |t, gap| {
                    *t += gap;
                    Some(*t)
                })
                .collect()
        })
    }

    fn policy_and_arrivals() -> impl Strategy<Value = (Policy, Vec<i64>)> {
        policy_strategy().prop_flat_map(|p| (Just(p), arrivals(2 * p.period_us())))
    }

    /// Feeds arrivals through `check`, carrying the TAT as a limiter would.
    fn run(policy: &Policy, times: &[i64]) -> Vec<GcraOutcome> {
        let mut tat = None;
        times
            .iter()
            .map(|&now| {
                let outcome = check(policy, tat, now);
                if outcome.allowed {
                    tat = Some(outcome.tat_us);
                }
                outcome
            })
            .collect()
    }

    proptest! {
        /// Rule: GCRA never admits more than burst + rate × elapsed in any interval: for every
        /// window [t_i, t_j] of the arrivals, the admitted requests inside it number at most
        /// `limit + ⌊(t_j − t_i) / T⌋`.
        #[test]
        fn never_admits_more_than_burst_plus_rate_times_elapsed((p, times) in policy_and_arrivals()) {
            let outcomes = run(&p, &times);
            let interval = p.emission_interval_us();
            let mut admitted_before = vec![0i64; times.len() + 1];
            for (k, outcome) in outcomes.iter().enumerate() {
                admitted_before[k + 1] = admitted_before[k] + i64::from(outcome.allowed);
            }
            for i in 0..times.len() {
                for j in i..times.len() {
                    let admitted = admitted_before[j + 1] - admitted_before[i];
                    let bound = i64::from(p.limit()) + (times[j] - times[i]) / interval;
                    prop_assert!(
                        admitted <= bound,
                        "{admitted} admitted in [{}, {}] but at most {bound} allowed", times[i], times[j]
                    );
                }
            }
        }

        /// Rule: after an admitted request, `remaining` is at most `limit − 1`, and exactly
        /// `remaining` further requests at the same instant are admitted, then one is denied.
        #[test]
        fn remaining_is_below_the_limit_and_exact((p, times) in policy_and_arrivals()) {
            let mut tat = None;
            for &now in &times {
                let outcome = check(&p, tat, now);
                if outcome.allowed {
                    tat = Some(outcome.tat_us);
                    prop_assert!(outcome.remaining < p.limit());
                    let (more, _) = burst(&p, tat, now, outcome.remaining as usize + 1);
                    let admitted = more.iter().filter(|o| o.allowed).count();
                    prop_assert_eq!(admitted, outcome.remaining as usize);
                    prop_assert!(!more[more.len() - 1].allowed);
                }
            }
        }

        /// Rule: a denied request's `retry_after` is positive, a request made exactly
        /// `retry_after` later is admitted, and one made a microsecond earlier is not: the
        /// answer is neither optimistic nor pessimistic.
        #[test]
        fn retry_after_is_positive_and_exact((p, times) in policy_and_arrivals()) {
            let mut tat = None;
            for &now in &times {
                let outcome = check(&p, tat, now);
                if outcome.allowed {
                    tat = Some(outcome.tat_us);
                    prop_assert_eq!(outcome.retry_after_us, 0);
                } else {
                    prop_assert!(outcome.retry_after_us > 0);
                    prop_assert!(outcome.retry_after_us <= outcome.reset_after_us);
                    prop_assert!(check(&p, tat, now + outcome.retry_after_us).allowed);
                    prop_assert!(!check(&p, tat, now + outcome.retry_after_us - 1).allowed);
                }
            }
        }

        /// Rule: `reset_after` is when the bucket is entirely full again: a request then
        /// behaves exactly like one on a fresh bucket, and it never exceeds one period.
        #[test]
        fn reset_after_leads_to_a_full_bucket((p, times) in policy_and_arrivals()) {
            let mut tat = None;
            for &now in &times {
                let outcome = check(&p, tat, now);
                if outcome.allowed {
                    tat = Some(outcome.tat_us);
                }
                prop_assert!(outcome.reset_after_us <= p.period_us());
                let at = now + outcome.reset_after_us;
                prop_assert_eq!(check(&p, tat, at), check(&p, None, at));
            }
        }
    }
}
