//! Root-cause analysis end to end, on SQLite and PostgreSQL, under a manual clock: a change on a
//! dependency 30 minutes before the incident ranks above one 2 hours before, an earlier
//! incident on the same item is a candidate, nothing after the trigger (nor on an unrelated
//! item) is listed, and the same question answers the same bytes, by id or by reference.
//!
//! Incidents are created through the incidents use case on the server's own store (the
//! incident routes belong to the incidents work); changes and the CMDB go through the API.

use atlas_e2e::{Backend, Options, TestServer};
use atlas_incidents::{CreateIncident, Incidents, IncidentsConfig, Severity};
use atlas_kernel::{ManualClock, OrgId};
use atlas_runs::JournalEntry;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const TRIGGER: OffsetDateTime = datetime!(2026-04-01 12:00 UTC);

async fn item(server: &TestServer, key: &str, name: &str) -> String {
    let answer = server.call(Method::POST, "/v1/atlas/cmdb/items", Some(key), Some(json!({"name": name, "class": "service"}))).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    answer.data()["id"].as_str().unwrap().to_owned()
}

async fn depends(server: &TestServer, key: &str, source: &str, target: &str) {
    let body = json!({"source_id": source, "target_id": target, "type": "depends_on"});
    assert_eq!(server.call(Method::POST, "/v1/atlas/cmdb/relationships", Some(key), Some(body)).await.status, StatusCode::CREATED);
}

/// A standard change on `ci`, walked to `implementing` now (by the server's clock).
async fn implement(server: &TestServer, key: &str, title: &str, ci: &str, risk: &str) -> String {
    let body = json!({"title": title, "type": "standard", "risk_level": risk, "ci_ids": [ci],
        "requested_start": "2026-04-01T00:00:00Z", "requested_end": "2026-04-02T00:00:00Z"});
    let created = server.call(Method::POST, "/v1/atlas/itsm/changes", Some(key), Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.data()["id"].as_str().unwrap().to_owned();
    for status in ["submitted", "scheduled", "implementing"] {
        let moved = server.call(Method::PATCH, &format!("/v1/atlas/itsm/changes/{id}"), Some(key), Some(json!({"status": status}))).await;
        assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    }
    id
}

async fn incident(server: &TestServer, clock: &ManualClock, org: OrgId, title: &str, severity: Severity, ci: &str) -> (String, String) {
    let incidents = Incidents::new(Arc::new(server.wiring().store.clone()), Arc::new(clock.clone()), IncidentsConfig::default());
    let request = CreateIncident {
        title: title.into(),
        severity: Some(severity),
        description: None,
        source: Some("prometheus".into()),
        ci_ids: vec![ci.to_owned()],
        dedup_key: None,
        assignee: None,
    };
    let at = atlas_kernel::Clock::now(clock);
    let journal = |_: &Vec<atlas_incidents::Applied>| JournalEntry::by_system(org, "incidents.create", "test".into(), "test".into(), at);
    let applied = incidents.create(org, "test", request, &journal).await.expect("creating an incident");
    let created = applied.incident.expect("a created incident");
    (created.id.to_string(), created.reference.to_string())
}

async fn analyse(server: &TestServer, key: &str, incident: &str) -> Value {
    let answer = server.call(Method::POST, "/v1/atlas/rca", Some(key), Some(json!({"incident_id": incident}))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.data().clone()
}

async fn scenario(server: TestServer, clock: ManualClock) {
    let (org, key) = server.create_organization("Ops").await;
    let org: OrgId = org.parse().expect("an organization id");
    let app = item(&server, &key, "checkout").await;
    let api = item(&server, &key, "payments-api").await;
    let db = item(&server, &key, "payments-db").await;
    let unrelated = item(&server, &key, "wiki").await;
    depends(&server, &key, &app, &api).await;
    depends(&server, &key, &api, &db).await;

    // T-3h: an earlier P2 incident on the checkout; T-2h and T-30m: changes on its dependency.
    let (earlier, _) = incident(&server, &clock, org, "Checkout slow", Severity::P2, &app).await;
    clock.set(TRIGGER - Duration::hours(2));
    let far = implement(&server, &key, "Payments API v1.9", &api, "medium").await;
    clock.set(TRIGGER - Duration::minutes(45));
    implement(&server, &key, "Wiki upgrade", &unrelated, "critical").await;
    clock.set(TRIGGER - Duration::minutes(30));
    let near = implement(&server, &key, "Payments API v2.0", &api, "medium").await;
    clock.set(TRIGGER);
    let (id, reference) = incident(&server, &clock, org, "Checkout errors", Severity::P1, &app).await;
    clock.set(TRIGGER + Duration::minutes(10));
    let after = implement(&server, &key, "Hotfix", &api, "critical").await;

    let analysis = analyse(&server, &key, &reference).await;
    let ranked: Vec<&str> = analysis["candidates"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ranked.first(), Some(&near.as_str()), "the change 30 minutes before ranks first: {analysis:#}");
    let position = |id: &str| ranked.iter().position(|r| *r == id);
    assert!(position(&near) < position(&far) && position(&far).is_some(), "30 minutes before ranks above 2 hours before");
    assert!(position(&earlier).is_some(), "the earlier incident on the same item is a candidate");
    assert_eq!(position(&after), None, "nothing after the trigger is ever listed");
    assert_eq!(ranked.len(), 3, "the unrelated item's change is no candidate: {ranked:?}");
    let first = &analysis["candidates"][0];
    assert_eq!(first["distance"], 1);
    assert_eq!(first["path"], json!([app, api]));
    assert_eq!(first["seconds_before_trigger"], 1800);
    let half_an_hour = (0.5_f64.sqrt() * 10_000.0).round() / 10_000.0;
    assert_eq!(first["components"]["time_proximity"], half_an_hour, "0.5 ^ (1800 s / 3600 s), to 4 decimals");
    assert_eq!(first["components"]["graph_distance"], 0.5);
    assert_eq!(first["components"]["risk"], 0.5);

    let again = analyse(&server, &key, &id).await;
    assert_eq!(
        serde_json::to_vec(&again).unwrap(),
        serde_json::to_vec(&analysis).unwrap(),
        "the same input, by id or reference, answers the same bytes"
    );
    let missing = server.call(Method::POST, "/v1/atlas/rca", Some(&key), Some(json!({"incident_id": "INC-99999999"}))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let other = server.organization("Elsewhere").await;
    let theirs = server.call(Method::POST, "/v1/atlas/rca", Some(&other), Some(json!({"incident_id": reference}))).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "another organization's incident is never analysed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rca_ranks_a_recent_change_on_a_dependency_first_on_sqlite() {
    let clock = ManualClock::new(TRIGGER - Duration::hours(3));
    let server =
        TestServer::start(Backend::Sqlite, Options { clock: Some(clock.clone()), ..Options::default() }).await.expect("SQLite starts");
    scenario(server, clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rca_ranks_a_recent_change_on_a_dependency_first_on_postgres() {
    let clock = ManualClock::new(TRIGGER - Duration::hours(3));
    let Some(server) = TestServer::start(Backend::Postgres, Options { clock: Some(clock.clone()), ..Options::default() }).await else {
        return;
    };
    scenario(server, clock).await;
}
