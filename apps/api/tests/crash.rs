//! Crash semantics of the outbox, end to end, with the real binary.
//!
//! The server runs as a child process over a fresh database with a 6 s outbox lease (the
//! shortest the settings accept with a 3 s Graph timeout) and points at a fake Graph API whose
//! sends answer slowly, so that rows are always in flight. It
//! accepts 200 template sends (each with an idempotency key), and is killed with SIGKILL in
//! the middle of delivering them: some messages sent and recorded, one claimed batch in flight,
//! the rest queued. Right after the kill the test reads the outbox to learn which rows were
//! finished, which were claimed (leased) by the dead worker and which were still queued. It then
//! restarts the binary over the same database, pointed at a second fake (so that what each
//! process sent is told apart without racing the late bytes of the dead one), waits until every
//! send's run has finished, and checks the documented semantics exactly:
//!
//! - every accepted message reached Graph, and every one ends `sent`;
//! - a message finished before the kill is never sent again;
//! - a message still queued at the kill is sent once, by the restarted process;
//! - a message claimed at the kill is sent again after its lease: it reaches Graph twice when
//!   the dead process's call had reached Graph, so the duplicates are at most the rows claimed
//!   at the kill, themselves at most what one process holds at once (`OUTBOX_IN_FLIGHT`) and,
//!   all sends being on one channel, what one channel may have leased (`OUTBOX_PER_CHANNEL`),
//!   both taken from `apps/api/src/worker.rs`;
//! - the admin key is printed on the first start only.
//!
//! PostgreSQL (skipped loudly when unreachable) and SQLite.

use atlas_whatsapp::fake::{FakeGraph, ReceivedRequest, Reply};
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Messages accepted before the kill.
const MESSAGES: usize = 200;
/// The most rows one process can have claimed at the kill: what it holds at once, and at most
/// what one channel may have leased (every send of this test is on its one WhatsApp channel).
const MAX_CLAIMED: usize = {
    let (held, per_channel) = (atlas_api::worker::OUTBOX_IN_FLIGHT as usize, atlas_api::worker::OUTBOX_PER_CHANNEL as usize);
    if held < per_channel {
        held
    } else {
        per_channel
    }
};
/// `ATLAS_OUTBOX_LEASE_SECS` of both processes.
const LEASE_SECS: u64 = 6;
/// `ATLAS_WHATSAPP_TIMEOUT_SECS` of both processes: longer than a slow send.
const GRAPH_TIMEOUT_SECS: u64 = 3;
/// How long the first fake takes to answer a send: rows are in flight for this long.
const SLOW_SEND: Duration = Duration::from_millis(2000);
/// The process is killed once the first fake has seen this many sends (a batch or more done).
const KILL_AFTER_SENDS: usize = 40;
/// The secret key of the PostgreSQL runs (SQLite makes its own beside the database file).
const SECRET_KEY: &str = "crash-test-secret-key-0123456789abcdef-long-enough";

/// The real `atlas-api` binary running as a child process.
struct Server {
    child: Child,
    base: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts `atlas-api` (serve) on a free port over `database_url`, sending through `graph_url`.
    async fn spawn(database_url: &str, secret_key: Option<&str>, graph_url: &str, workdir: &std::path::Path) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_atlas-api"));
        for (name, _) in std::env::vars() {
            if name.starts_with("ATLAS_") {
                command.env_remove(name);
            }
        }
        command
            .current_dir(workdir)
            .env("ATLAS_BIND", "127.0.0.1:0")
            .env("ATLAS_DATABASE_URL", database_url)
            .env("ATLAS_WHATSAPP_GRAPH_URL", graph_url)
            .env("ATLAS_OUTBOX_LEASE_SECS", LEASE_SECS.to_string())
            .env("ATLAS_WHATSAPP_TIMEOUT_SECS", GRAPH_TIMEOUT_SECS.to_string())
            .env("ATLAS_WEBHOOKS_ALLOW_PRIVATE", "true")
            .env("ATLAS_WEBHOOK_TIMEOUT_SECS", "1")
            .env("ATLAS_RATE_LIMIT_MESSAGES", "1000000/min")
            .env("ATLAS_RATE_LIMIT_READS", "1000000/min")
            .env("ATLAS_RATE_LIMIT_WRITES", "1000000/min")
            .env("RUST_LOG", "info,sqlx=warn,sea_orm=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(key) = secret_key {
            command.env("ATLAS_SECRET_KEY", key);
        }
        let mut child = command.spawn().expect("atlas-api starts");

        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = oneshot::channel::<String>();
        let mut readers = Vec::new();
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let sink = stdout.clone();
        readers.push(tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                sink.lock().unwrap().push(line);
            }
        }));
        let mut err = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let sink = stderr.clone();
        readers.push(tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            while let Ok(Some(line)) = err.next_line().await {
                if let Some(addr) = listening_address(&line) {
                    if let Some(tx) = addr_tx.take() {
                        let _ = tx.send(addr);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        }));

        // The sender is dropped if the process exits before it listens.
        let addr = match tokio::time::timeout(Duration::from_secs(60), addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                let _ = child.start_kill();
                panic!("atlas-api did not start listening; its stderr:\n{}", stderr.lock().unwrap().join("\n"));
            }
        };
        Server { child, base: format!("http://{addr}"), stdout, stderr, readers }
    }

    /// The `admin api key: …` lines printed so far.
    fn printed_keys(&self) -> Vec<String> {
        self.stdout.lock().unwrap().iter().filter_map(|l| l.strip_prefix("admin api key: ").map(str::to_owned)).collect()
    }

    /// The admin key the first start prints (stdout is line-buffered and printed before the
    /// server listens, so it arrives promptly).
    async fn admin_key(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(key) = self.printed_keys().into_iter().next() {
                return key;
            }
            assert!(Instant::now() < deadline, "the first start printed no admin key; stdout: {:?}", self.stdout.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, then waits for the process and for its output to be read to the end. Returns
    /// everything it printed on stdout.
    async fn kill(mut self) -> Vec<String> {
        self.child.kill().await.expect("SIGKILL the server");
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
        let lines = self.stdout.lock().unwrap().clone();
        lines
    }

    fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// `host:port` from the `atlas listening on http://host:port/v1/atlas` log line.
fn listening_address(line: &str) -> Option<String> {
    let rest = &line[line.find("listening on http://")? + "listening on http://".len()..];
    Some(rest[..rest.find("/v1/atlas")?].to_owned())
}

/// A small JSON client of one server.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Option<Value>, idempotency_key: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{}", self.base, path)).bearer_auth(&self.key);
        if let Some(k) = idempotency_key {
            request = request.header("Idempotency-Key", k);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

/// The recipient of message `i`, as E.164.
fn phone(i: usize) -> String {
    format!("+1555010{i:04}")
}

/// How many sends each recipient (E.164) got.
fn per_recipient(sends: &[ReceivedRequest]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for send in sends {
        let to = send.to().unwrap_or_else(|| panic!("a send without `to`: {}", send.raw_body));
        *counts.entry(format!("+{}", to.trim_start_matches('+'))).or_insert(0) += 1;
    }
    counts
}

/// The outbox as the killed process left it, by recipient.
#[derive(Debug, Default)]
struct OutboxAtKill {
    finished: BTreeSet<String>,
    claimed: BTreeSet<String>,
    queued: BTreeSet<String>,
}

async fn outbox_at_kill(database_url: &str) -> OutboxAtKill {
    let db = Database::connect(database_url).await.expect("the test reads the outbox");
    let rows = db
        .query_all(Statement::from_string(db.get_database_backend(), "SELECT recipient, lease_until_us, finished_at_us FROM outbox"))
        .await
        .expect("reading the outbox");
    let mut outbox = OutboxAtKill::default();
    for row in rows {
        let recipient: String = row.try_get("", "recipient").unwrap();
        let leased: Option<i64> = row.try_get("", "lease_until_us").unwrap();
        let finished: Option<i64> = row.try_get("", "finished_at_us").unwrap();
        let set = match (finished, leased) {
            (Some(_), _) => &mut outbox.finished,
            (None, Some(_)) => &mut outbox.claimed,
            (None, None) => &mut outbox.queued,
        };
        assert!(set.insert(recipient.clone()), "two outbox rows for {recipient}");
    }
    let _ = db.close().await;
    outbox
}

async fn crash_and_restart(database_url: String, secret_key: Option<&str>, backend: &str) {
    let started = Instant::now();
    let workdir = std::env::temp_dir().join(format!("atlas-crash-{}-{}", backend, std::process::id()));
    std::fs::create_dir_all(&workdir).unwrap();

    // The first process's Graph: every send is slow, so the worker always has a batch in flight.
    let slow_graph = FakeGraph::start().await;
    slow_graph.set_default(Reply::accept().with_delay(SLOW_SEND));
    // The restarted process's Graph: answers at once.
    let graph = FakeGraph::start().await;

    let first = Server::spawn(&database_url, secret_key, slow_graph.url(), &workdir).await;
    let key = first.admin_key().await;
    assert!(key.starts_with("atlas_sk_"), "{key}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(32).timeout(Duration::from_secs(30)).build().unwrap();
    let api = Api { http: http.clone(), base: first.base.clone(), key: key.clone() };

    let (status, channel) = api
        .call(
            Method::POST,
            "/v1/atlas/channels",
            Some(json!({"provider": "whatsapp", "name": "main", "phone_number_id": "1234", "display_phone_number": "+15550001111",
                        "access_token": "EAAG-test", "app_secret": "s3cret", "verify_token": "v"})),
            Some("crash-channel"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{channel}");
    let channel_id = channel["data"]["id"].as_str().unwrap().to_owned();
    let (status, template) = api
        .call(
            Method::POST,
            "/v1/atlas/templates",
            Some(json!({"name": "hello_world", "language": "en_US", "category": "utility", "body": "Hello"})),
            Some("crash-template"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");

    // Accept 200 template sends, 8 at a time, each with its own idempotency key.
    let mut accepting = tokio::task::JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..8 {
        let (api, next, channel_id) = (api.clone(), next.clone(), channel_id.clone());
        accepting.spawn(async move {
            let mut accepted = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= MESSAGES {
                    return accepted;
                }
                let body = json!({"phone_number": phone(i), "channel_id": channel_id, "template_id": "hello_world", "category": "utility"});
                let (status, answer) = api.call(Method::POST, "/v1/atlas/messages", Some(body), Some(&format!("crash-send-{i}"))).await;
                assert_eq!(status, StatusCode::ACCEPTED, "send {i}: {answer}");
                let data = &answer["data"];
                assert_eq!(data["accepted"], true, "{answer}");
                accepted.push((i, data["conversation_id"].as_str().unwrap().to_owned(), data["message_id"].as_str().unwrap().to_owned()));
            }
        });
    }
    let mut accepted = Vec::new();
    while let Some(part) = accepting.join_next().await {
        accepted.extend(part.expect("an accepting task"));
    }
    accepted.sort();
    assert_eq!(accepted.len(), MESSAGES);
    let accepted_after = started.elapsed();

    // Kill once a batch or more has gone out: the worker is then waiting on a slow batch.
    slow_graph.wait_for_requests(KILL_AFTER_SENDS, Duration::from_secs(30)).await;
    let first_stdout = first.kill().await;
    let killed_after = started.elapsed();
    let at_kill = outbox_at_kill(&database_url).await;
    let all_phones: BTreeSet<String> = (0..MESSAGES).map(phone).collect();
    let listed: BTreeSet<String> = at_kill.finished.iter().chain(&at_kill.claimed).chain(&at_kill.queued).cloned().collect();
    assert_eq!(listed, all_phones, "one outbox row per accepted message");
    assert!(!at_kill.claimed.is_empty(), "the kill must catch a batch in flight: {at_kill:?}");
    assert!(!at_kill.queued.is_empty(), "the kill must leave messages queued: {at_kill:?}");
    assert!(!at_kill.finished.is_empty(), "some messages were delivered before the kill: {at_kill:?}");
    assert!(at_kill.claimed.len() <= MAX_CLAIMED, "at most {MAX_CLAIMED} rows are claimed at a time: {at_kill:?}");

    // Restart over the same database.
    let second = Server::spawn(&database_url, secret_key, graph.url(), &workdir).await;
    let api = Api { http, base: second.base.clone(), key };

    // Wait until no send's run is pending: every message sent (or failed, checked below).
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (status, runs) = api.call(Method::GET, "/v1/atlas/runs?operation=messages.send&status=pending&limit=100", None, None).await;
        assert_eq!(status, StatusCode::OK, "{runs}");
        let pending = runs["data"]["runs"].as_array().map_or(usize::MAX, Vec::len);
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} sends still pending 45 s after the restart; Graph saw {} sends; server log:\n{}",
            graph.sends().len(),
            second.stderr_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered_after = started.elapsed();

    // Each message ends `sent` (the fake reports no statuses, so not further).
    for (i, conversation, message) in &accepted {
        let (status, page) = api.call(Method::GET, &format!("/v1/atlas/conversations/{conversation}/messages"), None, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let found = page["data"]["messages"].as_array().unwrap().iter().find(|m| m["id"] == message.as_str()).cloned();
        let found = found.unwrap_or_else(|| panic!("message {i} is listed in its conversation: {page}"));
        assert!(matches!(found["delivery_state"].as_str(), Some("sent" | "delivered" | "read")), "message {i}: {found}");
        assert!(found["provider_message_id"].as_str().is_some_and(|id| id.starts_with("wamid.")), "{found}");
    }

    // What each process sent.
    let before = per_recipient(&slow_graph.sends());
    let after = per_recipient(&graph.sends());
    for (phone, n) in before.iter().chain(&after) {
        assert!(all_phones.contains(phone), "a send to {phone}, which nobody asked for");
        assert_eq!(*n, 1, "one process sent {phone} {n} times");
    }
    let mut duplicates = Vec::new();
    for phone in &all_phones {
        let (b, a) = (before.contains_key(phone), after.contains_key(phone));
        assert!(b || a, "{phone} was accepted but never reached Graph");
        if at_kill.finished.contains(phone) {
            assert!(b && !a, "{phone} was delivered before the kill and must not be sent again (before {b}, after {a})");
        } else if at_kill.queued.contains(phone) {
            assert!(!b && a, "{phone} was queued at the kill and must be sent exactly once, after the restart (before {b}, after {a})");
        } else {
            assert!(a, "{phone} was claimed at the kill and must be sent again after its lease");
            if b {
                duplicates.push(phone.clone());
            }
        }
    }
    assert!(duplicates.len() <= at_kill.claimed.len() && at_kill.claimed.len() <= MAX_CLAIMED);

    // The admin key is printed on the first start only.
    let second_stdout = second.kill().await;
    let printed = |lines: &[String]| lines.iter().filter(|l| l.starts_with("admin api key: ")).count();
    assert_eq!(printed(&first_stdout), 1, "the first start prints the admin key once: {first_stdout:?}");
    assert_eq!(printed(&second_stdout), 0, "a restart prints no admin key: {second_stdout:?}");

    eprintln!(
        "crash test ({backend}): {MESSAGES} accepted in {:.1}s; killed at {:.1}s with {} finished, {} claimed (in flight), {} queued; \
         all delivered {:.1}s after the start; {} sent twice (claimed at the kill and already at Graph), {} sent once",
        accepted_after.as_secs_f64(),
        killed_after.as_secs_f64(),
        at_kill.finished.len(),
        at_kill.claimed.len(),
        at_kill.queued.len(),
        delivered_after.as_secs_f64(),
        duplicates.len(),
        MESSAGES - duplicates.len(),
    );
    let _ = std::fs::remove_dir_all(&workdir);
    remove_database(&database_url).await;
}

/// Drops the test's PostgreSQL database, or removes the SQLite file and its companions.
async fn remove_database(database_url: &str) {
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        let path = std::path::Path::new(path.split('?').next().unwrap_or(path));
        for companion in [path.to_path_buf(), path.with_extension("secret"), path.with_extension("db-wal"), path.with_extension("db-shm")] {
            let _ = std::fs::remove_file(companion);
        }
    } else if let Some((_, schema)) = database_url.rsplit_once("search_path%3D") {
        if let Ok(admin) = Database::connect(atlas_testkit::services::postgres_admin_url()).await {
            let _ = admin
                .execute(Statement::from_string(admin.get_database_backend(), format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                .await;
            let _ = admin.close().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_killed_server_delivers_every_message_after_restart_with_bounded_duplicates() {
    let Some(database_url) = atlas_testkit::services::fresh_postgres_database().await else { return };
    crash_and_restart(database_url, Some(SECRET_KEY), "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_killed_server_delivers_every_message_after_restart_with_bounded_duplicates() {
    // No secret key: the first start makes one beside the database file and the restart reads it.
    let database_url = atlas_testkit::services::fresh_sqlite_url();
    crash_and_restart(database_url, None, "sqlite").await;
}

/// A webhook receiver on a fixed loopback port that records each body it gets.
async fn webhook_receiver(port: u16) -> (Arc<Mutex<Vec<Value>>>, JoinHandle<()>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("the receiver binds its port");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (received, task)
}

/// Webhook events survive a SIGKILL while their receiver is down: every one arrives once the
/// receiver is back and the server restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_events_for_a_receiver_down_across_a_kill_all_arrive_after_restart() {
    let Some(database_url) = atlas_testkit::services::fresh_postgres_database().await else { return };
    let workdir = std::env::temp_dir();
    let graph = FakeGraph::start().await;
    let first = Server::spawn(&database_url, Some(SECRET_KEY), graph.url(), &workdir).await;
    let api = Api { http: reqwest::Client::new(), base: first.base.clone(), key: first.admin_key().await };
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
    let (status, hook) = api
        .call(
            Method::POST,
            "/v1/atlas/webhooks",
            Some(json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["atlas.event.received"]})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let endpoint = hook["data"]["id"].as_str().unwrap().to_owned();
    const EVENTS: usize = 20;
    for i in 0..EVENTS {
        let body = json!({"customer": {"phone_number": phone(i)}, "event_type": "message.received", "message": {"text": "hi"}});
        let (status, answer) = api.call(Method::POST, "/v1/atlas/events", Some(body), None).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    // Kill as soon as every delivery has failed once against the closed port.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, listed) = api.call(Method::GET, &format!("/v1/atlas/webhooks/{endpoint}/deliveries?limit=200"), None, None).await;
        let tried = listed["data"]["deliveries"]
            .as_array()
            .map_or(0, |d| d.iter().filter(|d| d["attempt_count"].as_u64().unwrap_or(0) >= 1).count());
        if tried == EVENTS {
            break;
        }
        assert!(Instant::now() < deadline, "the first attempts were not made: {listed}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().await;

    let (received, receiver) = webhook_receiver(port).await;
    let second = Server::spawn(&database_url, Some(SECRET_KEY), graph.url(), &workdir).await;
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let phones: std::collections::BTreeSet<String> =
            received.lock().unwrap().iter().filter_map(|b| b["data"]["customer"]["phone_number"].as_str().map(str::to_owned)).collect();
        if phones.len() == EVENTS {
            assert_eq!(phones, (0..EVENTS).map(phone).collect(), "every event arrived");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {EVENTS} events arrived after the restart; stderr:\n{}",
            phones.len(),
            second.stderr_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.kill().await;
    receiver.abort();
    remove_database(&database_url).await;
}
