//! Runs (the audit log) listed with filters and a cursor that survives inserts; the OpenAPI
//! document covers every route with its scope; health, readiness and metrics answer.

use atlas_e2e::{on_both_backends, Options, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

async fn runs_page(server: &TestServer, query: &str) -> (Vec<Value>, Option<String>) {
    let answer = server.call(Method::GET, &format!("/v1/atlas/runs?{query}"), Some(&server.admin_key), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let runs = answer.data()["runs"].as_array().unwrap().clone();
    (runs, answer.data()["next_cursor"].as_str().map(str::to_owned))
}

on_both_backends!(runs_list_newest_first_with_a_cursor_that_survives_inserts, Options::default(), |server| {
    for i in 0..5 {
        server.mint_with(json!({"name": format!("k{i}"), "scopes": ["atlas.runs.read"]})).await;
    }
    let (first, cursor) = runs_page(&server, "limit=2&operation=keys.create").await;
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|r| r["operation"] == "keys.create" && r["status"] == "succeeded"));
    assert!(first[0]["created_at"].as_str() >= first[1]["created_at"].as_str(), "newest first");
    let cursor = cursor.expect("more pages");

    for i in 0..3 {
        server.mint_with(json!({"name": format!("late{i}"), "scopes": ["atlas.runs.read"]})).await;
    }
    let mut seen: BTreeSet<String> = first.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    let mut next = Some(cursor);
    while let Some(c) = next {
        let (page, more) = runs_page(&server, &format!("limit=2&operation=keys.create&cursor={c}")).await;
        for run in page {
            assert!(seen.insert(run["id"].as_str().unwrap().to_owned()), "no run appears twice");
        }
        next = more;
    }
    assert_eq!(seen.len(), 5, "the cursor walked exactly the runs that existed before it, none skipped");

    let (system, _) = runs_page(&server, "operation=orgs.create").await;
    assert_eq!(system.len(), 1);
    assert_eq!(system[0]["actor"]["type"], "system");
    let (failed, _) = runs_page(&server, "status=failed").await;
    assert!(failed.is_empty());
    let one =
        server.call(Method::GET, &format!("/v1/atlas/runs/{}", first[0]["id"].as_str().unwrap()), Some(&server.admin_key), None).await;
    assert_eq!(one.data()["id"], first[0]["id"]);
    let (future, _) = runs_page(&server, "since=2999-01-01T00:00:00Z").await;
    assert!(future.is_empty(), "the time filter applies");
});

/// Every endpoint the foundation promises, as (method, path, scope).
const PROMISED: &[(&str, &str, Option<&str>)] = &[
    ("post", "/v1/atlas/keys", Some("atlas.keys.write")),
    ("get", "/v1/atlas/keys", Some("atlas.keys.read")),
    ("delete", "/v1/atlas/keys/{id}", Some("atlas.keys.write")),
    ("post", "/v1/atlas/orgs", Some("atlas.platform.admin")),
    ("post", "/v1/atlas/auth/bootstrap", Some("atlas.keys.write")),
    ("post", "/v1/atlas/auth/token", None),
    ("post", "/v1/atlas/auth/refresh", None),
    ("get", "/v1/atlas/runs", Some("atlas.runs.read")),
    ("get", "/v1/atlas/runs/{id}", Some("atlas.runs.read")),
    ("post", "/v1/atlas/messages", Some("atlas.messages.send")),
    ("get", "/v1/atlas/conversations", Some("atlas.conversations.read")),
    ("get", "/v1/atlas/conversations/{id}/messages", Some("atlas.conversations.read")),
    ("get", "/v1/atlas/context/{id}", Some("atlas.conversations.read")),
    ("post", "/v1/atlas/events", Some("atlas.events.write")),
    ("post", "/v1/atlas/actions", Some("atlas.actions.execute")),
    ("post", "/v1/atlas/channels", Some("atlas.channels.write")),
    ("get", "/v1/atlas/channels", Some("atlas.channels.read")),
    ("get", "/v1/atlas/channels/{id}/webhook", None),
    ("post", "/v1/atlas/channels/{id}/webhook", None),
    ("post", "/v1/atlas/templates", Some("atlas.templates.write")),
    ("get", "/v1/atlas/templates", Some("atlas.templates.read")),
    ("get", "/agent/v1/tools/manifest", Some("atlas.actions.execute")),
    ("post", "/agent/v1/tools/send_message", Some("atlas.actions.execute")),
    ("post", "/agent/v1/tools/send_message_to_phone", Some("atlas.actions.execute")),
    ("get", "/agent/v1/tools/messages/{provider_message_id}/status", Some("atlas.actions.execute")),
    ("post", "/v1/atlas/webhooks", Some("atlas.events.write")),
    ("get", "/v1/atlas/webhooks", Some("atlas.events.read")),
    ("get", "/v1/atlas/webhooks/{id}", Some("atlas.events.read")),
    ("patch", "/v1/atlas/webhooks/{id}", Some("atlas.events.write")),
    ("delete", "/v1/atlas/webhooks/{id}", Some("atlas.events.write")),
    ("post", "/v1/atlas/webhooks/{id}/rotate-secret", Some("atlas.events.write")),
    ("post", "/v1/atlas/webhooks/{id}/test", Some("atlas.events.write")),
    ("get", "/v1/atlas/webhooks/{id}/deliveries", Some("atlas.events.read")),
    ("post", "/v1/atlas/webhooks/{id}/deliveries/{delivery_id}/replay", Some("atlas.events.write")),
    ("get", "/v1/atlas/openapi.json", None),
    ("get", "/v1/atlas/docs", None),
    ("get", "/healthz", None),
    ("get", "/readyz", None),
    ("get", "/metrics", None),
    ("get", "/v1/atlas/channels/{id}", Some("atlas.channels.read")),
    ("patch", "/v1/atlas/channels/{id}", Some("atlas.channels.write")),
    ("delete", "/v1/atlas/channels/{id}", Some("atlas.channels.write")),
    ("post", "/v1/atlas/channels/{id}/templates/sync", Some("atlas.templates.write")),
    ("post", "/v1/atlas/conversations/{id}/read", Some("atlas.messages.send")),
    ("post", "/v1/atlas/cmdb/items", Some("atlas.cmdb.write")),
    ("get", "/v1/atlas/cmdb/items", Some("atlas.cmdb.read")),
    ("get", "/v1/atlas/cmdb/items/{id}", Some("atlas.cmdb.read")),
    ("post", "/v1/atlas/cmdb/relationships", Some("atlas.cmdb.write")),
    ("get", "/v1/atlas/cmdb/impact", Some("atlas.cmdb.read")),
    ("post", "/v1/atlas/itsm/changes", Some("atlas.changes.write")),
    ("get", "/v1/atlas/itsm/changes", Some("atlas.changes.read")),
    ("get", "/v1/atlas/itsm/changes/{id}", Some("atlas.changes.read")),
    ("patch", "/v1/atlas/itsm/changes/{id}", Some("atlas.changes.write")),
    ("post", "/v1/atlas/itsm/changes/{id}/approvals", Some("atlas.changes.write")),
    ("post", "/v1/atlas/itsm/blackouts", Some("atlas.changes.write")),
    ("get", "/v1/atlas/itsm/blackouts", Some("atlas.changes.read")),
    ("post", "/v1/atlas/itsm/catalog", Some("atlas.requests.write")),
    ("get", "/v1/atlas/itsm/catalog", Some("atlas.requests.read")),
    ("post", "/v1/atlas/itsm/requests", Some("atlas.requests.write")),
    ("get", "/v1/atlas/itsm/requests", Some("atlas.requests.read")),
    ("get", "/v1/atlas/itsm/requests/{id}", Some("atlas.requests.read")),
    ("patch", "/v1/atlas/itsm/requests/{id}", Some("atlas.requests.write")),
    ("post", "/v1/atlas/rca", Some("atlas.incidents.read")),
    ("post", "/v1/atlas/incidents", Some("atlas.incidents.write")),
    ("get", "/v1/atlas/incidents", Some("atlas.incidents.read")),
    ("get", "/v1/atlas/incidents/metrics", Some("atlas.incidents.read")),
    ("get", "/v1/atlas/incidents/{id}", Some("atlas.incidents.read")),
    ("patch", "/v1/atlas/incidents/{id}", Some("atlas.incidents.write")),
    ("get", "/v1/atlas/incidents/{id}/timeline", Some("atlas.incidents.read")),
    ("post", "/v1/atlas/alerts", Some("atlas.incidents.write")),
    ("post", "/v1/atlas/alerts/alertmanager", Some("atlas.incidents.write")),
    ("post", "/v1/atlas/runbooks", Some("atlas.runbooks.write")),
    ("get", "/v1/atlas/runbooks", Some("atlas.runbooks.read")),
    ("get", "/v1/atlas/runbooks/{id}", Some("atlas.runbooks.read")),
    ("put", "/v1/atlas/runbooks/{id}", Some("atlas.runbooks.write")),
    ("post", "/v1/atlas/runbooks/{id}/execute", Some("atlas.runbooks.execute")),
    ("get", "/v1/atlas/runbooks/{id}/executions", Some("atlas.runbooks.read")),
    ("get", "/v1/atlas/runbooks/{id}/executions/{execution_id}", Some("atlas.runbooks.read")),
    ("get", "/v1/atlas/docs/redoc.standalone.js", None),
    ("get", "/v1/atlas/postman/collection.json", None),
    ("get", "/v1/atlas/postman/environment.json", None),
    ("post", "/v1/atlas/projects", Some("atlas.projects.write")),
    ("get", "/v1/atlas/projects", Some("atlas.projects.read")),
    ("get", "/v1/atlas/projects/{id}", Some("atlas.projects.read")),
    ("patch", "/v1/atlas/projects/{id}", Some("atlas.projects.write")),
    ("delete", "/v1/atlas/projects/{id}", Some("atlas.projects.write")),
    ("post", "/v1/atlas/projects/{id}/tasks", Some("atlas.tasks.write")),
    ("get", "/v1/atlas/projects/{id}/tasks", Some("atlas.tasks.read")),
    ("get", "/v1/atlas/projects/{id}/graph", Some("atlas.tasks.read")),
    ("post", "/v1/atlas/tasks", Some("atlas.tasks.write")),
    ("get", "/v1/atlas/tasks", Some("atlas.tasks.read")),
    ("get", "/v1/atlas/tasks/{id}", Some("atlas.tasks.read")),
    ("patch", "/v1/atlas/tasks/{id}", Some("atlas.tasks.write")),
    ("delete", "/v1/atlas/tasks/{id}", Some("atlas.tasks.write")),
    ("put", "/v1/atlas/tasks/{id}/status", Some("atlas.tasks.write")),
    ("get", "/v1/atlas/tasks/{id}/dependencies", Some("atlas.tasks.read")),
    ("post", "/v1/atlas/tasks/{id}/dependencies", Some("atlas.tasks.write")),
    ("delete", "/v1/atlas/tasks/{id}/dependencies/{depends_on_id}", Some("atlas.tasks.write")),
    ("get", "/v1/atlas/tasks/{id}/notes", Some("atlas.tasks.read")),
    ("post", "/v1/atlas/tasks/{id}/notes", Some("atlas.tasks.write")),
    ("get", "/v1/atlas/tasks/{id}/subtasks", Some("atlas.tasks.read")),
    ("post", "/v1/atlas/knowledge", Some("atlas.knowledge.write")),
    ("get", "/v1/atlas/knowledge", Some("atlas.knowledge.read")),
    ("get", "/v1/atlas/knowledge/{id}", Some("atlas.knowledge.read")),
    ("delete", "/v1/atlas/knowledge/{id}", Some("atlas.knowledge.write")),
    ("get", "/agent/v1/knowledge/search", Some("atlas.knowledge.read")),
    ("post", "/v1/atlas/agents", Some("atlas.agents.write")),
    ("get", "/v1/atlas/agents", Some("atlas.agents.read")),
    ("get", "/v1/atlas/agents/{id}", Some("atlas.agents.read")),
    ("put", "/v1/atlas/agents/{id}", Some("atlas.agents.write")),
    ("patch", "/v1/atlas/agents/{id}", Some("atlas.agents.write")),
    ("delete", "/v1/atlas/agents/{id}", Some("atlas.agents.write")),
    ("post", "/v1/atlas/agents/{id}/execute", Some("atlas.agents.write")),
    ("get", "/v1/atlas/conversations/{id}/drafts", Some("atlas.conversations.read")),
    ("post", "/v1/atlas/conversations/{id}/drafts/{draft_id}/approve", Some("atlas.messages.send")),
    ("post", "/v1/atlas/conversations/{id}/drafts/{draft_id}/reject", Some("atlas.messages.send")),
    ("post", "/v1/atlas/conversations/{id}/release", Some("atlas.messages.send")),
    ("post", "/v1/atlas/sessions", Some("atlas.sessions.write")),
    ("get", "/v1/atlas/sessions", Some("atlas.sessions.read")),
    ("get", "/v1/atlas/sessions/{id}", Some("atlas.sessions.read")),
    ("delete", "/v1/atlas/sessions/{id}", Some("atlas.sessions.write")),
    ("post", "/v1/atlas/sessions/{id}/messages", Some("atlas.sessions.write")),
    ("get", "/v1/atlas/sessions/{id}/messages", Some("atlas.sessions.read")),
    ("get", "/v1/atlas/sessions/{id}/stream", Some("atlas.sessions.read")),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route_with_its_scope() {
    let server = TestServer::sqlite().await;
    let doc = server.call(Method::GET, "/v1/atlas/openapi.json", None, None).await.body;
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path, scope) in PROMISED {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is missing from the OpenAPI document");
        let scopes: Vec<&str> = op["x-required-scopes"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
        assert_eq!(scopes, scope.iter().copied().collect::<Vec<_>>(), "{method} {path}");
    }
    assert!(doc["components"]["schemas"]["CreateKeyBody"]["properties"]["scopes"].is_object(), "request schemas come from the types");

    // Every documented operation is served (never the router's own 404), and nothing else is.
    let documented: usize = doc["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum();
    assert_eq!(documented, PROMISED.len(), "the document has routes this test does not know: add them to PROMISED");
    for (method, path, _) in PROMISED {
        let concrete = path
            .replace("{id}", "key_00000000000000000000000000000000")
            .replace("{provider_message_id}", "wamid.x")
            .replace("{delivery_id}", "dlv_x")
            .replace("{execution_id}", "rbx_x")
            .replace("{draft_id}", "drf_x");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let answer = server.call(method.clone(), &concrete, None, None).await;
        assert_ne!(answer.body["error"]["message"], "no such route", "{method} {path} is documented but not routed");
    }
    let unknown = server.call(Method::GET, "/v1/atlas/nope", None, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "NOT_FOUND");
    let docs = server.http.get(format!("{}/v1/atlas/docs", server.base)).send().await.unwrap();
    assert!(docs.text().await.unwrap().contains("openapi.json"));
    server.stop().await;
}

on_both_backends!(health_readiness_metrics_and_request_ids, Options::default(), |server| {
    let health = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(health.header("x-request-id").unwrap().starts_with("req_"));
    assert_eq!(health.body["request_id"], health.header("x-request-id").unwrap());
    let ready = server.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.data()["checks"]["database"], "ok");
    let kept = server.send(Method::GET, "/healthz", None, None, &[("X-Correlation-Id", "corr-123")]).await;
    assert_eq!(kept.header("x-request-id"), Some("corr-123"));
    let insane = server.send(Method::GET, "/healthz", None, None, &[("X-Request-Id", "bad id with spaces")]).await;
    assert_ne!(insane.header("x-request-id"), Some("bad id with spaces"));
    server.call(Method::GET, "/v1/atlas/keys", Some(&server.admin_key), None).await;
    let metrics = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("atlas_http_requests_total{method=\"GET\",route=\"/v1/atlas/keys\",status=\"200\"}"), "{metrics}");
    assert!(metrics.contains("atlas_http_request_duration_seconds_bucket"));
});
