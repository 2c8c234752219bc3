//! `loadgen`: N concurrent clients send one request shape for a fixed duration; prints
//! `rps=… p50_ms=… p99_ms=… ok=… errors=…` on one line. `{n}` in the body or the
//! `Idempotency-Key` value is replaced by a unique request number, `{phone}` by a unique
//! E.164 number.

use clap::Parser;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
struct Args {
    /// The URL to call.
    url: String,
    #[arg(long, default_value = "GET")]
    method: String,
    /// JSON body (templated).
    #[arg(long)]
    body: Option<String>,
    /// Bearer credential.
    #[arg(long)]
    key: Option<String>,
    /// An Idempotency-Key header (templated).
    #[arg(long)]
    idempotency_key: Option<String>,
    #[arg(long, default_value_t = 32)]
    clients: usize,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// The status code counted as success.
    #[arg(long, default_value_t = 200)]
    expect: u16,
}

fn fill(template: &str, n: u64) -> String {
    template.replace("{n}", &n.to_string()).replace("{phone}", &format!("+1555{:07}", n % 10_000_000))
}

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.clients).build().expect("client");
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (args, client, counter, errors) = (args.clone(), client.clone(), counter.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let method = reqwest::Method::from_bytes(args.method.as_bytes()).expect("method");
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let mut request = client.request(method.clone(), &args.url);
                if let Some(key) = &args.key {
                    request = request.bearer_auth(key);
                }
                if let Some(k) = &args.idempotency_key {
                    request = request.header("Idempotency-Key", fill(k, n));
                }
                if let Some(body) = &args.body {
                    request = request.header("content-type", "application/json").body(fill(body, n));
                }
                let at = Instant::now();
                match request.send().await {
                    Ok(r) if r.status().as_u16() == args.expect => {
                        let _ = r.bytes().await;
                        latencies.push(at.elapsed());
                    }
                    Ok(r) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first unexpected answer: {} {}", r.status(), r.text().await.unwrap_or_default());
                        }
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first error: {e}");
                        }
                    }
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
    };
    println!(
        "rps={:.0} p50_ms={:.2} p99_ms={:.2} ok={} errors={} clients={} seconds={:.1}",
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        all.len(),
        errors.load(Ordering::Relaxed),
        args.clients,
        elapsed
    );
}
