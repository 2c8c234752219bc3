//! Idle means idle, and work still moves at once: on PostgreSQL the workers sleep until a
//! notification (`LISTEN atlas_work`, sent by the queue tables' insert triggers) or the slow
//! fallback poll.
//!
//! - A process with workers and a one-hour fallback poll delivers a message another process
//!   (no workers) accepted, promptly: only the notification can have woken it.
//! - An idle server runs fewer than one statement per second: its database connections go
//!   through a proxy that records every statement the server sends (`atlas_e2e::pgproxy`:
//!   BEGIN, COMMIT and `LISTEN` included) over a real 12 s window after start (the one test
//!   here that measures wall-clock time; the claiming loop's own pace is tested without a
//!   database in `apps/api/src/worker.rs`).

use atlas_e2e::pgproxy::CountingProxy;
use atlas_e2e::{Backend, Options, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};

/// Sends a sandbox message through `sender` (an inbound event opens the window first) and
/// returns (conversation, message).
async fn sandbox_send(sender: &TestServer, key: &str, phone: &str, n: u32) -> (String, String) {
    let event = sender
        .call(
            Method::POST,
            "/v1/atlas/events",
            Some(key),
            Some(json!({"idempotency_key": format!("evt-{phone}-{n}"), "channel": "whatsapp", "customer": {"phone_number": phone},
                        "event_type": "message.received", "message": {"text": "Hi"}})),
        )
        .await;
    assert_eq!(event.status, StatusCode::OK, "{:?}", event.body);
    let conversation = event.data()["conversation_id"].as_str().unwrap().to_owned();
    let send = sender
        .call(Method::POST, "/agent/v1/tools/send_message", Some(key), Some(json!({"conversation_id": conversation, "text": "Thanks!"})))
        .await;
    assert_eq!(send.status, StatusCode::ACCEPTED, "{:?}", send.body);
    (conversation, send.data()["message_id"].as_str().unwrap().to_owned())
}

/// Polls (through `reader`) until the message left the outbox (`sent` or later); panics after
/// `timeout`. Returns how long it took.
async fn wait_until_sent(reader: &TestServer, key: &str, conversation: &str, message: &str, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let messages = reader.call(Method::GET, &format!("/v1/atlas/conversations/{conversation}/messages"), Some(key), None).await;
        let found = messages.data()["messages"].as_array().unwrap().iter().find(|m| m["id"] == message).cloned().unwrap();
        if ["sent", "delivered", "read"].contains(&found["delivery_state"].as_str().unwrap_or("")) {
            return started.elapsed();
        }
        assert!(started.elapsed() < timeout, "message {message} never left the outbox: {found}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_accepted_by_one_process_is_delivered_by_another_woken_by_notify() {
    let mut worker_options = Options::default();
    // An hour: without the notification the worker would not look before the test ends.
    worker_options.env.insert("ATLAS_WORKER_FALLBACK_POLL_MS".into(), "3600000".into());
    let Some(worker) = TestServer::start(Backend::Postgres, worker_options).await else {
        return;
    };
    let mut api_options = Options { database_url: Some(worker.database_url.clone()), ..Options::default() };
    api_options.env.insert("ATLAS_WORKERS".into(), "false".into());
    let api = TestServer::start(Backend::Postgres, api_options).await.expect("PostgreSQL answered a moment ago");
    let key = worker.admin_key.clone();
    // The first send may also meet the worker's start (it looks once when its listener
    // connects); the second finds it asleep.
    for n in 0..2 {
        let (conversation, message) = sandbox_send(&api, &key, "+14155552671", n).await;
        let took = wait_until_sent(&api, &key, &conversation, &message, Duration::from_secs(20)).await;
        eprintln!("send {n} on the API process reached `sent` through the worker process in {took:?}");
    }
    api.stop().await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_runs_fewer_than_one_statement_per_second() {
    let Some(url) = atlas_testkit::services::fresh_postgres_database().await else {
        return;
    };
    let proxy = CountingProxy::start(CountingProxy::upstream_of(&url)).await;
    let options = Options { database_url: Some(proxy.url_for(&url)), ..Options::default() };
    let server = TestServer::start(Backend::Postgres, options).await.expect("PostgreSQL answered a moment ago");
    assert!(proxy.count() > 0, "the server's statements go through the proxy");
    // Let the start's own work pass (migrations, first start, the janitors' first sweeps, one
    // look at every queue when the listener connects), then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = proxy.count();
    let window = Duration::from_secs(12);
    tokio::time::sleep(window).await;
    let ran = proxy.since(before);
    let statements = ran.len();
    eprintln!("an idle server ran {statements} statements in {window:?}: {:#?}", ran.iter().map(|e| &e.sql).collect::<Vec<_>>());
    assert!(
        (statements as f64) < window.as_secs_f64(),
        "an idle server runs fewer than one statement per second: {statements} in {window:?}"
    );
    server.stop().await;
}
