//! Credentials end to end: bootstrap, users and refresh rotation, API keys with scopes,
//! expiry, revocation, IP allowlists and the minting rule.

use atlas_e2e::{on_both_backends, Options, TestServer};
use atlas_kernel::ManualClock;
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_backends!(bootstrap_sign_in_and_refresh_rotation, Options::default(), |server| {
    let boot = server
        .call(
            Method::POST,
            "/v1/atlas/auth/bootstrap",
            Some(&server.admin_key),
            Some(json!({"email": "Ada@Example.com", "password": "correct horse battery", "username": "ada"})),
        )
        .await;
    assert_eq!(boot.status, StatusCode::CREATED, "{:?}", boot.body);
    assert_eq!(boot.data()["user"]["email"], "ada@example.com");
    assert!(boot.data()["key"]["key"].as_str().unwrap().starts_with("atlas_sk_"));

    let again = server
        .call(
            Method::POST,
            "/v1/atlas/auth/bootstrap",
            Some(&server.admin_key),
            Some(json!({"email": "eve@example.com", "password": "another long password"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "bootstrap is closed once a user exists");

    let wrong = server
        .call(Method::POST, "/v1/atlas/auth/token", None, Some(json!({"email": "ada@example.com", "password": "wrong password!"})))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let signed = server
        .call(Method::POST, "/v1/atlas/auth/token", None, Some(json!({"email": "ada@example.com", "password": "correct horse battery"})))
        .await;
    assert_eq!(signed.status, StatusCode::OK, "{:?}", signed.body);
    let jwt = signed.data()["token"].as_str().unwrap().to_owned();
    let first_refresh = signed.data()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(signed.data()["user"]["role"], "admin");

    let keys = server.call(Method::GET, "/v1/atlas/keys", Some(&jwt), None).await;
    assert_eq!(keys.status, StatusCode::OK, "an access JWT authenticates: {:?}", keys.body);

    let rotated = server.call(Method::POST, "/v1/atlas/auth/refresh", None, Some(json!({"refresh_token": first_refresh}))).await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let second_refresh = rotated.data()["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first_refresh, "refresh rotates the token");

    let reuse = server.call(Method::POST, "/v1/atlas/auth/refresh", None, Some(json!({"refreshToken": first_refresh}))).await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED, "a used refresh token is refused");
    let family_dead = server.call(Method::POST, "/v1/atlas/auth/refresh", None, Some(json!({"refresh_token": second_refresh}))).await;
    assert_eq!(family_dead.status, StatusCode::UNAUTHORIZED, "reuse revoked the whole family, the newest token too");

    let forged = server.call(Method::GET, "/v1/atlas/keys", Some(&format!("{jwt}x")), None).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
});

on_both_backends!(a_narrow_key_is_refused_what_it_lacks, Options::default(), |server| {
    let (_, runs_only) = server.mint(&["atlas.runs.read"]).await;
    let ok = server.call(Method::GET, "/v1/atlas/runs", Some(&runs_only), None).await;
    assert_eq!(ok.status, StatusCode::OK);

    let refused = server.call(Method::GET, "/v1/atlas/keys", Some(&runs_only), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "FORBIDDEN");
    assert_eq!(refused.body["error"]["details"]["missing_scope"], "atlas.keys.read");

    let (_, minter) = server.mint(&["atlas.keys.write", "atlas.messages.send"]).await;
    let wider =
        server.call(Method::POST, "/v1/atlas/keys", Some(&minter), Some(json!({"name": "wider", "scopes": ["atlas.runs.read"]}))).await;
    assert_eq!(wider.status, StatusCode::FORBIDDEN, "no key mints a scope it lacks: {:?}", wider.body);
    assert_eq!(wider.body["error"]["details"]["missing_scope"], "atlas.runs.read");
    let narrower = server
        .call(Method::POST, "/v1/atlas/keys", Some(&minter), Some(json!({"name": "narrower", "scopes": ["atlas.messages.send"]})))
        .await;
    assert_eq!(narrower.status, StatusCode::CREATED);

    let operator_scope = server.call(Method::POST, "/v1/atlas/orgs", Some(&server.admin_key), Some(json!({"name": "other"}))).await;
    assert_eq!(operator_scope.status, StatusCode::FORBIDDEN, "an organization admin is no operator");
    assert_eq!(operator_scope.body["error"]["details"]["missing_scope"], "atlas.platform.admin");
});

on_both_backends!(revoked_malformed_and_corrupted_keys_get_401, Options::default(), |server| {
    let (id, key) = server.mint(&["atlas.runs.read"]).await;
    assert_eq!(server.call(Method::GET, "/v1/atlas/runs", Some(&key), None).await.status, StatusCode::OK);
    let revoke = server.call(Method::DELETE, &format!("/v1/atlas/keys/{id}"), Some(&server.admin_key), None).await;
    assert_eq!(revoke.status, StatusCode::OK, "{:?}", revoke.body);
    let after = server.call(Method::GET, "/v1/atlas/runs", Some(&key), None).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "revocation is immediate");
    assert_eq!(after.code(), "UNAUTHORIZED");

    let listed = server.call(Method::GET, "/v1/atlas/keys", Some(&server.admin_key), None).await;
    let revoked = listed.data()["keys"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).unwrap().clone();
    assert!(revoked["revoked_at"].is_string());
    assert!(revoked.get("key").is_none(), "listings never show secrets");

    let mut corrupted: Vec<char> = server.admin_key.chars().collect();
    let i = corrupted.len() - 10;
    corrupted[i] = if corrupted[i] == 'a' { 'b' } else { 'a' };
    let corrupted: String = corrupted.into_iter().collect();
    for bad in ["atlas_sk_short", "not-a-key", corrupted.as_str()] {
        let answer = server.call(Method::GET, "/v1/atlas/runs", Some(bad), None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
    assert_eq!(server.call(Method::GET, "/v1/atlas/runs", None, None).await.status, StatusCode::UNAUTHORIZED);

    for (header, value) in [("x-api-key", server.admin_key.clone()), ("authorization", format!("ApiKey {}", server.admin_key))] {
        let answer = server.send(Method::GET, "/v1/atlas/runs", None, None, &[(header, &value)]).await;
        assert_eq!(answer.status, StatusCode::OK, "accepted as {header}");
    }
});

on_both_backends!(ip_allowlists_refuse_other_addresses, Options::default(), |server| {
    let (_, office) = server.mint_with(json!({"name": "office", "scopes": ["atlas.runs.read"], "allowed_ips": ["10.0.0.0/8"]})).await;
    let refused = server.call(Method::GET, "/v1/atlas/runs", Some(&office), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "IP_NOT_ALLOWED");
    let (_, local) = server.mint_with(json!({"name": "local", "scopes": ["atlas.runs.read"], "allowed_ips": ["127.0.0.1/32"]})).await;
    assert_eq!(server.call(Method::GET, "/v1/atlas/runs", Some(&local), None).await.status, StatusCode::OK);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_gets_401() {
    for backend in [atlas_e2e::Backend::Sqlite, atlas_e2e::Backend::Postgres] {
        let clock = ManualClock::new(time::OffsetDateTime::now_utc());
        let options = Options { clock: Some(clock.clone()), ..Options::default() };
        let Some(server) = TestServer::start(backend, options).await else { continue };
        let expires = (clock_now(&clock) + time::Duration::hours(1)).format(&time::format_description::well_known::Rfc3339).unwrap();
        let (_, key) = server.mint_with(json!({"name": "temp", "scopes": ["atlas.runs.read"], "expires_at": expires})).await;
        assert_eq!(server.call(Method::GET, "/v1/atlas/runs", Some(&key), None).await.status, StatusCode::OK, "{backend:?}");
        clock.advance(time::Duration::hours(1) + time::Duration::seconds(1));
        let expired = server.call(Method::GET, "/v1/atlas/runs", Some(&key), None).await;
        assert_eq!(expired.status, StatusCode::UNAUTHORIZED, "{backend:?}");
        assert!(expired.body["error"]["message"].as_str().unwrap().contains("expired"), "{backend:?}");
        server.stop().await;
    }
}

fn clock_now(clock: &ManualClock) -> time::OffsetDateTime {
    use atlas_kernel::Clock;
    clock.now()
}
