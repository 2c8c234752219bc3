//! Prometheus metrics at `/metrics`: requests and latency by route, rate-limit refusals, and
//! gauges that the binary's workers and adapters feed (limiter fallbacks, outbox depth).

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

type Source = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The process's metrics.
#[derive(Default)]
pub struct Metrics {
    // Labels from closed sets of static strings: counting a request allocates nothing.
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    latency: Mutex<BTreeMap<(&'static str, &'static str), Histogram>>,
    rate_limited: Mutex<BTreeMap<String, u64>>,
    gauges: Mutex<Vec<(&'static str, &'static str, Source)>>,
    in_flight: AtomicU64,
    webhook_unrouted: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics(..)")
    }
}

impl Metrics {
    /// Counts a 429 of `class`.
    pub fn rate_limited(&self, class: &str) {
        if let Ok(mut m) = self.rate_limited.lock() {
            *m.entry(class.to_owned()).or_default() += 1;
        }
    }

    /// Counts a Meta webhook change for a number the organization has not connected.
    pub fn webhook_unrouted(&self) {
        self.webhook_unrouted.fetch_add(1, Ordering::Relaxed);
    }

    /// Registers a value read at scrape time (`name` must be a valid metric name).
    pub fn register_gauge(&self, name: &'static str, help: &'static str, source: impl Fn() -> u64 + Send + Sync + 'static) {
        if let Ok(mut g) = self.gauges.lock() {
            g.push((name, help, Arc::new(source)));
        }
    }

    fn observe(&self, method: &'static str, route: &'static str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method, route, status)).or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            let h = m.entry((method, route)).or_default();
            for (i, le) in BUCKETS.iter().enumerate() {
                if seconds <= *le {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP atlas_http_requests_total HTTP requests by method, route and status.\n# TYPE atlas_http_requests_total counter\n",
        );
        if let Ok(m) = self.requests.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(out, "atlas_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}");
            }
        }
        out.push_str(
            "# HELP atlas_http_request_duration_seconds HTTP request latency.\n# TYPE atlas_http_request_duration_seconds histogram\n",
        );
        if let Ok(m) = self.latency.lock() {
            for ((method, route), h) in m.iter() {
                for (i, le) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "atlas_http_request_duration_seconds_bucket{{method=\"{method}\",route=\"{route}\",le=\"{le}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "atlas_http_request_duration_seconds_bucket{{method=\"{method}\",route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "atlas_http_request_duration_seconds_sum{{method=\"{method}\",route=\"{route}\"}} {}", h.sum);
                let _ = writeln!(out, "atlas_http_request_duration_seconds_count{{method=\"{method}\",route=\"{route}\"}} {}", h.count);
            }
        }
        out.push_str(
            "# HELP atlas_rate_limited_total Requests refused with 429, by route class.\n# TYPE atlas_rate_limited_total counter\n",
        );
        if let Ok(m) = self.rate_limited.lock() {
            for (class, n) in m.iter() {
                let _ = writeln!(out, "atlas_rate_limited_total{{class=\"{class}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP atlas_webhook_unrouted_changes_total Meta webhook changes for numbers the organization has not connected (skipped).\n# TYPE atlas_webhook_unrouted_changes_total counter\natlas_webhook_unrouted_changes_total {}",
            self.webhook_unrouted.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP atlas_http_in_flight Requests being served.\n# TYPE atlas_http_in_flight gauge\natlas_http_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        if let Ok(g) = self.gauges.lock() {
            for (name, help, source) in g.iter() {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}", source());
            }
        }
        out
    }
}

/// The `method` label: one of the methods HTTP defines, or `other`, so a flood of invented
/// methods cannot grow `/metrics`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The `route` label: a route template of the table, or `unmatched`.
fn route_label(request: &Request) -> &'static str {
    request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| crate::routes::ROUTES.iter().find(|spec| spec.path == path.as_str()))
        .map_or("unmatched", |spec| spec.path)
}

/// Middleware: counts and times every request by its route template and method, both from a
/// closed set of labels.
pub async fn layer(axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = route_label(&request);
    let method = method_label(request.method());
    let start = Instant::now();
    metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let response = next.run(request).await;
    metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    metrics.observe(method, route, response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}
