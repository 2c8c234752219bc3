//! Webhooks end to end with a local receiver: signed deliveries that both conventions verify,
//! retries at the scheduled times, durability across a restart, 410 disabling the endpoint,
//! replays, the SSRF guard, and filters that never send an unsubscribed event.

use atlas_e2e::receiver::Receiver;
use atlas_e2e::{Backend, Options, TestServer};
use atlas_kernel::{Clock, ManualClock};
use atlas_webhooks::{verify, verify_atlas_signature, StandardHeaders, WebhookSecret};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

async fn subscribe(server: &TestServer, url: &str, events: &[&str]) -> (String, WebhookSecret) {
    subscribe_as(server, &server.admin_key, url, events).await
}

/// Subscribes `url` for the organization of `key`.
async fn subscribe_as(server: &TestServer, key: &str, url: &str, events: &[&str]) -> (String, WebhookSecret) {
    let created = server
        .call(Method::POST, "/v1/atlas/webhooks", Some(key), Some(json!({"url": url, "events": events, "description": "test"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let secret = created.data()["secret"].as_str().expect("the secret is shown at creation");
    assert!(secret.starts_with("whsec_"));
    (created.data()["id"].as_str().unwrap().to_owned(), WebhookSecret::parse(secret).unwrap())
}

async fn inbound_event(server: &TestServer, phone: &str) -> Value {
    let answer = server
        .call(
            Method::POST,
            "/v1/atlas/events",
            Some(&server.admin_key),
            Some(json!({"customer": {"phone_number": phone}, "event_type": "message.received", "message": {"text": "hello"}})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.data().clone()
}

async fn deliveries(server: &TestServer, endpoint: &str) -> Vec<Value> {
    let answer = server.call(Method::GET, &format!("/v1/atlas/webhooks/{endpoint}/deliveries"), Some(&server.admin_key), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.data()["deliveries"].as_array().unwrap().clone()
}

/// The endpoint's first delivery, once it succeeded (within 5 s).
async fn first_delivery_succeeded(server: &TestServer, endpoint: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let d = deliveries(server, endpoint).await[0].clone();
        if d["status"] == "succeeded" {
            return d;
        }
        assert!(std::time::Instant::now() < deadline, "the delivery did not succeed: {d}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn verify_both(secret: &WebhookSecret, received: &atlas_e2e::receiver::Received, now: time::OffsetDateTime) {
    let headers = StandardHeaders::from_lookup(|name| received.headers.get(name).and_then(|v| v.to_str().ok()));
    verify(secret, &headers, &received.body, now, time::Duration::minutes(5)).expect("the Standard Webhooks signature verifies");
    verify_atlas_signature(secret, Some(received.header("x-atlas-signature")), &received.body).expect("the X-Atlas-Signature verifies");
}

macro_rules! on_both_backends {
    ($name:ident, $options:expr, |$server:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn scenario($server: TestServer) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                scenario(TestServer::start(Backend::Sqlite, $options).await.unwrap()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let mut options: Options = $options;
                options.env.insert("ATLAS_WEBHOOKS_ALLOW_PRIVATE".into(), "true".into());
                let Some(server) = TestServer::start(Backend::Postgres, options).await else { return };
                scenario(server).await;
            }
        }
    };
}

/// A test on a manual clock, on SQLite and (when reachable) PostgreSQL.
macro_rules! on_manual_clock {
    ($name:ident, |$server:ident, $clock:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn scenario($server: TestServer, $clock: ManualClock) $body

            async fn run(backend: Backend) {
                let clock = ManualClock::new(time::OffsetDateTime::now_utc());
                let mut options = Options { clock: Some(clock.clone()), ..Options::default() };
                options.env.insert("ATLAS_WEBHOOKS_ALLOW_PRIVATE".into(), "true".into());
                if let Some(server) = TestServer::start(backend, options).await {
                    scenario(server, clock).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(Backend::Postgres).await;
            }
        }
    };
}

on_both_backends!(a_subscribed_event_arrives_signed_both_ways, Options::default(), |server| {
    let receiver = Receiver::start().await;
    let (endpoint, secret) = subscribe(&server, &receiver.url(), &["atlas.event.received"]).await;
    let event = inbound_event(&server, "+14155550101").await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    verify_both(&secret, &got[0], time::OffsetDateTime::now_utc());
    assert_eq!(got[0].header("x-atlas-event"), "atlas.event.received");
    assert!(got[0].header("webhook-id").starts_with("dlv_"));
    assert_eq!(got[0].header("x-atlas-delivery"), got[0].header("webhook-id"));
    let payload = got[0].json();
    assert_eq!(payload["type"], "atlas.event.received");
    assert_eq!(payload["data"]["conversation_id"], event["conversation_id"]);
    assert_eq!(payload["data"]["version"], 1, "payloads carry the resource version");
    assert!(payload["timestamp"].is_string());

    let listed = deliveries(&server, &endpoint).await;
    assert_eq!(listed.len(), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut delivery = listed[0].clone();
    while delivery["status"] != "succeeded" {
        assert!(std::time::Instant::now() < deadline, "{delivery}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        delivery = deliveries(&server, &endpoint).await[0].clone();
    }
    assert_eq!(delivery["attempts"][0]["status_code"], 200);

    let listed = server.call(Method::GET, &format!("/v1/atlas/webhooks/{endpoint}"), Some(&server.admin_key), None).await;
    assert!(listed.data().get("secret").is_none(), "the secret is never shown again");
});

fn rfc3339(value: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(value.as_str().unwrap_or_else(|| panic!("a time: {value}")), &time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Waits until the endpoint's one delivery has `n` attempts recorded and returns it. The
/// delivery and its attempts are read by two queries, so a read can see the `n`th attempt with
/// the delivery row from before that attempt was recorded: the answer counts only once the row
/// has caught up (a pending delivery is due after its latest attempt).
async fn delivery_with_attempts(server: &TestServer, endpoint: &str, n: usize) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let delivery = deliveries(server, endpoint).await[0].clone();
        let attempts = delivery["attempts"].as_array().cloned().unwrap_or_default();
        let latest = attempts.iter().map(|a| rfc3339(&a["at"])).max();
        let caught_up = delivery["status"] != "pending" || latest.is_some_and(|at| rfc3339(&delivery["next_attempt_at"]) > at);
        if attempts.len() >= n && caught_up {
            return delivery;
        }
        assert!(std::time::Instant::now() < deadline, "attempt {n} was not recorded: {delivery}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

on_manual_clock!(a_receiver_failing_three_times_gets_the_event_on_the_fourth_attempt_at_the_scheduled_times, |server, clock| {
    let receiver = Receiver::start().await;
    receiver.script(&[500, 500, 500]);
    let (endpoint, _) = subscribe(&server, &receiver.url(), &["atlas.*"]).await;
    inbound_event(&server, "+14155550102").await;
    receiver.wait_for(1, Duration::from_secs(10)).await;

    // After each failure: wait until the server recorded it (and chose the next time from the
    // clock it read then), move the clock to just before that time (nothing is sent), then to it.
    for n in 1..=3usize {
        let delivery = delivery_with_attempts(&server, &endpoint, n).await;
        assert_eq!(delivery["status"], "pending", "{delivery}");
        let next = rfc3339(&delivery["next_attempt_at"]);
        clock.set(next - time::Duration::milliseconds(1));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.received().len(), n, "attempt {} is not made before its time", n + 1);
        clock.set(next);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while receiver.received().len() < n + 1 {
            let now = clock.now();
            assert!(
                std::time::Instant::now() < deadline,
                "attempt {} was not made at {now} (due {next}): {}",
                n + 1,
                deliveries(&server, &endpoint).await[0]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let statuses: Vec<u16> = receiver.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    let bodies: Vec<Vec<u8>> = receiver.received().iter().map(|r| r.body.clone()).collect();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every attempt carries the same payload");

    // The schedule, from the recorded attempts: 1 s, 5 s, 25 s after each failure; jitter only
    // ever lengthens a delay, by at most 10%.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let delivery = loop {
        let delivery = delivery_with_attempts(&server, &endpoint, 4).await;
        if delivery["status"] == "succeeded" {
            break delivery;
        }
        assert!(std::time::Instant::now() < deadline, "{delivery}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4);
    let mut times: Vec<_> = attempts.iter().map(|a| rfc3339(&a["at"])).collect();
    times.sort();
    for (gap, expected) in times.windows(2).map(|w| (w[1] - w[0]).as_seconds_f64()).zip([1.0, 5.0, 25.0]) {
        assert!(gap >= expected && gap <= expected * 1.1 + 0.001, "gap {gap} for a scheduled {expected}");
    }
    server.stop().await;
});

on_manual_clock!(a_receiver_down_across_a_restart_still_gets_every_event, |first, clock| {
    let port = Receiver::free_port();
    let (endpoint, secret) = subscribe(&first, &format!("http://127.0.0.1:{port}/hook"), &["atlas.event.received"]).await;
    for n in 0..3 {
        inbound_event(&first, &format!("+1415555020{n}")).await;
    }
    // Let the first attempts fail against the closed port, and be recorded (each retry is then
    // due within 1.1 s of the clock, not held by a lease).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while deliveries(&first, &endpoint).await.iter().filter(|d| d["attempts"].as_array().map_or(0, Vec::len) >= 1).count() < 3 {
        assert!(std::time::Instant::now() < deadline, "the first attempts were not made");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (key, database, first_backend) = (first.admin_key.clone(), first.database_url.clone(), first.backend);
    first.stop().await;

    let receiver = Receiver::start_on(port).await;
    let mut options = Options { clock: Some(clock.clone()), database_url: Some(database), ..Options::default() };
    options.env.insert("ATLAS_WEBHOOKS_ALLOW_PRIVATE".into(), "true".into());
    let mut second = TestServer::start(first_backend, options).await.expect("the second process starts over the same database");
    second.admin_key = key;
    clock.advance(time::Duration::seconds(2));
    let got = receiver.wait_for(3, Duration::from_secs(10)).await;
    let mut phones: Vec<String> = got.iter().map(|r| r.json()["data"]["customer"]["phone_number"].as_str().unwrap().to_owned()).collect();
    phones.sort();
    assert_eq!(phones, ["+14155550200", "+14155550201", "+14155550202"]);
    for r in &got {
        verify_both(&secret, r, clock.now());
    }
    second.stop().await;
});

/// A replay wakes the delivery claims: a worker idle since its last delivery, whose fallback
/// poll is an hour, sends the replayed delivery at once (before, a replay waited for that poll
/// unless the worker happened to be awake).
fn idle_for_an_hour() -> Options {
    let mut options = Options::default();
    options.env.insert("ATLAS_WORKER_FALLBACK_POLL_MS".into(), "3600000".into());
    options
}

on_both_backends!(a_replay_is_sent_at_once_by_an_idle_worker, idle_for_an_hour(), |server| {
    let receiver = Receiver::start().await;
    let (endpoint, _) = subscribe(&server, &receiver.url(), &["atlas.event.received"]).await;
    inbound_event(&server, "+14155550311").await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let delivery = first_delivery_succeeded(&server, &endpoint).await;
    // Time for the worker to finish its item, find nothing more and go to sleep.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let path = format!("/v1/atlas/webhooks/{endpoint}/deliveries/{}/replay", delivery["id"].as_str().unwrap());
    let replay = server.call(Method::POST, &path, Some(&server.admin_key), None).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{:?}", replay.body);
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[0].body, got[1].body, "the replay re-sends the same event");
});

on_both_backends!(gone_disables_the_endpoint_and_a_replay_sends_again, Options::default(), |server| {
    let receiver = Receiver::start().await;
    let (endpoint, _) = subscribe(&server, &receiver.url(), &["atlas.event.received"]).await;
    inbound_event(&server, "+14155550301").await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let delivery = first_delivery_succeeded(&server, &endpoint).await;
    let replay = server
        .call(
            Method::POST,
            &format!("/v1/atlas/webhooks/{endpoint}/deliveries/{}/replay", delivery["id"].as_str().unwrap()),
            Some(&server.admin_key),
            None,
        )
        .await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{:?}", replay.body);
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[0].body, got[1].body, "a replay re-sends the same event");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let d = deliveries(&server, &endpoint).await[0].clone();
        if d["status"] == "succeeded" && d["attempts"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a replay is a new attempt record: {d}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    receiver.script(&[410]);
    inbound_event(&server, "+14155550302").await;
    receiver.wait_for(3, Duration::from_secs(10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let hook = server.call(Method::GET, &format!("/v1/atlas/webhooks/{endpoint}"), Some(&server.admin_key), None).await;
        if hook.data()["enabled"] == false {
            assert_eq!(hook.data()["disabled_reason"], "gone");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "410 disables the endpoint: {:?}", hook.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    inbound_event(&server, "+14155550303").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 3, "a disabled endpoint gets nothing");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_url_is_refused_when_private_targets_are_not_allowed() {
    let mut options = Options::default();
    options.env.insert("ATLAS_WEBHOOKS_ALLOW_PRIVATE".into(), "false".into());
    let server = TestServer::start(Backend::Sqlite, options).await.unwrap();
    for url in
        ["http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://10.1.2.3/hook", "http://[::1]/hook", "http://169.254.169.254/latest"]
    {
        let refused = server
            .call(Method::POST, "/v1/atlas/webhooks", Some(&server.admin_key), Some(json!({"url": url, "events": ["atlas.*"]})))
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{url}: {:?}", refused.body);
        assert_eq!(refused.body["error"]["details"]["fields"][0]["field"], "url");
    }
    // A name is refused for what it resolves to, without saying which internal address that is.
    let refused = server
        .call(
            Method::POST,
            "/v1/atlas/webhooks",
            Some(&server.admin_key),
            Some(json!({"url": "http://localhost:9/hook", "events": ["atlas.*"]})),
        )
        .await;
    let text = refused.body.to_string();
    assert!(text.contains("loopback"), "the refusal names the kind of address: {text}");
    for internal in ["127.0.0.1", "::1", "[::1]"] {
        assert!(!text.contains(internal), "the refusal does not echo the resolved address {internal}: {text}");
    }
    let malformed = server
        .call(Method::POST, "/v1/atlas/webhooks", Some(&server.admin_key), Some(json!({"url": "ftp://example.com", "events": ["atlas.*"]})))
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    let unknown = server
        .call(
            Method::POST,
            "/v1/atlas/webhooks",
            Some(&server.admin_key),
            Some(json!({"url": "https://example.com/h", "events": ["billing.paid"]})),
        )
        .await;
    assert_eq!(unknown.body["error"]["details"]["fields"][0]["field"], "events");
    server.stop().await;
}

on_both_backends!(link_local_and_metadata_targets_are_refused_even_with_private_targets_allowed, Options::default(), |server| {
    // Both backends run with ATLAS_WEBHOOKS_ALLOW_PRIVATE=true: loopback is allowed...
    let receiver = Receiver::start().await;
    let (endpoint, _) = subscribe(&server, &receiver.url(), &["atlas.*"]).await;
    // ...but never link-local or a cloud metadata address, at creation or on a change of URL.
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.0.1:8080/hook",
        "http://[fe80::1]/hook",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest",
        "http://100.100.100.200/latest/meta-data/",
    ] {
        let refused = server
            .call(Method::POST, "/v1/atlas/webhooks", Some(&server.admin_key), Some(json!({"url": url, "events": ["atlas.*"]})))
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{url}: {:?}", refused.body);
        assert_eq!(refused.body["error"]["details"]["fields"][0]["field"], "url", "{url}");
        let message = refused.body["error"]["details"]["fields"][0]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains("link_local") || message.contains("metadata"), "{url}: {message}");
        let patched =
            server.call(Method::PATCH, &format!("/v1/atlas/webhooks/{endpoint}"), Some(&server.admin_key), Some(json!({"url": url}))).await;
        assert_eq!(patched.status, StatusCode::BAD_REQUEST, "{url}: {:?}", patched.body);
    }
    let hook = server.call(Method::GET, &format!("/v1/atlas/webhooks/{endpoint}"), Some(&server.admin_key), None).await;
    assert_eq!(hook.data()["url"], receiver.url(), "refused changes left the endpoint as it was");
});

on_both_backends!(an_unsubscribed_event_type_is_never_sent, Options::default(), |server| {
    let receiver = Receiver::start().await;
    let (_, _) = subscribe(&server, &receiver.url(), &["agent.message_delivery"]).await;
    let event = inbound_event(&server, "+14155550401").await;
    let send = server
        .call(
            Method::POST,
            "/agent/v1/tools/send_message",
            Some(&server.admin_key),
            Some(json!({"conversation_id": event["conversation_id"], "text": "hi"})),
        )
        .await;
    assert_eq!(send.status, StatusCode::ACCEPTED);
    let got = receiver.wait_for(3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let types: Vec<String> = receiver.received().iter().map(|r| r.header("x-atlas-event").to_owned()).collect();
    assert!(types.iter().all(|t| t == "agent.message_delivery"), "only subscribed types: {types:?}");
    let states: Vec<String> = got.iter().map(|r| r.json()["data"]["delivery_state"].as_str().unwrap_or("").to_owned()).collect();
    assert!(states.contains(&"read".to_owned()), "the sandbox's read receipt arrives as an event: {states:?}");
    let versions: Vec<i64> = got.iter().map(|r| r.json()["data"]["version"].as_i64().unwrap()).collect();
    assert!(versions.iter().all(|v| *v >= 1));
});

on_both_backends!(after_a_rotation_both_secrets_sign_for_a_day, Options::default(), |server| {
    let receiver = Receiver::start().await;
    let (endpoint, old) = subscribe(&server, &receiver.url(), &["atlas.event.received"]).await;
    let rotated = server.call(Method::POST, &format!("/v1/atlas/webhooks/{endpoint}/rotate-secret"), Some(&server.admin_key), None).await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let new = WebhookSecret::parse(rotated.data()["secret"].as_str().expect("the new secret is shown at rotation")).unwrap();
    assert!(rotated.data()["previous_secret_expires_at"].is_string());
    inbound_event(&server, "+14155550501").await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2, "two signatures during the rotation");
    let headers = StandardHeaders::from_lookup(|name| got[0].headers.get(name).and_then(|v| v.to_str().ok()));
    for secret in [&old, &new] {
        verify(secret, &headers, &got[0].body, time::OffsetDateTime::now_utc(), time::Duration::minutes(5)).expect("each secret verifies");
    }
    verify_atlas_signature(&new, Some(got[0].header("x-atlas-signature")), &got[0].body).expect("X-Atlas-Signature uses the new secret");
});

/// A receiver whose every endpoint (`/slow/{n}`) answers 200 only after `delay`, counting the
/// requests it got, the answers it sent, and the most requests one endpoint had open at once.
struct SlowReceiver {
    addr: std::net::SocketAddr,
    state: std::sync::Arc<std::sync::Mutex<SlowState>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct SlowState {
    received: usize,
    answered: usize,
    open: std::collections::HashMap<String, usize>,
    most_open: usize,
}

impl SlowReceiver {
    async fn start(delay: Duration) -> Self {
        use axum::extract::{Path, State};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("the slow receiver binds");
        let addr = listener.local_addr().unwrap();
        let state = std::sync::Arc::new(std::sync::Mutex::new(SlowState::default()));
        let handler = move |State(state): State<std::sync::Arc<std::sync::Mutex<SlowState>>>, Path(n): Path<String>| async move {
            {
                let mut s = state.lock().unwrap();
                s.received += 1;
                let open = s.open.entry(n.clone()).or_default();
                *open += 1;
                let open = *open;
                s.most_open = s.most_open.max(open);
            }
            tokio::time::sleep(delay).await;
            let mut s = state.lock().unwrap();
            *s.open.entry(n).or_default() -= 1;
            s.answered += 1;
            StatusCode::OK
        };
        let app = axum::Router::new().route("/slow/{n}", axum::routing::post(handler)).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    fn url(&self, n: usize) -> String {
        format!("http://{}/slow/{n}", self.addr)
    }

    /// (requests received, answers sent, most requests one endpoint had open at once)
    fn counts(&self) -> (usize, usize, usize) {
        let s = self.state.lock().unwrap();
        (s.received, s.answered, s.most_open)
    }
}

impl Drop for SlowReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

on_both_backends!(one_tenants_slow_endpoints_do_not_hold_up_another_tenants_delivery, Options::default(), |server| {
    // Organization A: 30 endpoints that answer after 14 s, and 5 events for each (150 deliveries).
    let slow = SlowReceiver::start(Duration::from_secs(14)).await;
    for n in 0..30 {
        subscribe(&server, &slow.url(n), &["atlas.event.received"]).await;
    }
    // Organization B: one endpoint that answers at once.
    let other_key = server.organization("Other tenant").await;
    let fast = Receiver::start().await;
    let (other_endpoint, _) = subscribe_as(&server, &other_key, &fast.url(), &["atlas.*"]).await;

    for n in 0..5 {
        inbound_event(&server, &format!("+1415555060{n}")).await;
    }
    // Every slow endpoint is being waited on before B's event exists.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while slow.counts().0 < 30 {
        assert!(std::time::Instant::now() < deadline, "the slow endpoints were not all attempted: {:?}", slow.counts());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let test = server.call(Method::POST, &format!("/v1/atlas/webhooks/{other_endpoint}/test"), Some(&other_key), None).await;
    assert_eq!(test.status, StatusCode::ACCEPTED, "{:?}", test.body);
    let got = fast.wait_for(1, Duration::from_secs(10)).await;
    let (received, answered, most_open) = slow.counts();
    assert_eq!(answered, 0, "B's delivery arrived while A's slow endpoints were all still answering ({received} requests open)");
    assert_eq!(got[0].header("x-atlas-event"), "atlas.webhook.test", "it is B's own event");
    assert!(most_open <= 4, "at most ATLAS_WEBHOOK_ENDPOINT_CONCURRENCY (4) requests to one endpoint at once: {most_open}");
    assert!(received > 30, "endpoints get more than one delivery at once while they are slow: {received}");
});
