//! `RedisRateLimiter` against the real Redis (`ATLAS_TEST_REDIS_URL`, default the local one):
//! the shared `RateLimiter` suite, each test in its own key namespace; two limiters on two
//! connections sharing one bucket, as two server processes do; the keys' expiry on Redis's
//! clock; and the fail-fast and fallback behaviour when Redis is unreachable or hung.

use atlas_kernel::SystemClock;
use atlas_ratelimit::{FallbackLimiter, InProcessLimiter, LimiterError, Policy, RateLimiter};
use atlas_store_redis::{connection, RedisRateLimiter};
use atlas_testkit::ratelimit::{self as suite, unique_bucket, unique_namespace, Waiter};
use atlas_testkit::services::{redis_available, redis_url};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A limiter on the test Redis under a namespace of its own, or `None` (after a loud warning)
/// when Redis is unreachable and not required.
async fn limiter() -> Option<RedisRateLimiter> {
    if !redis_available().await {
        return None;
    }
    let limiter = RedisRateLimiter::connect(&redis_url()).await.unwrap();
    Some(limiter.with_namespace(&unique_namespace()))
}

const DEAD_REDIS: &str = "redis://127.0.0.1:1";

#[tokio::test]
async fn a_fresh_bucket_admits_a_full_burst_then_denies() {
    let Some(limiter) = limiter().await else {
        return;
    };
    suite::a_fresh_bucket_admits_a_full_burst_then_denies(&limiter).await;
}

#[tokio::test]
async fn remaining_decreases_by_one_per_admitted_request() {
    let Some(limiter) = limiter().await else {
        return;
    };
    suite::remaining_decreases_by_one_per_admitted_request(&limiter).await;
}

#[tokio::test]
async fn after_waiting_retry_after_a_request_is_admitted() {
    let Some(limiter) = limiter().await else {
        return;
    };
    suite::after_waiting_retry_after_a_request_is_admitted(&limiter, &Waiter::RealTime).await;
}

#[tokio::test]
async fn denied_requests_spend_nothing() {
    let Some(limiter) = limiter().await else {
        return;
    };
    suite::denied_requests_spend_nothing(&limiter, &Waiter::RealTime).await;
}

#[tokio::test]
async fn separate_buckets_are_independent() {
    let Some(limiter) = limiter().await else {
        return;
    };
    suite::separate_buckets_are_independent(&limiter).await;
}

#[tokio::test]
async fn concurrent_checks_admit_exactly_the_limit() {
    let Some(limiter) = limiter().await else {
        return;
    };
    suite::concurrent_checks_admit_exactly_the_limit(&limiter).await;
}

#[tokio::test]
async fn two_processes_on_two_connections_share_one_bucket() {
    if !redis_available().await {
        return;
    }
    let namespace = unique_namespace();
    let first = RedisRateLimiter::connect(&redis_url()).await.unwrap().with_namespace(&namespace);
    let second = RedisRateLimiter::connect(&redis_url()).await.unwrap().with_namespace(&namespace);
    let policy = Policy::parse("6/min").unwrap();
    let bucket = unique_bucket("shared");

    let mut remaining = Vec::new();
    for i in 0..6 {
        let limiter = if i % 2 == 0 { &first } else { &second };
        let verdict = limiter.check(&bucket, &policy).await.unwrap();
        assert!(verdict.allowed, "request {i}: {verdict:?}");
        remaining.push(verdict.remaining);
    }
    assert_eq!(remaining, [5, 4, 3, 2, 1, 0], "both processes spend from one bucket");
    assert!(!first.check(&bucket, &policy).await.unwrap().allowed);
    assert!(!second.check(&bucket, &policy).await.unwrap().allowed);

    let elsewhere = RedisRateLimiter::connect(&redis_url()).await.unwrap().with_namespace(&unique_namespace());
    assert!(elsewhere.check(&bucket, &policy).await.unwrap().allowed, "another namespace, another bucket");
}

#[tokio::test]
async fn the_tat_is_stored_on_redis_clock_and_expires_when_the_bucket_is_full_again() {
    let Some(limiter) = limiter().await else {
        return;
    };
    let mut redis = connection::connect(&redis_url()).await.unwrap();
    let policy = Policy::parse("5/10s").unwrap(); // T = 2 s
    let bucket = unique_bucket("expiry");
    let key = limiter.key_for(&bucket);
    assert!(key.starts_with("atlas:rl:test-"), "{key}");

    limiter.check(&bucket, &policy).await.unwrap();
    let (ttl_ms, tat_us, (secs, micros)): (i64, i64, (i64, i64)) =
        redis::pipe().cmd("PTTL").arg(&key).cmd("GET").arg(&key).cmd("TIME").query_async(&mut redis).await.unwrap();
    assert!(0 < ttl_ms && ttl_ms <= 2_000, "one request keeps the bucket for T: {ttl_ms} ms");
    let ahead_us = tat_us - (secs * 1_000_000 + micros);
    assert!(0 < ahead_us && ahead_us <= 2_000_000, "the TAT is Redis's now + T in µs: {ahead_us}");

    for _ in 0..4 {
        limiter.check(&bucket, &policy).await.unwrap();
    }
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut redis).await.unwrap();
    assert!(8_000 < ttl_ms && ttl_ms <= 10_000, "an emptied bucket lives one period: {ttl_ms} ms");

    let denied = limiter.check(&bucket, &policy).await.unwrap();
    assert!(!denied.allowed);
    let after: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut redis).await.unwrap();
    assert!(after <= ttl_ms, "a denial writes nothing: {after} ms after {ttl_ms} ms");
}

#[tokio::test]
async fn connecting_to_an_unreachable_redis_fails_fast() {
    // It returns (a hang would hang the test), with the error that the fallback acts on.
    let result = RedisRateLimiter::connect(DEAD_REDIS).await;
    assert!(matches!(result, Err(LimiterError::Unavailable(_))), "{result:?}");
}

#[tokio::test]
async fn a_check_against_an_unreachable_redis_is_an_error_not_a_hang() {
    let limiter = RedisRateLimiter::connect_lazy(DEAD_REDIS).unwrap();
    let policy = Policy::parse("5/s").unwrap();
    let result = limiter.check("messages:org_x", &policy).await;
    assert!(matches!(result, Err(LimiterError::Unavailable(_))), "{result:?}");
}

#[tokio::test]
async fn a_redis_that_accepts_but_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // keep it open, say nothing
        }
    });
    let limiter = RedisRateLimiter::connect_lazy(&format!("redis://{address}")).unwrap().with_check_timeout(Duration::from_millis(100));
    // The server never answers: only the check's own timeout can end the call, so returning at
    // all (with `Unavailable`) is the behaviour.
    let result = limiter.check("messages:org_x", &Policy::parse("5/s").unwrap()).await;
    assert!(matches!(result, Err(LimiterError::Unavailable(_))), "{result:?}");
    silent.abort();
}

#[tokio::test]
async fn the_fallback_answers_from_local_buckets_when_redis_is_down_and_counts_it() {
    let primary = RedisRateLimiter::connect_lazy(DEAD_REDIS).unwrap();
    let reported = Arc::new(Mutex::new(Vec::new()));
    let log = reported.clone();
    let limiter = FallbackLimiter::new(Arc::new(primary), InProcessLimiter::new(Arc::new(SystemClock)))
        .on_fallback(move |e| log.lock().unwrap().push(format!("{e:?}")));
    let policy = Policy::parse("3/30min").unwrap();
    let bucket = unique_bucket("fallback");

    let mut admitted = Vec::new();
    for _ in 0..4 {
        admitted.push(limiter.check(&bucket, &policy).await.unwrap().allowed);
    }
    assert_eq!(admitted, [true, true, true, false], "the local buckets enforce the policy");
    assert_eq!(limiter.fallbacks(), 4);
    assert!(limiter.is_degraded());
    let reported = reported.lock().unwrap();
    assert_eq!(reported.len(), 1, "one report per failure, none during the cool-down: {reported:?}");
    assert!(reported[0].contains("rate-limit bucket in Redis"), "{reported:?}");
}

#[tokio::test]
async fn the_fallback_uses_redis_while_it_is_up() {
    let Some(primary) = limiter().await else {
        return;
    };
    let failures = Arc::new(AtomicU64::new(0));
    let counted = failures.clone();
    let limiter = FallbackLimiter::new(Arc::new(primary), InProcessLimiter::new(Arc::new(SystemClock))).on_fallback(move |_| {
        counted.fetch_add(1, Ordering::Relaxed);
    });
    suite::run_all(&limiter, &Waiter::RealTime).await;
    assert_eq!(limiter.fallbacks(), 0);
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert_eq!(limiter.local().tracked_buckets(), 0);
}
