//! The shared `RateLimiter` suite against the in-process limiter: on the system clock with
//! real sleeps (as in production), on a manual clock (instant and exact), and wrapped in a
//! `FallbackLimiter` whose healthy primary is itself in process.

use atlas_kernel::{ManualClock, SystemClock};
use atlas_ratelimit::{FallbackLimiter, InProcessLimiter, RateLimiter};
use atlas_testkit::ratelimit::{self as suite, Waiter};
use std::sync::Arc;
use time::macros::datetime;

fn on_system_clock() -> InProcessLimiter {
    InProcessLimiter::new(Arc::new(SystemClock))
}

fn on_manual_clock() -> (InProcessLimiter, Waiter) {
    let clock = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
    (InProcessLimiter::new(Arc::new(clock.clone())), Waiter::Manual(clock))
}

#[tokio::test]
async fn system_clock_a_fresh_bucket_admits_a_full_burst_then_denies() {
    suite::a_fresh_bucket_admits_a_full_burst_then_denies(&on_system_clock()).await;
}

#[tokio::test]
async fn system_clock_remaining_decreases_by_one_per_admitted_request() {
    suite::remaining_decreases_by_one_per_admitted_request(&on_system_clock()).await;
}

#[tokio::test]
async fn system_clock_after_waiting_retry_after_a_request_is_admitted() {
    suite::after_waiting_retry_after_a_request_is_admitted(&on_system_clock(), &Waiter::RealTime).await;
}

#[tokio::test]
async fn system_clock_denied_requests_spend_nothing() {
    suite::denied_requests_spend_nothing(&on_system_clock(), &Waiter::RealTime).await;
}

#[tokio::test]
async fn system_clock_separate_buckets_are_independent() {
    suite::separate_buckets_are_independent(&on_system_clock()).await;
}

#[tokio::test]
async fn system_clock_concurrent_checks_admit_exactly_the_limit() {
    suite::concurrent_checks_admit_exactly_the_limit(&on_system_clock()).await;
}

#[tokio::test]
async fn manual_clock_passes_the_whole_suite() {
    let (limiter, waiter) = on_manual_clock();
    suite::run_all(&limiter, &waiter).await;
}

#[tokio::test]
async fn a_fallback_limiter_over_a_healthy_primary_passes_the_whole_suite() {
    let clock = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
    let primary: Arc<dyn RateLimiter> = Arc::new(InProcessLimiter::new(Arc::new(clock.clone())));
    let limiter = FallbackLimiter::new(primary, InProcessLimiter::new(Arc::new(clock.clone())));
    suite::run_all(&limiter, &Waiter::Manual(clock)).await;
    assert_eq!(limiter.fallbacks(), 0);
}
