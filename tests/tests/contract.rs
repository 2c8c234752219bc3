//! The API contract as a user meets it: the reference page renders every operation in a real
//! headless Chromium (Redoc served by Atlas itself, no network beyond the server), and the
//! generated Postman collection's read-only requests pass when `newman` runs them against a
//! live server with the generated environment. Both tools are external programs: when one is
//! absent the test says so loudly and passes, unless `ATLAS_REQUIRE_SERVICES=1` (CI), where it
//! fails.

use atlas_e2e::{on_both_backends, Options, TestServer};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn required() -> bool {
    std::env::var("ATLAS_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn skip(what: &str) {
    assert!(!required(), "{what} is required (ATLAS_REQUIRE_SERVICES=1) but was not found");
    eprintln!("\n==================== SKIPPED: {what} not found ====================\n");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("atlas-contract-{name}-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// The first of `candidates` that exists, or the program `name` on the PATH.
fn program(env: &str, candidates: &[PathBuf], name: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Some(PathBuf::from(path));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .or_else(|| std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file())))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_page_renders_every_operation_in_headless_chromium() {
    let Some(chromium) = program("ATLAS_CHROMIUM", &[], "chromium") else {
        return skip("chromium (apt-get install chromium)");
    };
    let server = TestServer::sqlite().await;
    let doc = server.call(Method::GET, "/v1/atlas/openapi.json", None, None).await.body;
    let profile = scratch("chromium");
    let url = format!("{}/v1/atlas/docs", server.base);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                &format!("--user-data-dir={}", profile.display()),
                "--virtual-time-budget=20000",
                "--dump-dom",
                &url,
            ])
            .output()
            .expect("chromium runs")
    })
    .await
    .unwrap();
    assert!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(dom.contains("Atlas API"), "Redoc rendered the document's title; the DOM was:\n{}", &dom[..dom.len().min(2000)]);

    // Every operation's summary is rendered (Redoc escapes text the way HTML does).
    let mut missing = Vec::new();
    let mut operations = 0;
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            operations += 1;
            let summary = op["summary"].as_str().unwrap();
            let escaped = summary.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            if !dom.contains(&escaped) {
                missing.push(summary.to_owned());
            }
        }
    }
    assert!(operations > 30);
    assert!(missing.is_empty(), "operations not rendered by the reference page: {missing:?}");
    // Rendered by Redoc (its operation markup), from assets Atlas served itself.
    assert!(dom.contains("operation/") || dom.contains("data-section-id"), "Redoc's operation sections are present");
    server.stop().await;
}

/// Whether a request needs a value filled in first: a path variable, or a required (enabled)
/// query parameter.
fn needs_input(request: &Value) -> bool {
    let url = &request["url"];
    url["variable"].as_array().is_some_and(|v| !v.is_empty())
        || url["query"].as_array().is_some_and(|q| q.iter().any(|p| p["disabled"] != true))
}

/// The read-only requests of a collection: `GET`s that need no value filled in, each with a
/// test that it answered 2xx.
fn read_only(collection: &Value) -> (Value, usize) {
    let mut collection = collection.clone();
    let mut count = 0;
    for folder in collection["item"].as_array_mut().unwrap() {
        let items: Vec<Value> = folder["item"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| item["request"]["method"] == "GET" && !needs_input(&item["request"]))
            .cloned()
            .map(|mut item| {
                item["event"] = json!([{"listen": "test", "script": {"type": "text/javascript", "exec": [
                    "pm.test('answers 2xx', function () { pm.expect(pm.response.code).to.be.within(200, 299); });"
                ]}}]);
                item
            })
            .collect();
        count += items.len();
        folder["item"] = Value::Array(items);
    }
    (collection, count)
}

on_both_backends!(the_postman_collection_read_only_requests_pass_in_newman, Options::default(), |server| {
    let local = workspace().join("target/ci/node_modules/.bin/newman");
    let Some(newman) = program("ATLAS_NEWMAN", &[local], "newman") else {
        skip("newman (npm install newman; .ci/run installs it under target/ci)");
        server.stop().await;
        return;
    };
    let collection = server.call(Method::GET, "/v1/atlas/postman/collection.json", None, None).await;
    assert_eq!(collection.status.as_u16(), 200);
    let collection = collection.body;
    assert_eq!(collection["info"]["schema"], "https://schema.getpostman.com/json/collection/v2.1.0/collection.json");
    assert_eq!(collection["auth"]["bearer"][0]["value"], "{{apiKey}}");
    let folders: Vec<&str> = collection["item"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    for tag in ["keys", "runs", "webhooks", "messaging", "system"] {
        assert!(folders.contains(&tag), "a folder per tag: {tag} in {folders:?}");
    }
    let create_key = collection["item"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["item"].as_array().unwrap())
        .find(|i| i["request"]["method"] == "POST" && i["request"]["url"]["raw"] == "{{baseUrl}}/v1/atlas/keys")
        .expect("the key creation request");
    assert!(create_key["request"]["header"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["key"] == "Idempotency-Key" && h["value"] == "{{idempotencyKey}}"));
    let sample: Value = serde_json::from_str(create_key["request"]["body"]["raw"].as_str().unwrap()).unwrap();
    assert!(sample["scopes"].is_array(), "the sample body is the documented example");
    let pre_request = collection["event"].as_array().unwrap().iter().find(|e| e["listen"] == "prerequest").unwrap();
    let script = pre_request["script"]["exec"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect::<Vec<_>>().join("\n");
    assert!(script.contains("pm.variables.set('idempotencyKey'"), "a blank idempotencyKey is filled: {script}");
    let send = collection["item"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["item"].as_array().unwrap())
        .find(|i| i["request"]["url"]["raw"] == "{{baseUrl}}/v1/atlas/messages")
        .expect("the send request");
    let send_body: Value = serde_json::from_str(send["request"]["body"]["raw"].as_str().unwrap()).unwrap();
    assert_eq!(send_body["phone_number"], "+14155552671", "seed 000's body");
    assert!(send_body.get("idempotency_key").is_none(), "the key travels in the header only");

    let mut environment = server.call(Method::GET, "/v1/atlas/postman/environment.json", None, None).await.body;
    let base = environment["values"].as_array().unwrap().iter().find(|v| v["key"] == "baseUrl").unwrap()["value"].clone();
    assert_eq!(base, server.base, "the environment points at the server that served it");
    for value in environment["values"].as_array_mut().unwrap() {
        if value["key"] == "apiKey" {
            value["value"] = json!(server.admin_key);
        }
    }

    let (read_only, count) = read_only(&collection);
    assert!(count >= 10, "read-only requests: {count}");
    let dir = scratch("newman");
    std::fs::write(dir.join("collection.json"), read_only.to_string()).unwrap();
    std::fs::write(dir.join("environment.json"), environment.to_string()).unwrap();
    let report = dir.join("report.json");
    let args: Vec<String> = vec![
        "run".into(),
        dir.join("collection.json").display().to_string(),
        "--environment".into(),
        dir.join("environment.json").display().to_string(),
        "--reporters".into(),
        "cli,json".into(),
        "--reporter-json-export".into(),
        report.display().to_string(),
        "--disable-unicode".into(),
    ];
    let output = tokio::task::spawn_blocking(move || Command::new(newman).args(&args).output().expect("newman runs")).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "newman failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let stats = &report["run"]["stats"];
    assert_eq!(stats["requests"]["total"], count, "every read-only request ran");
    assert_eq!(stats["assertions"]["failed"], 0, "{stdout}");
    assert!(stats["assertions"]["total"].as_u64().unwrap() >= count as u64 * 2, "each request checked 2xx and no server error");
    server.stop().await;
});
