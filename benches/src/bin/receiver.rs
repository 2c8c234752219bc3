//! `receiver`: a minimal webhook receiver for `benches/webhooks.sh`. Answers `200` at once to a
//! `POST` on any path and counts it. For an `agent.message_delivery` payload whose
//! `data.delivery_state` is `sent` it records `now - data.created_at` (the message's queue time),
//! once per message (`data.id`). `GET /stats` answers the summary line so far; on SIGTERM,
//! ctrl-c, or after `--idle-secs` without a request it prints
//! `received=N latency_p50_ms=… latency_p99_ms=… latency_samples=…` and exits.
//!
//!     receiver [ADDR] [--idle-secs N]      # ADDR defaults to 127.0.0.1:18097; N 0 = never

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Default)]
struct Latencies {
    /// Milliseconds from a message's queue time to its `sent` delivery's arrival.
    samples: Vec<f64>,
    /// Messages already sampled (a redelivery is not a second sample).
    seen: HashSet<String>,
}

struct Stats {
    received: AtomicU64,
    /// Milliseconds since `started` at the last request.
    last_ms: AtomicU64,
    started: Instant,
    latencies: Mutex<Latencies>,
}

impl Stats {
    fn new() -> Self {
        Stats { received: AtomicU64::new(0), last_ms: AtomicU64::new(0), started: Instant::now(), latencies: Mutex::default() }
    }

    fn line(&self) -> String {
        let mut samples = self.latencies.lock().unwrap_or_else(|e| e.into_inner()).samples.clone();
        samples.sort_by(f64::total_cmp);
        let pct = |p: f64| samples.get(((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1))).copied().unwrap_or(0.0);
        format!(
            "received={} latency_p50_ms={:.1} latency_p99_ms={:.1} latency_samples={}",
            self.received.load(Ordering::Relaxed),
            pct(0.50),
            pct(0.99),
            samples.len()
        )
    }
}

const DELIVERY_EVENT: &[u8] = b"agent.message_delivery";

/// Whether `haystack` contains `needle` (payloads are small; no allocation).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Microseconds since the Unix epoch of an RFC 3339 time (`2026-04-07T12:00:00.123456Z`,
/// `…+02:00`).
fn rfc3339_us(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| s.get(from..to)?.parse::<i64>().ok();
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let mut digits = 0;
        while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if digits < 6 {
                micros = micros * 10 + i64::from(d - b'0');
                digits += 1;
            }
            i += 1;
        }
        micros *= 10i64.pow(6 - digits);
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let off = num(i + 1, i + 3)? * 3600 + num(i + 4, i + 6)? * 60;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(secs * 1_000_000 + micros)
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Records the latency of a `sent` delivery of `body` (an `agent.message_delivery` payload).
fn sample(stats: &Stats, body: &[u8]) {
    let arrived = now_us();
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let data = &payload["data"];
    if data["delivery_state"].as_str() != Some("sent") {
        return;
    }
    let Some(created) = data["created_at"].as_str().and_then(rfc3339_us) else {
        return;
    };
    let id = data["id"].as_str().unwrap_or_default();
    let mut latencies = stats.latencies.lock().unwrap_or_else(|e| e.into_inner());
    if latencies.seen.insert(id.to_owned()) {
        latencies.samples.push((arrived - created) as f64 / 1000.0);
    }
}

async fn hook(stats: Arc<Stats>, headers: HeaderMap, body: Bytes) -> StatusCode {
    stats.received.fetch_add(1, Ordering::Relaxed);
    stats.last_ms.store(stats.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    let is_delivery = match headers.get("x-atlas-event") {
        Some(v) => v.as_bytes() == DELIVERY_EVENT,
        None => contains(&body, DELIVERY_EVENT),
    };
    if is_delivery && contains(&body, b"\"sent\"") {
        sample(&stats, &body);
    }
    StatusCode::OK
}

async fn terminated() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn idle(stats: Arc<Stats>, idle: Duration) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let last = Duration::from_millis(stats.last_ms.load(Ordering::Relaxed));
        if stats.started.elapsed().saturating_sub(last) >= idle {
            return;
        }
    }
}

#[tokio::main]
async fn main() {
    let mut addr = "127.0.0.1:18097".to_owned();
    let mut idle_secs = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--idle-secs" => idle_secs = args.next().and_then(|v| v.parse().ok()).expect("--idle-secs takes a number of seconds"),
            _ => addr = arg,
        }
    }
    let stats = Arc::new(Stats::new());
    let on_hook = {
        let stats = stats.clone();
        move |headers: HeaderMap, body: Bytes| hook(stats.clone(), headers, body)
    };
    let on_stats = {
        let stats = stats.clone();
        move || {
            let stats = stats.clone();
            async move { stats.line() }
        }
    };
    let app = axum::Router::new().route("/stats", axum::routing::get(on_stats)).fallback(axum::routing::post(on_hook));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    let idle_timeout = async {
        if idle_secs == 0 {
            std::future::pending::<()>().await;
        }
        idle(stats.clone(), Duration::from_secs(idle_secs)).await;
    };
    tokio::select! {
        served = axum::serve(listener, app) => served.expect("serve"),
        _ = terminated() => {}
        _ = idle_timeout => {}
    }
    println!("{}", stats.line());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_to_unix_microseconds() {
        assert_eq!(rfc3339_us("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_us("2026-04-07T12:00:00.5Z"), Some(1_775_563_200_500_000));
        assert_eq!(rfc3339_us("2026-04-07T14:00:00.123456789+02:00"), Some(1_775_563_200_123_456));
        assert_eq!(rfc3339_us("2000-02-29T23:59:59.000001-00:30"), Some(951_870_599_000_001));
        assert_eq!(rfc3339_us("not a time"), None);
    }

    #[test]
    fn a_sent_delivery_is_sampled_once_per_message() {
        let stats = Stats::new();
        let body = br#"{"type":"agent.message_delivery","timestamp":"2026-04-07T12:00:00Z","data":{"id":"msg_1","delivery_state":"sent","created_at":"2026-04-07T12:00:00Z","version":2}}"#;
        sample(&stats, body);
        sample(&stats, body);
        let read = br#"{"type":"agent.message_delivery","timestamp":"2026-04-07T12:00:00Z","data":{"id":"msg_2","delivery_state":"read","created_at":"2026-04-07T12:00:00Z","version":4}}"#;
        sample(&stats, read);
        assert_eq!(stats.latencies.lock().unwrap().samples.len(), 1);
    }
}
