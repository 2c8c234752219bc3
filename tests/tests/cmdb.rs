//! The CMDB end to end, on SQLite and PostgreSQL: seed 002's item body, lists by class and
//! environment, typed relationships, and impact across three levels with a cycle (each item
//! once, its depth and a shortest path, never the item asked about, `max_depth`), in both
//! directions; another organization sees none of it.

use atlas_e2e::{on_both_backends, Options, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn item(server: &TestServer, key: &str, name: &str, class: &str, environment: &str) -> String {
    let body = json!({"name": name, "class": class, "environment": environment, "attributes": {"ip": "10.0.0.1", "os": "Ubuntu 22.04"}});
    let answer = server.call(Method::POST, "/v1/atlas/cmdb/items", Some(key), Some(body)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    assert_eq!(answer.data()["attributes"]["os"], "Ubuntu 22.04");
    answer.data()["id"].as_str().unwrap().to_owned()
}

async fn relate(server: &TestServer, key: &str, source: &str, target: &str, kind: &str) -> reqwest::StatusCode {
    let body = json!({"source_id": source, "target_id": target, "type": kind});
    server.call(Method::POST, "/v1/atlas/cmdb/relationships", Some(key), Some(body)).await.status
}

async fn impact(server: &TestServer, key: &str, query: &str) -> Value {
    let answer = server.call(Method::GET, &format!("/v1/atlas/cmdb/impact?{query}"), Some(key), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.data().clone()
}

fn listed(impact: &Value) -> Vec<(String, u64, Vec<String>)> {
    impact["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let path = i["path"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect();
            (i["id"].as_str().unwrap().to_owned(), i["depth"].as_u64().unwrap(), path)
        })
        .collect()
}

on_both_backends!(impact_across_three_levels_with_a_cycle, Options::default(), |server| {
    let (_, key) = server.mint(&["atlas.cmdb.read", "atlas.cmdb.write"]).await;
    let db = item(&server, &key, "db-01", "database", "production").await;
    let api = item(&server, &key, "api-01", "service", "production").await;
    let web = item(&server, &key, "web-01", "server", "production").await;
    let cdn = item(&server, &key, "cdn-01", "service", "staging").await;
    assert_eq!(relate(&server, &key, &api, &db, "depends_on").await, StatusCode::CREATED);
    assert_eq!(relate(&server, &key, &web, &api, "runs_on").await, StatusCode::CREATED);
    assert_eq!(relate(&server, &key, &cdn, &web, "connects_to").await, StatusCode::CREATED);
    // The cycle: the database depends on the web tier, which depends (through the API) on it.
    assert_eq!(relate(&server, &key, &db, &web, "depends_on").await, StatusCode::CREATED);
    assert_eq!(relate(&server, &key, &api, &db, "depends_on").await, StatusCode::CONFLICT, "a relationship exists once");
    assert_eq!(relate(&server, &key, &api, &api, "depends_on").await, StatusCode::BAD_REQUEST, "nothing depends on itself");

    let down = impact(&server, &key, &format!("ci_id={db}")).await;
    assert_eq!(down["direction"], "downstream", "downstream is the default");
    assert_eq!(
        listed(&down),
        vec![
            (api.clone(), 1, vec![db.clone(), api.clone()]),
            (web.clone(), 2, vec![db.clone(), api.clone(), web.clone()]),
            (cdn.clone(), 3, vec![db.clone(), api.clone(), web.clone(), cdn.clone()]),
        ],
        "three levels, each item once, the cycle back to the database never lists it"
    );
    assert_eq!(down["items"][0]["name"], "api-01");

    let capped = impact(&server, &key, &format!("ci_id={db}&max_depth=2&direction=downstream")).await;
    assert_eq!(listed(&capped).len(), 2, "max_depth 2 stops before the third level");

    let up = impact(&server, &key, &format!("ci_id={cdn}&direction=upstream")).await;
    assert_eq!(
        listed(&up),
        vec![
            (web.clone(), 1, vec![cdn.clone(), web.clone()]),
            (api.clone(), 2, vec![cdn.clone(), web.clone(), api.clone()]),
            (db.clone(), 3, vec![cdn.clone(), web.clone(), api.clone(), db.clone()]),
        ],
        "upstream: what the CDN depends on, through the cycle, each once"
    );

    let bad = server.call(Method::GET, &format!("/v1/atlas/cmdb/impact?ci_id={db}&direction=sideways"), Some(&key), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{:?}", bad.body);
    assert_eq!(bad.code(), "VALIDATION_ERROR");
    let unknown = server
        .call(
            Method::POST,
            "/v1/atlas/cmdb/relationships",
            Some(&key),
            Some(json!({"source_id": db, "target_id": "ci_0190b1a3c4d57e8f9a0b1c2d3e4f5a6b", "type": "depends_on"})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{:?}", unknown.body);

    let servers = server.call(Method::GET, "/v1/atlas/cmdb/items?class=server&environment=production", Some(&key), None).await;
    assert_eq!(servers.status, StatusCode::OK);
    let names: Vec<&str> = servers.data()["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["web-01"]);
    let staging = server.call(Method::GET, "/v1/atlas/cmdb/items?environment=staging", Some(&key), None).await;
    assert_eq!(staging.data()["items"].as_array().unwrap().len(), 1);

    // Another organization sees nothing, and a read-only key cannot write.
    let other = server.organization("Other").await;
    let theirs = server.call(Method::GET, &format!("/v1/atlas/cmdb/items/{db}"), Some(&other), None).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "another organization never sees the item");
    let their_impact = server.call(Method::GET, &format!("/v1/atlas/cmdb/impact?ci_id={db}"), Some(&other), None).await;
    assert_eq!(their_impact.status, StatusCode::NOT_FOUND);
    let their_list = server.call(Method::GET, "/v1/atlas/cmdb/items", Some(&other), None).await;
    assert_eq!(their_list.data()["items"].as_array().unwrap().len(), 0);
    let created = server.call(Method::POST, "/v1/atlas/cmdb/items", Some(&key), Some(json!({"name": "probe", "class": "server"}))).await;
    let probe = created.data()["id"].as_str().unwrap();
    let read = server.call(Method::GET, &format!("/v1/atlas/cmdb/items/{probe}"), Some(&key), None).await;
    assert_eq!(read.data(), created.data(), "an item reads back exactly as its creation answered, times included");
    let (_, reader) = server.mint(&["atlas.cmdb.read"]).await;
    let refused = server.call(Method::POST, "/v1/atlas/cmdb/items", Some(&reader), Some(json!({"name": "x", "class": "server"}))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.body["error"]["details"]["missing_scope"], "atlas.cmdb.write");
    let mine = server.call(Method::GET, &format!("/v1/atlas/cmdb/items/{db}"), Some(&reader), None).await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.data()["class"], "database");
});
