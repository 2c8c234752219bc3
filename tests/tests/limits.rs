//! Rate limits end to end: the headers on every answer, 429 with `Retry-After` once a bucket
//! is empty, 401s that spend no quota, and one bucket shared by two server processes through
//! Redis.

use atlas_e2e::{Backend, Options, TestServer};
use reqwest::{Method, StatusCode};

fn limited_reads(extra: &[(&str, &str)]) -> Options {
    let mut options = Options::default();
    options.env.insert("ATLAS_RATE_LIMIT_READS".into(), "3/min".into());
    for (k, v) in extra {
        options.env.insert((*k).into(), (*v).into());
    }
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fourth_read_in_a_minute_is_429_with_headers() {
    let server = TestServer::start(Backend::Sqlite, limited_reads(&[])).await.unwrap();
    let unauthenticated = server.call(Method::GET, "/v1/atlas/runs", Some("atlas_sk_nope"), None).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    for remaining in ["2", "1", "0"] {
        let ok = server.call(Method::GET, "/v1/atlas/runs", Some(&server.admin_key), None).await;
        assert_eq!(ok.status, StatusCode::OK, "a 401 spent no quota");
        assert_eq!(ok.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(ok.header("x-ratelimit-remaining"), Some(remaining));
        assert!(ok.header("x-ratelimit-reset").unwrap().parse::<i64>().unwrap() > 1_700_000_000, "reset is Unix seconds");
        assert_eq!(ok.header("ratelimit-policy"), Some("\"reads\";q=3;w=60"));
        assert!(ok.header("ratelimit").unwrap().starts_with(&format!("\"reads\";r={remaining};t=")));
    }
    let limited = server.call(Method::GET, "/v1/atlas/runs", Some(&server.admin_key), None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "RATE_LIMITED");
    assert_eq!(limited.body["error"]["retryable"], true);
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "Retry-After {retry} is about one emission interval");
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    let writes = server
        .call(
            Method::POST,
            "/v1/atlas/keys",
            Some(&server.admin_key),
            Some(serde_json::json!({"name": "w", "scopes": ["atlas.runs.read"]})),
        )
        .await;
    assert_eq!(writes.status, StatusCode::CREATED, "other classes have their own bucket");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_share_one_bucket_through_redis() {
    if !atlas_testkit::services::redis_available().await {
        return;
    }
    let redis = atlas_testkit::services::redis_url();
    let Some(a) = TestServer::start(Backend::Postgres, limited_reads(&[("ATLAS_REDIS_URL", &redis)])).await else { return };
    let mut options = limited_reads(&[("ATLAS_REDIS_URL", &redis)]);
    options.database_url = Some(a.database_url.clone());
    let b = TestServer::start(Backend::Postgres, options).await.unwrap();
    let key = a.admin_key.clone();
    assert_eq!(a.call(Method::GET, "/v1/atlas/runs", Some(&key), None).await.status, StatusCode::OK);
    assert_eq!(b.call(Method::GET, "/v1/atlas/runs", Some(&key), None).await.status, StatusCode::OK);
    assert_eq!(a.call(Method::GET, "/v1/atlas/runs", Some(&key), None).await.status, StatusCode::OK);
    let fourth = b.call(Method::GET, "/v1/atlas/runs", Some(&key), None).await;
    assert_eq!(fourth.status, StatusCode::TOO_MANY_REQUESTS, "the second process saw the first one's spending");
    let ready = b.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.data()["checks"]["redis"], "ok");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_falls_back_to_local_buckets() {
    let server = TestServer::start(Backend::Sqlite, limited_reads(&[("ATLAS_REDIS_URL", "redis://127.0.0.1:1")])).await.unwrap();
    for _ in 0..3 {
        assert_eq!(server.call(Method::GET, "/v1/atlas/runs", Some(&server.admin_key), None).await.status, StatusCode::OK);
    }
    assert_eq!(server.call(Method::GET, "/v1/atlas/runs", Some(&server.admin_key), None).await.status, StatusCode::TOO_MANY_REQUESTS);
    let metrics = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    let line = metrics.lines().find(|l| l.starts_with("atlas_ratelimit_fallbacks_total ")).expect("fallback metric");
    assert!(line.split(' ').nth(1).unwrap().parse::<u64>().unwrap() >= 4, "{line}");
    let ready = server.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "a replica without Redis keeps serving");
    assert_eq!(ready.data()["status"], "degraded");
    assert!(ready.data()["checks"]["redis"].as_str().unwrap().starts_with("degraded"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_organization_override_from_configuration_applies_to_that_organization_only() {
    let first = TestServer::start(Backend::Sqlite, Options::default()).await.unwrap();
    let runs = first.call(Method::GET, "/v1/atlas/runs?operation=orgs.create", Some(&first.admin_key), None).await;
    let org = runs.data()["runs"][0]["resource_id"].as_str().unwrap().to_owned();
    let (key, database_url) = (first.admin_key.clone(), first.database_url.clone());
    first.stop().await;

    let mut options = Options { database_url: Some(database_url), ..Options::default() };
    options.env.insert("ATLAS_RATE_LIMIT_OVERRIDES".into(), format!("{org}:reads=2/min"));
    let server = TestServer::start(Backend::Sqlite, options).await.unwrap();
    let first_read = server.call(Method::GET, "/v1/atlas/runs", Some(&key), None).await;
    assert_eq!(first_read.header("x-ratelimit-limit"), Some("2"), "the override replaced the 300/min default");
    assert_eq!(server.call(Method::GET, "/v1/atlas/runs", Some(&key), None).await.status, StatusCode::OK);
    assert_eq!(server.call(Method::GET, "/v1/atlas/runs", Some(&key), None).await.status, StatusCode::TOO_MANY_REQUESTS);

    let (_, other_key) = server.create_organization("Other").await;
    let default = server.call(Method::GET, "/v1/atlas/runs", Some(&other_key), None).await;
    assert_eq!(default.header("x-ratelimit-limit"), Some("300"), "another organization keeps the default");
    server.stop().await;
}
