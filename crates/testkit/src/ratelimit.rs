//! The behavioural suite every `RateLimiter` adapter must pass (in-process, Redis, …). Each
//! case is a `pub async fn` taking the limiter under test (and, where time must pass, a
//! [`Waiter`]); each uses fresh, randomly named buckets, so cases may share one limiter and
//! run in parallel.
//!
//! No case assumes how fast checks run. Cases that need no waiting use policies whose emission
//! interval is minutes, so no slot frees up while they run, on any machine. The two cases that
//! wait use a short interval (500 ms) and state only what holds however long each check takes:
//! on a real clock (Redis's) time may free a slot at any point, so they spend until the first
//! denial instead of counting on a burst, and assert the exact counts only on a manual clock.

use atlas_kernel::ManualClock;
use atlas_ratelimit::{Policy, RateLimiter, Verdict};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

/// How the suite lets time pass for the limiter under test.
#[derive(Debug, Clone)]
pub enum Waiter {
    /// The limiter reads a real clock (the system's, or Redis's): sleep.
    RealTime,
    /// The limiter reads this manual clock: advance it, instantly.
    Manual(ManualClock),
}

impl Waiter {
    /// Lets `duration` pass.
    pub async fn wait(&self, duration: Duration) {
        match self {
            Self::RealTime => tokio::time::sleep(duration).await,
            Self::Manual(clock) => {
                let micros = i64::try_from(duration.as_micros()).expect("a short wait");
                clock.advance(time::Duration::microseconds(micros));
            }
        }
    }
}

/// A bucket key no other test uses.
pub fn unique_bucket(label: &str) -> String {
    format!("suite:{label}:{}", uuid::Uuid::new_v4().simple())
}

/// A key namespace no other test uses (for adapters that share a server between tests).
pub fn unique_namespace() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

fn policy(text: &str) -> Policy {
    Policy::parse(text).expect("a valid suite policy")
}

async fn check(limiter: &dyn RateLimiter, bucket: &str, policy: &Policy) -> Verdict {
    limiter.check(bucket, policy).await.unwrap_or_else(|e| panic!("checking {bucket} under {policy}: {e:?}"))
}

async fn spend(limiter: &dyn RateLimiter, bucket: &str, policy: &Policy, n: usize) -> Vec<Verdict> {
    let mut verdicts = Vec::with_capacity(n);
    for _ in 0..n {
        verdicts.push(check(limiter, bucket, policy).await);
    }
    verdicts
}

fn assert_denied(verdict: &Verdict, policy: &Policy, what: &str) {
    let interval = Duration::from_micros(policy.emission_interval_us().unsigned_abs());
    let period = Duration::from_micros(policy.period_us().unsigned_abs());
    assert!(!verdict.allowed, "{what}: expected a denial, got {verdict:?}");
    assert_eq!(verdict.limit, policy.limit(), "{what}: the limit header");
    assert_eq!(verdict.remaining, 0, "{what}: nothing remains when denied");
    assert!(verdict.retry_after > Duration::ZERO, "{what}: retry_after must be positive: {verdict:?}");
    assert!(verdict.retry_after <= interval, "{what}: one slot frees up within one emission interval ({interval:?}): {verdict:?}");
    assert!(
        verdict.retry_after <= verdict.reset_after && verdict.reset_after <= period,
        "{what}: retry_after <= reset_after <= period: {verdict:?}"
    );
}

/// A fresh bucket admits exactly `limit` requests in a burst, with `remaining` counting down
/// to zero, then denies with `retry_after > 0` (within one emission interval) and the same
/// `limit` header.
pub async fn a_fresh_bucket_admits_a_full_burst_then_denies(limiter: &dyn RateLimiter) {
    let policy = policy("5/10min"); // T = 2 min: the burst cannot refill a slot
    let bucket = unique_bucket("burst");
    let verdicts = spend(limiter, &bucket, &policy, 5).await;
    for (i, verdict) in verdicts.iter().enumerate() {
        assert!(verdict.allowed, "request {} of the burst: {verdict:?}", i + 1);
        assert_eq!(verdict.limit, 5);
        assert_eq!(verdict.remaining, 4 - i as u32, "request {} of the burst", i + 1);
        assert_eq!(verdict.retry_after, Duration::ZERO);
        assert!(verdict.reset_after > Duration::ZERO && verdict.reset_after <= Duration::from_secs(600));
    }
    let sixth = check(limiter, &bucket, &policy).await;
    assert_denied(&sixth, &policy, "the request after the burst");
    assert!(sixth.reset_after > Duration::from_secs(480), "the bucket was just emptied: {sixth:?}");
}

/// Each admitted request lowers `remaining` by exactly one, from `limit − 1` down to zero.
pub async fn remaining_decreases_by_one_per_admitted_request(limiter: &dyn RateLimiter) {
    let policy = policy("10/10min");
    let bucket = unique_bucket("remaining");
    let remaining: Vec<u32> = spend(limiter, &bucket, &policy, 10).await.iter().map(|v| v.remaining).collect();
    assert_eq!(remaining, (0..10).rev().collect::<Vec<u32>>());
}

/// Spends from `bucket` until the first denial (a real clock may free slots meanwhile, so how
/// many are admitted first is not fixed) and returns it.
async fn spend_until_denied(limiter: &dyn RateLimiter, bucket: &str, policy: &Policy) -> Verdict {
    for _ in 0..1000 {
        let verdict = check(limiter, bucket, policy).await;
        if !verdict.allowed {
            return verdict;
        }
    }
    panic!("{bucket} under {policy} never denied in 1000 checks");
}

/// After a denial, waiting `retry_after` is enough for the next request to be admitted; on a
/// manual clock, that request takes the one freed slot, so the one after it is denied again.
pub async fn after_waiting_retry_after_a_request_is_admitted(limiter: &dyn RateLimiter, waiter: &Waiter) {
    let policy = policy("5/2500ms"); // T = 500 ms
    let bucket = unique_bucket("retry");
    let denied = spend_until_denied(limiter, &bucket, &policy).await;
    assert_denied(&denied, &policy, "the first denial");

    waiter.wait(denied.retry_after).await;
    let admitted = check(limiter, &bucket, &policy).await;
    assert!(admitted.allowed, "after waiting {:?}: {admitted:?}", denied.retry_after);
    if let Waiter::Manual(_) = waiter {
        assert_eq!(admitted.remaining, 0);
        let again = check(limiter, &bucket, &policy).await;
        assert_denied(&again, &policy, "the request after the freed slot was taken");
    }
}

/// Denied requests spend nothing: each later denial asks to wait no longer than the one before
/// (time passing only shortens the wait; a denial that spent quota would lengthen it), and
/// waiting the last denial's `retry_after` frees a slot.
pub async fn denied_requests_spend_nothing(limiter: &dyn RateLimiter, waiter: &Waiter) {
    let policy = policy("3/1500ms"); // T = 500 ms
    let bucket = unique_bucket("denials");
    let first = spend_until_denied(limiter, &bucket, &policy).await;
    assert_denied(&first, &policy, "the first denial");
    let mut last = first;
    let mut denials = 1;
    for verdict in spend(limiter, &bucket, &policy, 20).await {
        if verdict.allowed {
            // A real clock freed a slot: it was admitted without the denials pushing it back.
            break;
        }
        assert_denied(&verdict, &policy, "a repeated denial");
        assert!(verdict.retry_after <= last.retry_after, "a denial spent quota: {verdict:?} after {last:?}");
        last = verdict;
        denials += 1;
    }
    if let Waiter::Manual(_) = waiter {
        assert_eq!(denials, 21, "on a manual clock every repeated request is denied");
        assert_eq!(last.retry_after, first.retry_after, "and no denial moved the next slot");
    }
    waiter.wait(last.retry_after).await;
    let admitted = check(limiter, &bucket, &policy).await;
    assert!(admitted.allowed, "the denials must not have pushed the slot back: {admitted:?}");
}

/// Buckets are independent: emptying one leaves another (same policy) full.
pub async fn separate_buckets_are_independent(limiter: &dyn RateLimiter) {
    let policy = policy("3/30min");
    let emptied = unique_bucket("independent-a");
    let other = unique_bucket("independent-b");
    spend(limiter, &emptied, &policy, 3).await;
    assert!(!check(limiter, &emptied, &policy).await.allowed);

    let verdicts = spend(limiter, &other, &policy, 3).await;
    let remaining: Vec<u32> = verdicts.iter().map(|v| v.remaining).collect();
    assert!(verdicts.iter().all(|v| v.allowed), "{verdicts:?}");
    assert_eq!(remaining, [2, 1, 0]);
    assert!(!check(limiter, &emptied, &policy).await.allowed, "still empty");
}

/// Checks are atomic: many concurrent checks on one bucket admit exactly `limit` of them.
pub async fn concurrent_checks_admit_exactly_the_limit(limiter: &dyn RateLimiter) {
    let policy = policy("5/50min");
    let bucket = unique_bucket("concurrent");
    let verdicts = join_all((0..40).map(|_| check(limiter, &bucket, &policy)).collect()).await;
    let admitted = verdicts.iter().filter(|v| v.allowed).count();
    assert_eq!(admitted, 5, "{verdicts:?}");
    let mut remaining: Vec<u32> = verdicts.iter().filter(|v| v.allowed).map(|v| v.remaining).collect();
    remaining.sort_unstable();
    assert_eq!(remaining, [0, 1, 2, 3, 4], "each admitted request saw its own remaining count");
}

/// Runs every case, one after the other.
pub async fn run_all(limiter: &dyn RateLimiter, waiter: &Waiter) {
    a_fresh_bucket_admits_a_full_burst_then_denies(limiter).await;
    remaining_decreases_by_one_per_admitted_request(limiter).await;
    after_waiting_retry_after_a_request_is_admitted(limiter, waiter).await;
    denied_requests_spend_nothing(limiter, waiter).await;
    separate_buckets_are_independent(limiter).await;
    concurrent_checks_admit_exactly_the_limit(limiter).await;
}

/// Polls all `futures` concurrently on the current task until each is done.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future completed")).collect()
}
