//! ITSM end to end, on SQLite and PostgreSQL: change paths per type with a quorum of two for
//! normal changes, approvals that never change once recorded nor after the change leaves
//! `submitted`, every illegal move refused with the allowed list, a blackout conflict found two
//! hops away in the CMDB, service requests from the catalog, idempotent replays and runs.

use atlas_e2e::{on_both_backends, Options, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const WRITE: &[&str] = &["atlas.changes.read", "atlas.changes.write", "atlas.cmdb.read", "atlas.cmdb.write", "atlas.runs.read"];

fn quorum_of_two() -> Options {
    let mut options = Options::default();
    options.env.insert("ATLAS_CHANGE_QUORUM_NORMAL".into(), "2".into());
    options
}

async fn item(server: &TestServer, key: &str, name: &str) -> String {
    let answer = server
        .call(Method::POST, "/v1/atlas/cmdb/items", Some(key), Some(json!({"name": name, "class": "service", "environment": "production"})))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    answer.data()["id"].as_str().unwrap().to_owned()
}

async fn depends(server: &TestServer, key: &str, source: &str, target: &str) {
    let answer = server
        .call(
            Method::POST,
            "/v1/atlas/cmdb/relationships",
            Some(key),
            Some(json!({"source_id": source, "target_id": target, "type": "depends_on"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
}

/// Seed 002's change body, of `kind`, on `ci_ids`, in the window `start`..`end`.
async fn change(server: &TestServer, key: &str, kind: &str, ci_ids: &[&str], start: &str, end: &str) -> Value {
    let body = json!({
        "title": "Deploy v2.4.1", "type": kind, "risk_level": "medium",
        "requested_start": start, "requested_end": end,
        "implementation_plan": "...", "rollback_plan": "...", "requested_by": "ops@example.com",
        "ci_ids": ci_ids,
    });
    let answer = server.call(Method::POST, "/v1/atlas/itsm/changes", Some(key), Some(body)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    assert_eq!(answer.data()["status"], "draft");
    answer.data().clone()
}

async fn patch(server: &TestServer, key: &str, id: &str, status: &str) -> atlas_e2e::Answer {
    server.call(Method::PATCH, &format!("/v1/atlas/itsm/changes/{id}"), Some(key), Some(json!({"status": status}))).await
}

async fn moved(server: &TestServer, key: &str, id: &str, status: &str) -> Value {
    let answer = patch(server, key, id, status).await;
    assert_eq!(answer.status, StatusCode::OK, "{id} → {status}: {:?}", answer.body);
    answer.data().clone()
}

async fn refused(server: &TestServer, key: &str, id: &str, status: &str, allowed: Value) {
    let answer = patch(server, key, id, status).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{id} → {status}: {:?}", answer.body);
    assert_eq!(answer.code(), "INVALID_TRANSITION");
    assert_eq!(answer.body["error"]["details"]["allowed"], allowed, "→ {status}");
}

async fn decide(server: &TestServer, key: &str, id: &str, decision: &str) -> atlas_e2e::Answer {
    server
        .call(
            Method::POST,
            &format!("/v1/atlas/itsm/changes/{id}/approvals"),
            Some(key),
            Some(json!({"decision": decision, "comment": "looked at it"})),
        )
        .await
}

const START: &str = "2026-04-01T18:00:00Z";
const END: &str = "2026-04-01T22:00:00Z";

on_both_backends!(change_paths_per_type_with_quorum, quorum_of_two(), |server| {
    let (_, alice) = server.mint(WRITE).await;
    let (_, bob) = server.mint(WRITE).await;
    let (_, carol) = server.mint(WRITE).await;
    let app = item(&server, &alice, "app").await;

    // Standard: pre-approved, submitting approves it.
    let standard = change(&server, &alice, "standard", &[&app], START, END).await;
    let id = standard["id"].as_str().unwrap();
    assert_eq!(standard["quorum"], 0);
    refused(&server, &alice, id, "implementing", json!(["submitted"])).await;
    let submitted = moved(&server, &alice, id, "submitted").await;
    assert_eq!(submitted["status"], "approved", "a standard change is approved on submission");
    assert!(submitted["submitted_at"].is_string() && submitted["approved_at"].is_string());
    for status in ["scheduled", "implementing", "implemented", "closed"] {
        assert_eq!(moved(&server, &alice, id, status).await["status"], status);
    }
    refused(&server, &alice, id, "submitted", json!([])).await;

    // Normal: two approvals, each recorded once, none after the change leaves submitted.
    let normal = change(&server, &alice, "Normal", &[&app], START, END).await;
    let id = normal["id"].as_str().unwrap();
    assert_eq!(normal["quorum"], 2);
    let early = decide(&server, &bob, id, "approve").await;
    assert_eq!(early.status, StatusCode::CONFLICT, "no decision on a draft: {:?}", early.body);
    moved(&server, &alice, id, "submitted").await;
    refused(&server, &alice, id, "approved", json!([])).await;
    let first = server
        .send(
            Method::POST,
            &format!("/v1/atlas/itsm/changes/{id}/approvals"),
            Some(&bob),
            Some(json!({"decision": "approve", "comment": "looked at it"})),
            &[("idempotency-key", "bob-approves")],
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(first.data()["change"]["status"], "submitted", "one approval of two");
    let replay = server
        .send(
            Method::POST,
            &format!("/v1/atlas/itsm/changes/{id}/approvals"),
            Some(&bob),
            Some(json!({"decision": "approve", "comment": "looked at it"})),
            &[("idempotency-key", "bob-approves")],
        )
        .await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, first.body, "the replay is the recorded answer, byte for byte");
    let changed_mind = decide(&server, &bob, id, "reject").await;
    assert_eq!(changed_mind.status, StatusCode::CONFLICT, "a decision never changes: {:?}", changed_mind.body);
    let second = decide(&server, &carol, id, "approve").await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.data()["change"]["status"], "approved", "the quorum is reached");
    let late = decide(&server, &alice, id, "reject").await;
    assert_eq!(late.status, StatusCode::CONFLICT, "no decision after the change left submitted");
    assert_eq!(late.body["error"]["details"]["status"], "approved");
    let read = server.call(Method::GET, &format!("/v1/atlas/itsm/changes/{id}"), Some(&alice), None).await;
    assert_eq!(read.data()["approvals"].as_array().unwrap().len(), 2, "exactly the two recorded decisions");
    assert_eq!(read.data()["status"], "approved");
    refused(&server, &alice, id, "implementing", json!(["scheduled"])).await;
    for status in ["scheduled", "implementing", "failed", "closed"] {
        assert_eq!(moved(&server, &alice, id, status).await["status"], status);
    }

    // Emergency: quorum 1 here; one rejection rejects.
    let emergency = change(&server, &alice, "emergency", &[&app], START, END).await;
    let id = emergency["id"].as_str().unwrap();
    assert_eq!(emergency["quorum"], 1);
    moved(&server, &alice, id, "submitted").await;
    let rejected = decide(&server, &bob, id, "reject").await;
    assert_eq!(rejected.data()["change"]["status"], "rejected");
    refused(&server, &alice, id, "scheduled", json!(["closed"])).await;
    moved(&server, &alice, id, "closed").await;

    let listed = server.call(Method::GET, "/v1/atlas/itsm/changes?status=closed", Some(&alice), None).await;
    assert_eq!(listed.data()["changes"].as_array().unwrap().len(), 3);
    let runs = server.call(Method::GET, "/v1/atlas/runs?operation=changes.approve", Some(&alice), None).await;
    let runs = runs.data()["runs"].as_array().unwrap().clone();
    assert_eq!(runs.iter().filter(|r| r["status"] == "succeeded").count(), 3, "every recorded decision wrote a run (the replay none)");
    assert!(runs.iter().any(|r| r["status"] == "failed"), "a refused decision wrote a failed run");
});

on_both_backends!(a_blackout_two_hops_away_stops_scheduling, Options::default(), |server| {
    let (_, key) = server.mint(WRITE).await;
    let db = item(&server, &key, "db").await;
    let api = item(&server, &key, "api").await;
    let web = item(&server, &key, "web").await;
    let other = item(&server, &key, "unrelated").await;
    depends(&server, &key, &api, &db).await;
    depends(&server, &key, &web, &api).await;
    let blackout = server
        .call(
            Method::POST,
            "/v1/atlas/itsm/blackouts",
            Some(&key),
            Some(json!({"ci_ids": [web], "start": "2026-04-01T20:00:00Z", "end": "2026-04-02T06:00:00Z", "reason": "quarter close"})),
        )
        .await;
    assert_eq!(blackout.status, StatusCode::CREATED, "{:?}", blackout.body);
    let blackout_id = blackout.data()["id"].as_str().unwrap().to_owned();
    let bad = server
        .call(
            Method::POST,
            "/v1/atlas/itsm/blackouts",
            Some(&key),
            Some(json!({"ci_ids": [web], "start": END, "end": START, "reason": "x"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "a blackout ends after it starts");

    let on_db = change(&server, &key, "standard", &[&db], START, END).await;
    let id = on_db["id"].as_str().unwrap();
    moved(&server, &key, id, "submitted").await;
    let conflict = patch(&server, &key, id, "scheduled").await;
    assert_eq!(conflict.status, StatusCode::CONFLICT, "{:?}", conflict.body);
    assert_eq!(conflict.code(), "CHANGE_CONFLICT");
    let violations = conflict.body["error"]["details"]["violations"].as_array().unwrap().clone();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0]["blackout_id"], blackout_id.as_str());
    assert_eq!(violations[0]["ci_id"], web.as_str(), "the blacked-out item two hops downstream");
    assert_eq!(violations[0]["depth"], 2);
    assert_eq!(violations[0]["path"], json!([db, api, web]), "the path from the changed item to it");
    let still = server.call(Method::GET, &format!("/v1/atlas/itsm/changes/{id}"), Some(&key), None).await;
    assert_eq!(still.data()["status"], "approved", "the refused move changed nothing");

    // Outside the blackout's window, or on an item outside its blast radius: no conflict.
    let earlier = change(&server, &key, "standard", &[&db], "2026-04-01T10:00:00Z", "2026-04-01T20:00:00Z").await;
    let id = earlier["id"].as_str().unwrap();
    moved(&server, &key, id, "submitted").await;
    assert_eq!(moved(&server, &key, id, "scheduled").await["status"], "scheduled", "a window ending as the blackout starts is free");
    let unrelated = change(&server, &key, "standard", &[&other], START, END).await;
    let id = unrelated["id"].as_str().unwrap();
    moved(&server, &key, id, "submitted").await;
    assert_eq!(moved(&server, &key, id, "scheduled").await["status"], "scheduled");
    let no_window = server
        .call(Method::POST, "/v1/atlas/itsm/changes", Some(&key), Some(json!({"title": "t", "type": "standard", "ci_ids": [db]})))
        .await;
    let id = no_window.data()["id"].as_str().unwrap().to_owned();
    moved(&server, &key, &id, "submitted").await;
    let unscheduled = patch(&server, &key, &id, "scheduled").await;
    assert_eq!(unscheduled.status, StatusCode::BAD_REQUEST, "scheduling needs a window");
    let listed = server.call(Method::GET, "/v1/atlas/itsm/blackouts", Some(&key), None).await;
    assert_eq!(listed.data()["blackouts"].as_array().unwrap().len(), 1);
});

on_both_backends!(service_requests_from_the_catalog, Options::default(), |server| {
    let (_, key) = server.mint(&["atlas.requests.read", "atlas.requests.write"]).await;
    let catalog =
        |name: &str, requires_approval: bool| json!({"name": name, "description": "from IT", "requires_approval": requires_approval});
    let laptop = server.call(Method::POST, "/v1/atlas/itsm/catalog", Some(&key), Some(catalog("Laptop", true))).await;
    assert_eq!(laptop.status, StatusCode::CREATED, "{:?}", laptop.body);
    let mouse = server.call(Method::POST, "/v1/atlas/itsm/catalog", Some(&key), Some(catalog("Mouse", false))).await;
    let (laptop, mouse) = (laptop.data()["id"].as_str().unwrap().to_owned(), mouse.data()["id"].as_str().unwrap().to_owned());

    let request = |item: &str| json!({"catalog_item_id": item, "requested_by": "user@example.com"});
    let pending = server.call(Method::POST, "/v1/atlas/itsm/requests", Some(&key), Some(request(&laptop))).await;
    assert_eq!(pending.status, StatusCode::CREATED, "{:?}", pending.body);
    assert_eq!(pending.data()["status"], "pending_approval");
    let free = server.call(Method::POST, "/v1/atlas/itsm/requests", Some(&key), Some(request(&mouse))).await;
    assert_eq!(free.data()["status"], "approved", "an item that needs no approval starts approved");

    let id = pending.data()["id"].as_str().unwrap();
    let path = format!("/v1/atlas/itsm/requests/{id}");
    let early = server.call(Method::PATCH, &path, Some(&key), Some(json!({"status": "fulfilled"}))).await;
    assert_eq!(early.status, StatusCode::BAD_REQUEST);
    assert_eq!(early.body["error"]["details"]["allowed"], json!(["approved", "rejected"]));
    let listed = server.call(Method::GET, "/v1/atlas/itsm/requests?status=pending_approval", Some(&key), None).await;
    assert_eq!(listed.data()["requests"].as_array().unwrap().len(), 1);
    let approved = server.call(Method::PATCH, &path, Some(&key), Some(json!({"status": "approved", "comment": "ok"}))).await;
    assert_eq!(approved.data()["status"], "approved");
    assert!(approved.data()["decided_by"].as_str().unwrap().starts_with("key_"));
    let fulfilled = server.call(Method::PATCH, &path, Some(&key), Some(json!({"status": "fulfilled"}))).await;
    assert_eq!(fulfilled.data()["status"], "fulfilled");
    let again = server.call(Method::PATCH, &path, Some(&key), Some(json!({"status": "approved"}))).await;
    assert_eq!(again.body["error"]["details"]["allowed"], json!([]), "fulfilled is final");

    let free_id = free.data()["id"].as_str().unwrap();
    let rejected =
        server.call(Method::PATCH, &format!("/v1/atlas/itsm/requests/{free_id}"), Some(&key), Some(json!({"status": "rejected"}))).await;
    assert_eq!(rejected.status, StatusCode::BAD_REQUEST, "an approved request is fulfilled, not rejected");
    let unknown = server
        .call(
            Method::POST,
            "/v1/atlas/itsm/requests",
            Some(&key),
            Some(json!({"catalog_item_id": "cat_0190b1a3c4d57e8f9a0b1c2d3e4f5a6b", "requested_by": "u"})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let seed_form = server
        .call(Method::POST, "/v1/atlas/itsm/requests", Some(&key), Some(json!({"catalog_item_id": "item-001", "requested_by": "u"})))
        .await;
    assert_eq!(seed_form.status, StatusCode::BAD_REQUEST, "a malformed id is a field error: {:?}", seed_form.body);
    assert_eq!(seed_form.body["error"]["details"]["fields"][0]["field"], "catalog_item_id");
});

fn receivers_on_loopback() -> Options {
    let mut options = Options::default();
    options.env.insert("ATLAS_WEBHOOKS_ALLOW_PRIVATE".into(), "true".into());
    options
}

on_both_backends!(change_and_request_events_reach_a_subscriber, receivers_on_loopback(), |server| {
    let receiver = atlas_e2e::receiver::Receiver::start().await;
    let subscribed = server
        .call(
            Method::POST,
            "/v1/atlas/webhooks",
            Some(&server.admin_key),
            Some(json!({"url": receiver.url(), "events": ["change.*", "request.*"]})),
        )
        .await;
    assert_eq!(subscribed.status, StatusCode::CREATED, "{:?}", subscribed.body);
    let key = server.admin_key.clone();
    let app = item(&server, &key, "app").await;
    let created = change(&server, &key, "normal", &[&app], START, END).await;
    let id = created["id"].as_str().unwrap();
    moved(&server, &key, id, "submitted").await;
    assert_eq!(decide(&server, &key, id, "approve").await.status, StatusCode::CREATED);
    let laptop =
        server.call(Method::POST, "/v1/atlas/itsm/catalog", Some(&key), Some(json!({"name": "Laptop", "requires_approval": false}))).await;
    let request = json!({"catalog_item_id": laptop.data()["id"], "requested_by": "user@example.com"});
    assert_eq!(server.call(Method::POST, "/v1/atlas/itsm/requests", Some(&key), Some(request)).await.status, StatusCode::CREATED);

    let got = receiver.wait_for(5, std::time::Duration::from_secs(20)).await;
    let mut types: Vec<String> = got.iter().map(|r| r.json()["type"].as_str().unwrap_or_default().to_owned()).collect();
    types.sort();
    assert_eq!(types, vec!["change.approval.recorded", "change.approved", "change.created", "change.submitted", "request.created"]);
    let approved = got.iter().map(|r| r.json()).find(|p| p["type"] == "change.approved").unwrap();
    assert_eq!(approved["data"]["change"]["id"], id);
    assert_eq!(approved["data"]["version"], approved["data"]["change"]["version"], "the event carries the change's version");
});
