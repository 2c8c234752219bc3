//! The hardening of issue 8, end to end through the public API on SQLite and PostgreSQL:
//! bootstrap only with the first start's key, minting within the parent's limits, client
//! addresses behind trusted proxies, idempotency scoped by the concrete path and fingerprinted
//! by what a request means, only committed outcomes stored, secrets replayed verbatim, bounded
//! metric labels, and a first start that prints its key only once it serves.

use atlas_e2e::{on_both_backends, Backend, Options, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn with_env(pairs: &[(&str, &str)]) -> Options {
    Options { env: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(), ..Options::default() }
}

// ---------------------------------------------------------------- 1. bootstrap

on_both_backends!(bootstrap_needs_the_key_printed_at_first_start, Options::default(), |server| {
    let body = json!({"email": "ada@example.com", "password": "correct horse battery"});
    let anonymous = server.call(Method::POST, "/v1/atlas/auth/bootstrap", None, Some(body.clone())).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "an unauthenticated bootstrap is refused: {:?}", anonymous.body);
    let hint = anonymous.body["error"]["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("admin api key"), "the hint names the key printed at first start: {hint}");

    let (_, reader) = server.mint(&["atlas.keys.read"]).await;
    let unscoped = server.call(Method::POST, "/v1/atlas/auth/bootstrap", Some(&reader), Some(body.clone())).await;
    assert_eq!(unscoped.status, StatusCode::FORBIDDEN, "a key without atlas.keys.write cannot bootstrap: {:?}", unscoped.body);

    let boot = server.call(Method::POST, "/v1/atlas/auth/bootstrap", Some(&server.admin_key), Some(body)).await;
    assert_eq!(boot.status, StatusCode::CREATED, "{:?}", boot.body);
    assert_eq!(boot.data()["user"]["email"], "ada@example.com");
    // The user and its key live in the default organization: the new key sees the printed one.
    let new_key = boot.data()["key"]["key"].as_str().unwrap().to_owned();
    let listed = server.call(Method::GET, "/v1/atlas/keys?limit=200", Some(&new_key), None).await;
    let names: Vec<&str> = listed.data()["keys"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"admin"), "the bootstrap key is in the default organization, beside the first start's admin key: {names:?}");

    let again = server
        .call(
            Method::POST,
            "/v1/atlas/auth/bootstrap",
            Some(&server.admin_key),
            Some(json!({"email": "eve@example.com", "password": "another long password"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "bootstrap is closed once a user exists");
});

// ---------------------------------------------------------------- 2. minting limits

on_both_backends!(a_minted_key_stays_within_its_parents_limits, Options::default(), |server| {
    let parent_expiry = "2099-01-01T00:00:00Z";
    let (_, parent) = server
        .mint_with(json!({"name": "parent", "scopes": ["atlas.keys.write", "atlas.keys.read"], "expires_at": parent_expiry, "allowed_ips": ["127.0.0.0/8"]}))
        .await;
    let mint = |body: Value| {
        let (server, parent) = (&server, parent.clone());
        async move { server.call(Method::POST, "/v1/atlas/keys", Some(&parent), Some(body)).await }
    };

    let inherited = mint(json!({"name": "child", "scopes": ["atlas.keys.read"]})).await;
    assert_eq!(inherited.status, StatusCode::CREATED, "{:?}", inherited.body);
    assert_eq!(inherited.data()["expires_at"], "2099-01-01T00:00:00Z", "an absent expiry is the parent's");
    assert_eq!(inherited.data()["allowed_ips"], json!(["127.0.0.0/8"]), "an absent allowlist is the parent's");

    let later = mint(json!({"name": "later", "scopes": ["atlas.keys.read"], "expires_at": "2100-01-01T00:00:00Z"})).await;
    assert_eq!(later.status, StatusCode::FORBIDDEN, "{:?}", later.body);
    assert_eq!(later.code(), "FORBIDDEN");
    assert_eq!(later.body["error"]["details"]["limit"], "expires_at");

    let wider = mint(json!({"name": "wider", "scopes": ["atlas.keys.read"], "allowed_ips": ["10.0.0.0/8"]})).await;
    assert_eq!(wider.status, StatusCode::FORBIDDEN, "{:?}", wider.body);
    assert_eq!(wider.body["error"]["details"]["limit"], "allowed_ips");

    let narrower = mint(
        json!({"name": "narrower", "scopes": ["atlas.keys.read"], "allowed_ips": ["127.0.0.1"], "expires_at": "2098-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(narrower.status, StatusCode::CREATED, "a key may mint within its limits: {:?}", narrower.body);
});

// ---------------------------------------------------------------- 3. trusted proxies

on_both_backends!(forwarded_for_counts_only_from_a_trusted_proxy, with_env(&[("ATLAS_TRUSTED_PROXIES", "127.0.0.0/8")]), |server| {
    let (_, key) = server.mint_with(json!({"name": "office", "scopes": ["atlas.keys.read"], "allowed_ips": ["203.0.113.0/24"]})).await;
    let direct = server.call(Method::GET, "/v1/atlas/keys", Some(&key), None).await;
    assert_eq!(direct.status, StatusCode::FORBIDDEN, "the proxy itself is not in the allowlist: {:?}", direct.body);
    assert_eq!(direct.code(), "IP_NOT_ALLOWED");
    let forwarded = server.send(Method::GET, "/v1/atlas/keys", Some(&key), None, &[("X-Forwarded-For", "198.51.100.1, 203.0.113.7")]).await;
    assert_eq!(forwarded.status, StatusCode::OK, "the rightmost untrusted hop is the client: {:?}", forwarded.body);
    let spoofed = server.send(Method::GET, "/v1/atlas/keys", Some(&key), None, &[("X-Forwarded-For", "203.0.113.7, 198.51.100.1")]).await;
    assert_eq!(spoofed.status, StatusCode::FORBIDDEN, "a hop the client wrote further left is not believed");
});

on_both_backends!(forwarded_for_is_ignored_without_trusted_proxies, Options::default(), |server| {
    let (_, key) = server.mint_with(json!({"name": "office", "scopes": ["atlas.keys.read"], "allowed_ips": ["203.0.113.0/24"]})).await;
    let forwarded = server.send(Method::GET, "/v1/atlas/keys", Some(&key), None, &[("X-Forwarded-For", "203.0.113.7")]).await;
    assert_eq!(forwarded.status, StatusCode::FORBIDDEN, "by default nobody's X-Forwarded-For is believed: {:?}", forwarded.body);
    assert_eq!(forwarded.code(), "IP_NOT_ALLOWED");
});

// ---------------------------------------------------------------- 6. the concrete path

async fn subscribe(server: &TestServer, url: &str) -> String {
    let created = server
        .call(Method::POST, "/v1/atlas/webhooks", Some(&server.admin_key), Some(json!({"url": url, "events": ["atlas.event.received"]})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    created.data()["id"].as_str().unwrap().to_owned()
}

on_both_backends!(one_key_on_two_resources_is_two_requests, with_env(&[("ATLAS_WEBHOOKS_ALLOW_PRIVATE", "true")]), |server| {
    let a = subscribe(&server, "http://127.0.0.1:9/a").await;
    let b = subscribe(&server, "http://127.0.0.1:9/b").await;
    let patch = json!({"description": "renamed"});
    let on_a = server
        .send(
            Method::PATCH,
            &format!("/v1/atlas/webhooks/{a}"),
            Some(&server.admin_key),
            Some(patch.clone()),
            &[("Idempotency-Key", "same")],
        )
        .await;
    assert_eq!(on_a.status, StatusCode::OK, "{:?}", on_a.body);
    let on_b = server
        .send(Method::PATCH, &format!("/v1/atlas/webhooks/{b}"), Some(&server.admin_key), Some(patch), &[("Idempotency-Key", "same")])
        .await;
    assert_eq!(on_b.status, StatusCode::OK, "{:?}", on_b.body);
    assert!(on_b.header("idempotent-replayed").is_none(), "B's request is not a replay of A's");
    assert_eq!(on_b.data()["id"], json!(b), "B's answer is about B");
    let read_b = server.call(Method::GET, &format!("/v1/atlas/webhooks/{b}"), Some(&server.admin_key), None).await;
    assert_eq!(read_b.data()["description"], "renamed", "B was changed");
});

// ---------------------------------------------------------------- 7. only committed outcomes

on_both_backends!(refusals_of_scope_and_limits_are_not_stored, Options::default(), |server| {
    let wide = json!({"name": "wide", "scopes": ["atlas.platform.admin"]});
    let refused =
        server.send(Method::POST, "/v1/atlas/keys", Some(&server.admin_key), Some(wide.clone()), &[("Idempotency-Key", "mint-3")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let again = server.send(Method::POST, "/v1/atlas/keys", Some(&server.admin_key), Some(wide), &[("Idempotency-Key", "mint-3")]).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
    assert!(again.header("idempotent-replayed").is_none(), "a scope refusal is not stored: the retry ran afresh");

    // Once allowed, the same key executes (nothing was stored under it).
    let (_, limited) =
        server.mint_with(json!({"name": "limited", "scopes": ["atlas.keys.write"], "expires_at": "2099-01-01T00:00:00Z"})).await;
    let later = json!({"name": "later", "scopes": ["atlas.keys.write"], "expires_at": "2100-01-01T00:00:00Z"});
    let beyond = server.send(Method::POST, "/v1/atlas/keys", Some(&limited), Some(later.clone()), &[("Idempotency-Key", "mint-4")]).await;
    assert_eq!(beyond.status, StatusCode::FORBIDDEN);
    let beyond_again = server.send(Method::POST, "/v1/atlas/keys", Some(&limited), Some(later), &[("Idempotency-Key", "mint-4")]).await;
    assert!(beyond_again.header("idempotent-replayed").is_none(), "a limit refusal is not stored either");

    // A business outcome (an unknown resource) is stored and replayed.
    let missing = format!("/v1/atlas/keys/{}", atlas_scopes::KeyId::generate());
    let gone = server.send(Method::DELETE, &missing, Some(&server.admin_key), None, &[("Idempotency-Key", "revoke-1")]).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{:?}", gone.body);
    let gone_again = server.send(Method::DELETE, &missing, Some(&server.admin_key), None, &[("Idempotency-Key", "revoke-1")]).await;
    assert_eq!(gone_again.header("idempotent-replayed"), Some("true"), "a business refusal is a stored outcome: {:?}", gone_again.body);
});

// ---------------------------------------------------------------- 8. what a request means

on_both_backends!(equivalent_spellings_of_a_request_replay, Options::default(), |server| {
    let snake =
        json!({"name": "spelled", "scopes": ["atlas.runs.read"], "expires_at": "2099-01-01T00:00:00Z", "allowed_ips": ["10.0.0.0/8"]});
    let camel =
        json!({"allowedIps": ["10.0.0.0/8"], "name": "spelled", "expiresAt": "2099-01-01T00:00:00Z", "scopes": ["atlas.runs.read"]});
    let first = server.send(Method::POST, "/v1/atlas/keys", Some(&server.admin_key), Some(snake), &[("Idempotency-Key", "spelled")]).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let second = server.send(Method::POST, "/v1/atlas/keys", Some(&server.admin_key), Some(camel), &[("Idempotency-Key", "spelled")]).await;
    assert_eq!(second.status, StatusCode::CREATED, "the same request spelled with the seeds' aliases replays: {:?}", second.body);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.data()["id"], first.data()["id"]);
});

// ---------------------------------------------------------------- 10. secrets in replays

on_both_backends!(a_replay_shows_the_secret_it_showed_once, with_env(&[("ATLAS_WEBHOOKS_ALLOW_PRIVATE", "true")]), |server| {
    let body = json!({"name": "lost answer", "scopes": ["atlas.runs.read"]});
    let first =
        server.send(Method::POST, "/v1/atlas/keys", Some(&server.admin_key), Some(body.clone()), &[("Idempotency-Key", "k1")]).await;
    let replay = server.send(Method::POST, "/v1/atlas/keys", Some(&server.admin_key), Some(body), &[("Idempotency-Key", "k1")]).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, first.body, "the replay is the first answer verbatim, the key included");
    let key = replay.data()["key"].as_str().unwrap();
    let usable = server.call(Method::GET, "/v1/atlas/runs", Some(key), None).await;
    assert_eq!(usable.status, StatusCode::OK, "the replayed key works");

    let hook = json!({"url": "http://127.0.0.1:9/hook", "events": ["atlas.event.received"]});
    let created =
        server.send(Method::POST, "/v1/atlas/webhooks", Some(&server.admin_key), Some(hook.clone()), &[("Idempotency-Key", "w1")]).await;
    let again = server.send(Method::POST, "/v1/atlas/webhooks", Some(&server.admin_key), Some(hook), &[("Idempotency-Key", "w1")]).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert!(created.data()["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(again.data()["secret"], created.data()["secret"], "the webhook secret is replayed verbatim");
});

// ---------------------------------------------------------------- 15. bounded metrics

async fn series(server: &TestServer) -> Vec<String> {
    let text = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    text.lines().filter(|l| l.starts_with("atlas_http_requests_total{")).map(|l| l.rsplit_once(' ').unwrap().0.to_owned()).collect()
}

on_both_backends!(odd_methods_and_paths_do_not_grow_the_metrics, Options::default(), |server| {
    for i in 0..20 {
        let method = Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        let _ = server.http.request(method.clone(), format!("{}/v1/atlas/keys", server.base)).send().await.unwrap();
        let _ = server.http.request(method, format!("{}/nowhere/{i}", server.base)).send().await.unwrap();
        let _ = server.http.get(format!("{}/v1/atlas/no-such-route-{i}", server.base)).send().await.unwrap();
    }
    series(&server).await; // the scrape itself is a series of its own
    let labels = series(&server).await;
    for line in &labels {
        assert!(!line.contains("BREW"), "an invented method is `other`: {line}");
        assert!(!line.contains("nowhere") && !line.contains("no-such-route"), "an unmatched path is `unmatched`: {line}");
    }
    assert!(labels.iter().any(|l| l.contains("method=\"other\"")), "odd methods are counted as other: {labels:?}");
    assert!(labels.iter().any(|l| l.contains("route=\"unmatched\"")), "unmatched paths are counted: {labels:?}");
    let before = labels.len();
    for i in 20..40 {
        let method = Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        let _ = server.http.request(method, format!("{}/nowhere/{i}", server.base)).send().await.unwrap();
    }
    assert_eq!(series(&server).await.len(), before, "more odd requests add no series");
});

// ---------------------------------------------------------------- 16. first start

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_cannot_bind_leaves_the_next_start_a_key() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let url = match backend {
            Backend::Sqlite => atlas_testkit::services::fresh_sqlite_url(),
            Backend::Postgres => match atlas_testkit::services::fresh_postgres_database().await {
                Some(url) => url,
                None => continue,
            },
        };
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let env: BTreeMap<String, String> = [
            ("ATLAS_BIND".to_owned(), taken.local_addr().unwrap().to_string()),
            ("ATLAS_DATABASE_URL".to_owned(), url.clone()),
            ("ATLAS_SECRET_KEY".to_owned(), "e2e-secret-key-that-is-long-enough-0123456789".to_owned()),
        ]
        .into_iter()
        .collect();
        let settings = atlas_api::config::Settings::load(None, &env).unwrap();
        let failed = atlas_api::start(&settings).await;
        assert!(matches!(failed, Err(atlas_api::StartError::Bind(..))), "[{backend:?}] the port is taken: {failed:?}");
        drop(taken);
        let options = Options { database_url: Some(url), ..Options::default() };
        let server = TestServer::start(backend, options).await.unwrap();
        assert!(server.admin_key.starts_with("atlas_sk_"), "[{backend:?}] the start after a failed bind prints the admin key");
        let works = server.call(Method::GET, "/v1/atlas/keys", Some(&server.admin_key), None).await;
        assert_eq!(works.status, StatusCode::OK, "[{backend:?}] and the key works");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_starting_on_one_empty_database_create_one_default_organization() {
    let Some(url) = atlas_testkit::services::fresh_postgres_database().await else { return };
    let start = |url: String| async move {
        let options = Options { database_url: Some(url), ..Options::default() };
        TestServer::start(Backend::Postgres, options).await.unwrap()
    };
    let (a, b) = tokio::join!(start(url.clone()), start(url.clone()));
    let keys: Vec<&String> = [&a.admin_key, &b.admin_key].into_iter().filter(|k| !k.is_empty()).collect();
    assert_eq!(keys.len(), 1, "exactly one replica printed an admin key");
    let db = sea_orm::Database::connect(&url).await.unwrap();
    use sea_orm::{ConnectionTrait, Statement};
    let row = db
        .query_one(Statement::from_string(sea_orm::DatabaseBackend::Postgres, "SELECT COUNT(*) AS n FROM organizations"))
        .await
        .unwrap()
        .unwrap();
    let organizations: i64 = row.try_get("", "n").unwrap();
    assert_eq!(organizations, 1, "one default organization, not two");
    for server in [&a, &b] {
        let listed = server.call(Method::GET, "/v1/atlas/keys", Some(keys[0]), None).await;
        assert_eq!(listed.status, StatusCode::OK, "both replicas accept the one admin key");
    }
    a.stop().await;
    b.stop().await;
}
