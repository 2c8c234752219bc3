//! Runbooks end to end, on SQLite and PostgreSQL, against a local receiver: a dry run answers
//! the plan (templates resolved from the incident, secrets redacted) and a `plan_hash` and
//! performs nothing, while a real run given that hash calls the receiver (with the real
//! secret) and records its steps as run (secrets redacted); a run whose plan went stale is 409
//! PLAN_STALE and calls nothing; the SSRF guard refuses a private target when private targets
//! are not allowed.

use atlas_e2e::receiver::Receiver;
use atlas_e2e::{Backend, Options, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

macro_rules! on_both_backends {
    ($name:ident, $allow_private:expr, |$server:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn scenario($server: TestServer) $body

            fn options() -> Options {
                let mut options = Options::default();
                options.env.insert("ATLAS_WEBHOOKS_ALLOW_PRIVATE".into(), $allow_private.into());
                options
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                scenario(TestServer::start(Backend::Sqlite, options()).await.unwrap()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(server) = TestServer::start(Backend::Postgres, options()).await else { return };
                scenario(server).await;
            }
        }
    };
}

const SECRET: &str = "tok-9f8e7d6c5b4a";

fn runbook(url: &str, pool: &str) -> Value {
    json!({
        "name": "Scale the connection pool",
        "description": "When the pool is exhausted",
        "parameters": [
            {"name": "token", "secret": true, "required": true},
            {"name": "pool", "default": pool}
        ],
        "steps": [
            {"kind": "manual", "title": "Tell #ops you are on it"},
            {"kind": "http", "title": "Scale", "method": "POST", "url": url,
             "body": {"incident": "{{incident.reference}}", "size": "{{pool}}", "auth": "Bearer {{token}}"}}
        ]
    })
}

async fn setup(server: &TestServer, receiver: &Receiver) -> (String, String) {
    let incident = server
        .call(Method::POST, "/v1/atlas/incidents", Some(&server.admin_key), Some(json!({"title": "Pool exhausted", "severity": "P1"})))
        .await;
    assert_eq!(incident.status, StatusCode::CREATED, "{:?}", incident.body);
    let created = server.call(Method::POST, "/v1/atlas/runbooks", Some(&server.admin_key), Some(runbook(&receiver.url(), "200"))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.data()["version"], 1);
    (created.data()["id"].as_str().unwrap().to_owned(), incident.data()["reference"].as_str().unwrap().to_owned())
}

async fn execute(server: &TestServer, id: &str, body: Value) -> atlas_e2e::Answer {
    server.call(Method::POST, &format!("/v1/atlas/runbooks/{id}/execute"), Some(&server.admin_key), Some(body)).await
}

async fn executions(server: &TestServer, id: &str) -> Vec<Value> {
    let answer = server.call(Method::GET, &format!("/v1/atlas/runbooks/{id}/executions"), Some(&server.admin_key), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.data()["executions"].as_array().unwrap().clone()
}

async fn finished(server: &TestServer, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let all = executions(server, id).await;
        if let Some(done) = all.iter().find(|e| e["status"] == "succeeded" || e["status"] == "failed") {
            return done.clone();
        }
        assert!(std::time::Instant::now() < deadline, "the execution never finished: {all:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

on_both_backends!(a_dry_run_performs_nothing_and_a_real_run_calls_the_receiver, "true", |server| {
    let receiver = Receiver::start().await;
    let (id, reference) = setup(&server, &receiver).await;
    let dry = execute(&server, &id, json!({"incident_id": reference, "dry_run": true, "parameters": {"token": SECRET}})).await;
    assert_eq!(dry.status, StatusCode::OK, "{:?}", dry.body);
    let plan = dry.data().clone();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["runbook_version"], 1);
    assert_eq!(plan["steps"][0]["kind"], "manual");
    let request = &plan["steps"][1]["request"];
    assert_eq!(request["method"], "POST");
    assert_eq!(request["body"]["incident"], reference.as_str(), "{{incident.reference}} resolved");
    assert_eq!(request["body"]["size"], "200", "a parameter's default");
    assert_eq!(request["body"]["auth"], "Bearer [redacted]", "secrets never shown");
    assert!(!dry.body.to_string().contains(SECRET));
    let plan_hash = plan["plan_hash"].as_str().unwrap().to_owned();
    assert_eq!(plan_hash.len(), 64);
    assert!(executions(&server, &id).await.is_empty(), "a dry run queues nothing");

    let real =
        execute(&server, &id, json!({"incident_id": reference, "dry_run": false, "plan_hash": plan_hash, "parameters": {"token": SECRET}}))
            .await;
    assert_eq!(real.status, StatusCode::ACCEPTED, "{:?}", real.body);
    assert_eq!(real.data()["status"], "queued");
    let got = receiver.wait_for(1, Duration::from_secs(15)).await;
    let done = finished(&server, &id).await;
    assert_eq!(receiver.received().len(), 1, "only the real run called the receiver (the dry run performed nothing)");
    let sent = got[0].json();
    assert_eq!(sent["incident"], reference.as_str());
    assert_eq!(sent["auth"], format!("Bearer {SECRET}"), "the receiver gets the real secret");
    assert_eq!(got[0].header("content-type"), "application/json");
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["plan_hash"], plan_hash.as_str());
    assert_eq!(done["runbook_version"], 1);
    assert_eq!(done["steps"][0]["status"], "manual");
    assert_eq!(done["steps"][1]["status"], "succeeded");
    assert_eq!(done["steps"][1]["response_status"], 200);
    assert!(!done.to_string().contains(SECRET), "the execution record never holds the secret: {done}");
});

on_both_backends!(a_stale_plan_is_refused_and_calls_nothing, "true", |server| {
    let receiver = Receiver::start().await;
    let (id, reference) = setup(&server, &receiver).await;
    let dry = execute(&server, &id, json!({"incident_id": reference, "dry_run": true, "parameters": {"token": SECRET}})).await;
    let plan_hash = dry.data()["plan_hash"].as_str().unwrap().to_owned();

    // Another parameter value: another plan.
    let other =
        execute(&server, &id, json!({"incident_id": reference, "plan_hash": plan_hash, "parameters": {"token": SECRET, "pool": "400"}}))
            .await;
    assert_eq!((other.status, other.code()), (StatusCode::CONFLICT, "PLAN_STALE"), "{:?}", other.body);

    // The runbook changed since the dry run.
    let replaced =
        server.call(Method::PUT, &format!("/v1/atlas/runbooks/{id}"), Some(&server.admin_key), Some(runbook(&receiver.url(), "300"))).await;
    assert_eq!(replaced.status, StatusCode::OK, "{:?}", replaced.body);
    assert_eq!(replaced.data()["version"], 2);
    let stale =
        execute(&server, &id, json!({"incident_id": reference, "dry_run": false, "plan_hash": plan_hash, "parameters": {"token": SECRET}}))
            .await;
    assert_eq!((stale.status, stale.code()), (StatusCode::CONFLICT, "PLAN_STALE"), "{:?}", stale.body);
    assert_eq!(stale.body["error"]["details"]["expected_plan_hash"], plan_hash.as_str());
    assert!(executions(&server, &id).await.is_empty(), "a stale run queues nothing");

    // The new plan runs.
    let fresh = execute(&server, &id, json!({"incident_id": reference, "dry_run": true, "parameters": {"token": SECRET}})).await;
    let new_hash = fresh.data()["plan_hash"].as_str().unwrap().to_owned();
    assert_ne!(new_hash, plan_hash);
    let real = execute(&server, &id, json!({"incident_id": reference, "plan_hash": new_hash, "parameters": {"token": SECRET}})).await;
    assert_eq!(real.status, StatusCode::ACCEPTED, "{:?}", real.body);
    let done = finished(&server, &id).await;
    assert_eq!(done["runbook_version"], 2);
    assert_eq!(receiver.received().len(), 1, "the stale attempts called nothing");
    assert_eq!(receiver.received()[0].json()["size"], "300");
});

on_both_backends!(the_ssrf_guard_refuses_a_private_target, "false", |server| {
    let receiver = Receiver::start().await;
    let (id, reference) = setup(&server, &receiver).await;
    let real = execute(&server, &id, json!({"incident_id": reference, "parameters": {"token": SECRET}})).await;
    assert_eq!(real.status, StatusCode::ACCEPTED, "{:?}", real.body);
    let done = finished(&server, &id).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["steps"][1]["status"], "failed");
    assert!(done["steps"][1]["error"].as_str().unwrap().contains("SSRF"), "{done}");
    assert!(receiver.received().is_empty(), "a refused target is never called");
});
