//! Incidents end to end, on SQLite and PostgreSQL: seed 002's lifecycle as written (with its
//! webhook events carrying the timeline's sequence numbers), every illegal transition refused
//! with the allowed list and nothing added to the timeline, `If-Match`, dedup created /
//! appended / reopened under a manual clock, concurrent transitions with exactly one winner,
//! alerts (acknowledge walking the legal path, a resolve with nothing to act on dropped), an
//! Alertmanager payload folding into one incident and resolving it, and MTTA/MTTR.

use atlas_e2e::receiver::Receiver;
use atlas_e2e::{Backend, Options, TestServer};
use atlas_kernel::ManualClock;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

macro_rules! on_both_backends {
    ($name:ident, $options:expr, |$server:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn scenario($server: TestServer) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                scenario(TestServer::start(Backend::Sqlite, $options).await.unwrap()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let mut options: Options = $options;
                options.env.insert("ATLAS_WEBHOOKS_ALLOW_PRIVATE".into(), "true".into());
                let Some(server) = TestServer::start(Backend::Postgres, options).await else { return };
                scenario(server).await;
            }
        }
    };
}

const STATUSES: [&str; 7] = ["triggered", "open", "acknowledged", "investigating", "resolved", "closed", "reopened"];

/// The legal moves, written out from the issue.
fn allowed(from: &str) -> Vec<&'static str> {
    match from {
        "triggered" => vec!["open"],
        "open" => vec!["acknowledged"],
        "acknowledged" => vec!["investigating"],
        "investigating" => vec!["resolved"],
        "resolved" => vec!["closed", "reopened"],
        "reopened" => vec!["investigating"],
        _ => vec![],
    }
}

/// The walk from `triggered` to each status.
fn walk_to(status: &str) -> Vec<&'static str> {
    let mut all = vec!["open", "acknowledged", "investigating", "resolved"];
    match status {
        "triggered" => vec![],
        "open" => all[..1].to_vec(),
        "acknowledged" => all[..2].to_vec(),
        "investigating" => all[..3].to_vec(),
        "resolved" => all,
        "closed" => {
            all.push("closed");
            all
        }
        "reopened" => {
            all.push("reopened");
            all
        }
        other => panic!("{other}"),
    }
}

/// Options for a test making more writes than the default limit allows in a minute.
fn many_writes() -> Options {
    let mut options = Options::default();
    options.env.insert("ATLAS_RATE_LIMIT_WRITES".into(), "6000/min".into());
    options
}

fn seed_incident() -> Value {
    json!({ "title": "Database connection pool exhausted", "severity": "P1", "description": "...", "source": "prometheus", "ci_ids": ["ci-001"] })
}

async fn create(server: &TestServer, body: Value) -> Value {
    let answer = server.call(Method::POST, "/v1/atlas/incidents", Some(&server.admin_key), Some(body)).await;
    assert!(answer.status == StatusCode::CREATED || answer.status == StatusCode::OK, "{:?}", answer.body);
    answer.data().clone()
}

async fn patch(server: &TestServer, id: &str, body: Value) -> atlas_e2e::Answer {
    server.call(Method::PATCH, &format!("/v1/atlas/incidents/{id}"), Some(&server.admin_key), Some(body)).await
}

async fn move_to(server: &TestServer, id: &str, status: &str) -> atlas_e2e::Answer {
    let body = if status == "resolved" { json!({"status": status, "resolution_notes": "fixed"}) } else { json!({"status": status}) };
    patch(server, id, body).await
}

async fn timeline(server: &TestServer, id: &str) -> Vec<Value> {
    let answer = server.call(Method::GET, &format!("/v1/atlas/incidents/{id}/timeline"), Some(&server.admin_key), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.data()["entries"].as_array().unwrap().clone()
}

async fn get(server: &TestServer, id: &str) -> atlas_e2e::Answer {
    server.call(Method::GET, &format!("/v1/atlas/incidents/{id}"), Some(&server.admin_key), None).await
}

on_both_backends!(seed_002_lifecycle_as_written, Options::default(), |server| {
    let receiver = Receiver::start().await;
    let sub = server
        .call(Method::POST, "/v1/atlas/webhooks", Some(&server.admin_key), Some(json!({"url": receiver.url(), "events": ["incident.*"]})))
        .await;
    assert_eq!(sub.status, StatusCode::CREATED, "{:?}", sub.body);

    let created = create(&server, seed_incident()).await;
    assert_eq!(created["outcome"], "created");
    assert_eq!(created["reference"], "INC-00000001");
    assert_eq!(created["status"], "triggered");
    assert_eq!(created["severity"], "P1");
    assert_eq!(created["ci_ids"], json!(["ci-001"]));
    let id = created["id"].as_str().unwrap().to_owned();

    let by_reference = get(&server, "INC-00000001").await;
    assert_eq!(by_reference.status, StatusCode::OK);
    assert_eq!(by_reference.data()["id"], id.as_str(), "the reference names the incident");
    assert_eq!(by_reference.header("etag"), Some("\"1\""));

    for status in ["open", "acknowledged", "investigating"] {
        let moved = move_to(&server, "INC-00000001", status).await;
        assert_eq!(moved.status, StatusCode::OK, "{status}: {:?}", moved.body);
        assert_eq!(moved.data()["status"], status);
    }
    // Seed 002's PATCH body, as written.
    let resolved = patch(
        &server,
        &id,
        json!({ "status": "resolved", "resolution_notes": "Scaled connection pool to 200", "resolved_by": "ops@example.com" }),
    )
    .await;
    assert_eq!(resolved.status, StatusCode::OK, "{:?}", resolved.body);
    assert_eq!(resolved.data()["status"], "resolved");
    assert_eq!(resolved.data()["resolution_notes"], "Scaled connection pool to 200");
    assert_eq!(resolved.data()["resolved_by"], "ops@example.com");
    assert!(resolved.data()["resolved_at"].is_string());
    let closed = move_to(&server, &id, "closed").await;
    assert_eq!(closed.data()["status"], "closed");

    let entries = timeline(&server, &id).await;
    let seen: Vec<(i64, Value, Value)> =
        entries.iter().map(|e| (e["sequence"].as_i64().unwrap(), e["from"].clone(), e["to"].clone())).collect();
    assert_eq!(
        seen,
        vec![
            (1, Value::Null, json!("triggered")),
            (2, json!("triggered"), json!("open")),
            (3, json!("open"), json!("acknowledged")),
            (4, json!("acknowledged"), json!("investigating")),
            (5, json!("investigating"), json!("resolved")),
            (6, json!("resolved"), json!("closed")),
        ]
    );
    assert!(entries.iter().all(|e| e["who"].as_str().unwrap().starts_with("key_") && e["at"].is_string()));

    let got = receiver.wait_for(6, Duration::from_secs(15)).await;
    let mut events: Vec<(i64, String)> =
        got.iter().map(|r| (r.json()["data"]["sequence"].as_i64().unwrap(), r.json()["type"].as_str().unwrap().to_owned())).collect();
    events.sort();
    assert_eq!(
        events,
        vec![
            (1, "incident.created".to_owned()),
            (2, "incident.open".to_owned()),
            (3, "incident.acknowledged".to_owned()),
            (4, "incident.investigating".to_owned()),
            (5, "incident.resolved".to_owned()),
            (6, "incident.closed".to_owned()),
        ],
        "one event per timeline entry, carrying its sequence number"
    );

    let listed = server.call(Method::GET, "/v1/atlas/incidents?status=closed&severity=P1&ci=ci-001", Some(&server.admin_key), None).await;
    assert_eq!(listed.data()["incidents"].as_array().unwrap().len(), 1);
    let second = create(&server, seed_incident()).await;
    assert_eq!(second["reference"], "INC-00000002", "references count up, never reused");
});

on_both_backends!(every_illegal_transition_is_refused_with_the_allowed_list, many_writes(), |server| {
    for from in STATUSES {
        let created = create(&server, json!({"title": format!("from {from}"), "severity": "P3"})).await;
        let id = created["id"].as_str().unwrap().to_owned();
        for step in walk_to(from) {
            assert_eq!(move_to(&server, &id, step).await.status, StatusCode::OK, "walking to {from}");
        }
        let before = timeline(&server, &id).await.len();
        for to in STATUSES {
            if allowed(from).contains(&to) {
                continue;
            }
            let refused = move_to(&server, &id, to).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{from} → {to}: {:?}", refused.body);
            assert_eq!(refused.code(), "INVALID_TRANSITION", "{from} → {to}");
            assert_eq!(refused.body["error"]["details"]["allowed"], json!(allowed(from)), "{from} → {to}");
        }
        assert_eq!(timeline(&server, &id).await.len(), before, "refusals from {from} added nothing to the timeline");
        assert_eq!(get(&server, &id).await.data()["status"], from);
    }
    // Resolving needs resolution notes; a stale If-Match is a version conflict.
    let created = create(&server, json!({"title": "notes", "severity": "P2"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    for step in walk_to("investigating") {
        move_to(&server, &id, step).await;
    }
    let no_notes = patch(&server, &id, json!({"status": "resolved"})).await;
    assert_eq!((no_notes.status, no_notes.code()), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"), "{:?}", no_notes.body);
    let stale = server
        .send(
            Method::PATCH,
            &format!("/v1/atlas/incidents/{id}"),
            Some(&server.admin_key),
            Some(json!({"assignee": "sam"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!((stale.status, stale.code()), (StatusCode::CONFLICT, "VERSION_CONFLICT"), "{:?}", stale.body);
    let etag = get(&server, &id).await.header("etag").unwrap().to_owned();
    let fresh = server
        .send(
            Method::PATCH,
            &format!("/v1/atlas/incidents/{id}"),
            Some(&server.admin_key),
            Some(json!({"assignee": "sam"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{:?}", fresh.body);
    assert_eq!(fresh.data()["assignee"], "sam");
});

fn clock_options() -> (Options, ManualClock) {
    let clock = ManualClock::new(time::macros::datetime!(2026-04-01 12:00 UTC));
    (Options { clock: Some(clock.clone()), ..Options::default() }, clock)
}

async fn dedup_scenario(server: TestServer, clock: ManualClock) {
    let body = json!({"title": "pool exhausted", "severity": "P1", "dedup_key": "db-pool"});
    let first = create(&server, body.clone()).await;
    assert_eq!(first["outcome"], "created");
    let id = first["id"].as_str().unwrap().to_owned();
    clock.advance(time::Duration::minutes(1));
    let again = create(&server, body.clone()).await;
    assert_eq!(
        (again["outcome"].as_str(), again["id"].as_str(), again["occurrences"].as_i64()),
        (Some("appended"), Some(id.as_str()), Some(2))
    );
    for step in walk_to("resolved") {
        move_to(&server, &id, step).await;
    }
    clock.advance(time::Duration::minutes(30));
    let reopened = create(&server, body.clone()).await;
    assert_eq!(
        (reopened["outcome"].as_str(), reopened["id"].as_str(), reopened["status"].as_str()),
        (Some("reopened"), Some(id.as_str()), Some("reopened"))
    );
    assert_eq!(reopened["reopen_count"], 1);
    move_to(&server, &id, "investigating").await;
    move_to(&server, &id, "resolved").await;
    clock.advance(time::Duration::minutes(61));
    let late = create(&server, body.clone()).await;
    assert_eq!(late["outcome"], "created", "resolved longer ago than the reopen window: a new incident");
    assert_ne!(late["id"], id.as_str());
    let late_id = late["id"].as_str().unwrap().to_owned();
    for step in walk_to("closed") {
        move_to(&server, &late_id, step).await;
    }
    let after_close = create(&server, body).await;
    assert_eq!(after_close["outcome"], "created", "a closed incident never absorbs");
}

mod dedup_created_appended_reopened {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let (options, clock) = clock_options();
        dedup_scenario(TestServer::start(Backend::Sqlite, options).await.unwrap(), clock).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let (options, clock) = clock_options();
        let Some(server) = TestServer::start(Backend::Postgres, options).await else { return };
        dedup_scenario(server, clock).await;
    }
}

on_both_backends!(concurrent_transitions_have_exactly_one_winner, Options::default(), |server| {
    let created = create(&server, json!({"title": "race", "severity": "P1"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    move_to(&server, &id, "open").await;
    let server = std::sync::Arc::new(server);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let server = server.clone();
            let id = id.clone();
            tokio::spawn(async move { move_to(&server, &id, "acknowledged").await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let answer = t.await.unwrap();
        statuses.push((answer.status, answer.code().to_owned()));
    }
    let won = statuses.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(won, 1, "exactly one concurrent transition wins: {statuses:?}");
    assert!(statuses.iter().all(|(s, c)| *s == StatusCode::OK || c == "INVALID_TRANSITION"), "{statuses:?}");
    let acks = timeline(&server, &id).await.iter().filter(|e| e["to"] == "acknowledged").count();
    assert_eq!(acks, 1);
});

on_both_backends!(alerts_walk_the_legal_path_and_say_what_they_did, Options::default(), |server| {
    let alert = |action: &str| json!({"dedup_key": "disk-full", "action": action, "summary": "Disk full on db-1", "severity": "P2", "source": "nagios", "ci_ids": ["ci-db-1"]});
    let dropped = server.call(Method::POST, "/v1/atlas/alerts", Some(&server.admin_key), Some(alert("resolve"))).await;
    assert_eq!(dropped.status, StatusCode::OK, "{:?}", dropped.body);
    assert_eq!(dropped.data()["outcome"], "dropped");
    assert!(dropped.data()["reason"].as_str().unwrap().contains("no unresolved incident"));
    let triggered = server.call(Method::POST, "/v1/atlas/alerts", Some(&server.admin_key), Some(alert("trigger"))).await;
    assert_eq!(triggered.data()["outcome"], "created");
    let id = triggered.data()["incident"]["id"].as_str().unwrap().to_owned();
    let acked = server.call(Method::POST, "/v1/atlas/alerts", Some(&server.admin_key), Some(alert("acknowledge"))).await;
    assert_eq!(acked.data()["outcome"], "acknowledged");
    assert_eq!(acked.data()["incident"]["status"], "acknowledged");
    let steps: Vec<Value> = timeline(&server, &id).await.iter().map(|e| e["to"].clone()).collect();
    assert_eq!(steps, vec![json!("triggered"), json!("open"), json!("acknowledged")], "each step of the walk is on the timeline");
    let resolved = server.call(Method::POST, "/v1/atlas/alerts", Some(&server.admin_key), Some(alert("resolve"))).await;
    assert_eq!(resolved.data()["outcome"], "resolved");
    assert_eq!(resolved.data()["incident"]["status"], "resolved");
});

on_both_backends!(an_alertmanager_payload_folds_into_one_incident_and_resolves_it, Options::default(), |server| {
    let payload = |status: &str| {
        json!({
            "version": "4",
            "groupKey": "{}:{alertname=\"HighLatency\"}",
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "atlas",
            "groupLabels": {"alertname": "HighLatency"},
            "commonLabels": {"alertname": "HighLatency", "severity": "critical", "ci_id": "ci-api-gw"},
            "commonAnnotations": {"summary": "p99 latency above 2s on api-gw"},
            "externalURL": "http://alertmanager.example:9093",
            "alerts": [{
                "status": status,
                "labels": {"alertname": "HighLatency", "severity": "critical", "instance": "api-gw-1", "ci_id": "ci-api-gw"},
                "annotations": {"summary": "p99 latency above 2s on api-gw"},
                "startsAt": "2026-04-01T12:00:00Z",
                "endsAt": if status == "firing" { "0001-01-01T00:00:00Z" } else { "2026-04-01T12:20:00Z" },
                "generatorURL": "http://prometheus.example:9090/graph",
                "fingerprint": "c1a8f2b3d4e5f607"
            }]
        })
    };
    let path = "/v1/atlas/alerts/alertmanager";
    let first = server.call(Method::POST, path, Some(&server.admin_key), Some(payload("firing"))).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.data()["results"][0]["outcome"], "created");
    let incident = first.data()["results"][0]["incident"].clone();
    assert_eq!(incident["severity"], "P1", "critical maps to P1");
    assert_eq!(incident["source"], "alertmanager");
    assert_eq!(incident["title"], "p99 latency above 2s on api-gw");
    let repeat = server.call(Method::POST, path, Some(&server.admin_key), Some(payload("firing"))).await;
    assert_eq!(repeat.data()["results"][0]["outcome"], "appended", "a repeated notification folds into the same incident");
    let resolved = server.call(Method::POST, path, Some(&server.admin_key), Some(payload("resolved"))).await;
    assert_eq!(resolved.data()["results"][0]["outcome"], "resolved");
    let listed = server.call(Method::GET, "/v1/atlas/incidents?source=alertmanager", Some(&server.admin_key), None).await;
    let all = listed.data()["incidents"].as_array().unwrap();
    assert_eq!(all.len(), 1, "one incident for one fingerprint");
    assert_eq!(all[0]["status"], "resolved");
    assert_eq!(all[0]["occurrences"], 2);
    let wrong = server.call(Method::POST, path, Some(&server.admin_key), Some(json!({"version": "3", "alerts": []}))).await;
    assert_eq!((wrong.status, wrong.code()), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"));
});

async fn metrics_scenario(server: TestServer, clock: ManualClock) {
    let a = create(&server, json!({"title": "a", "severity": "P1"})).await["id"].as_str().unwrap().to_owned();
    let b = create(&server, json!({"title": "b", "severity": "P1"})).await["id"].as_str().unwrap().to_owned();
    clock.advance(time::Duration::minutes(5));
    move_to(&server, &a, "open").await;
    move_to(&server, &a, "acknowledged").await;
    clock.advance(time::Duration::minutes(10));
    move_to(&server, &b, "open").await;
    move_to(&server, &b, "acknowledged").await;
    move_to(&server, &a, "investigating").await;
    clock.advance(time::Duration::minutes(45));
    move_to(&server, &a, "resolved").await;
    let m = server
        .call(
            Method::GET,
            "/v1/atlas/incidents/metrics?from=2026-04-01T00:00:00Z&to=2026-04-02T00:00:00Z&severity=P1",
            Some(&server.admin_key),
            None,
        )
        .await;
    assert_eq!(m.status, StatusCode::OK, "{:?}", m.body);
    let each = m.data()["incidents"].as_array().unwrap();
    assert_eq!(each.len(), 2);
    assert_eq!((each[0]["mtta_seconds"].as_i64(), each[0]["mttr_seconds"].as_i64()), (Some(300), Some(3600)));
    assert_eq!((each[1]["mtta_seconds"].as_i64(), each[1]["mttr_seconds"].as_i64()), (Some(900), None));
    assert_eq!(m.data()["mtta_seconds"].as_f64(), Some(600.0), "the mean of 300 and 900");
    assert_eq!(m.data()["mttr_seconds"].as_f64(), Some(3600.0));
    let none = server.call(Method::GET, "/v1/atlas/incidents/metrics?severity=P5", Some(&server.admin_key), None).await;
    assert_eq!(none.data()["mtta_seconds"], Value::Null);
}

mod mtta_and_mttr {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let (options, clock) = clock_options();
        metrics_scenario(TestServer::start(Backend::Sqlite, options).await.unwrap(), clock).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let (options, clock) = clock_options();
        let Some(server) = TestServer::start(Backend::Postgres, options).await else { return };
        metrics_scenario(server, clock).await;
    }
}

on_both_backends!(a_retried_create_with_one_idempotency_key_creates_one_incident, Options::default(), |server| {
    let headers = [("idempotency-key", "create-inc-1")];
    let first = server.send(Method::POST, "/v1/atlas/incidents", Some(&server.admin_key), Some(seed_incident()), &headers).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let again = server.send(Method::POST, "/v1/atlas/incidents", Some(&server.admin_key), Some(seed_incident()), &headers).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.data()["reference"], first.data()["reference"], "the replay is the first answer");
    let listed = server.call(Method::GET, "/v1/atlas/incidents", Some(&server.admin_key), None).await;
    assert_eq!(listed.data()["incidents"].as_array().unwrap().len(), 1, "one incident for one key");
    let runs = server.call(Method::GET, "/v1/atlas/runs?operation=incidents.create", Some(&server.admin_key), None).await;
    assert_eq!(runs.data()["runs"].as_array().unwrap().len(), 1, "one run for one execution: {:?}", runs.body);
    let other = json!({"title": "another", "severity": "P2"});
    let reused = server.send(Method::POST, "/v1/atlas/incidents", Some(&server.admin_key), Some(other), &headers).await;
    assert_eq!(reused.code(), "IDEMPOTENCY_KEY_REUSED");
});
