//! Rate-limit headers: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`
//! (Unix seconds, as seeds 001 and 003 document), the IETF draft's `RateLimit-Policy` and
//! `RateLimit` (delta seconds), and `Retry-After` on a 429.

use crate::error::{ApiError, ErrorCode};
use atlas_ratelimit::{Policy, RouteClass, Verdict};
use axum::http::{HeaderMap, HeaderValue};
use serde_json::json;
use time::OffsetDateTime;

fn ceil_secs(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Writes the rate-limit headers of `verdict` into `headers`.
pub fn write_headers(headers: &mut HeaderMap, class: RouteClass, policy: &Policy, verdict: &Verdict, now: OffsetDateTime) {
    let reset = ceil_secs(verdict.reset_after);
    let window = policy.period().whole_seconds().max(1);
    let values = [
        ("x-ratelimit-limit", verdict.limit.to_string()),
        ("x-ratelimit-remaining", verdict.remaining.to_string()),
        ("x-ratelimit-reset", (now.unix_timestamp() + reset as i64).to_string()),
        ("ratelimit-policy", format!("\"{}\";q={};w={}", class.as_str(), verdict.limit, window)),
        ("ratelimit", format!("\"{}\";r={};t={}", class.as_str(), verdict.remaining, reset)),
    ];
    for (name, value) in values {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

/// The 429 for a denied verdict.
pub fn limited(class: RouteClass, verdict: &Verdict) -> ApiError {
    let retry = ceil_secs(verdict.retry_after).max(1);
    let mut err =
        ApiError::new(ErrorCode::RateLimited, format!("rate limit of the `{}` class reached; retry in {retry} s", class.as_str()))
            .detail("class", json!(class.as_str()))
            .detail("limit", json!(verdict.limit));
    err.retry_after = Some(retry);
    err
}
