//! Bad input gets a clear 4xx, never a 500, and leaves nothing behind.

use atlas_e2e::{on_both_backends, Options, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn assert_field_error(server: &TestServer, body: Vec<u8>, field: &str) {
    let answer = server.raw(Method::POST, "/v1/atlas/keys", Some(&server.admin_key), body.clone()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}: {:?}", String::from_utf8_lossy(&body), answer.body);
    assert_eq!(answer.code(), "VALIDATION_ERROR");
    let fields = answer.body["error"]["details"]["fields"].as_array().expect("field-level details");
    assert_eq!(fields[0]["field"], field, "{:?}", answer.body);
    assert!(!answer.body["error"]["message"].as_str().unwrap().is_empty());
}

on_both_backends!(malformed_requests_are_4xx_with_field_level_messages, Options::default(), |server| {
    let before = server.call(Method::GET, "/v1/atlas/keys", Some(&server.admin_key), None).await.data()["keys"].as_array().unwrap().len();

    assert_field_error(&server, br#"{"name": "trunc"#.to_vec(), "body").await;
    assert_field_error(&server, br#"{"name": 5, "scopes": []}"#.to_vec(), "name").await;
    assert_field_error(&server, br#"{"name": "x", "scopes": ["atlas.nope.read"]}"#.to_vec(), "scopes[0]").await;
    assert_field_error(&server, br#"{"name": "x", "scopes": "atlas.runs.read"}"#.to_vec(), "scopes").await;
    assert_field_error(&server, br#"{"name": "x", "scopes": ["atlas.runs.read"], "expires_at": "tomorrow"}"#.to_vec(), "expires_at").await;
    assert_field_error(
        &server,
        br#"{"name": "x", "scopes": ["atlas.runs.read"], "allowed_ips": ["10.0.0.0/99"]}"#.to_vec(),
        "allowed_ips[0]",
    )
    .await;
    assert_field_error(&server, br#"{"name": "x", "scopes": ["atlas.runs.read"], "colour": "red"}"#.to_vec(), "colour").await;
    assert_field_error(&server, b"{\"name\": \"\xff\xfe\", \"scopes\": []}".to_vec(), "body").await;
    assert_field_error(&server, br#"{"name": "x", "scopes": ["atlas.runs.read"], "organization_id": "org_1"}"#.to_vec(), "organization_id")
        .await;
    assert_field_error(&server, br#"[1, 2]"#.to_vec(), "body").await;

    let mut huge = br#"{"name": ""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
    huge.extend(br#"", "scopes": []}"#);
    let too_large = server.raw(Method::POST, "/v1/atlas/keys", Some(&server.admin_key), huge).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.code(), "PAYLOAD_TOO_LARGE");

    for (query, field) in [
        ("limit=100000000000000000000", "limit"),
        ("limit=1000", "limit"),
        ("limit=0", "limit"),
        ("cursor=forged", "cursor"),
        ("cursor=djEuMTIzLm5vdC1hLXV1aWQ", "cursor"),
        ("organization_id=org_1", "organization_id"),
    ] {
        let answer = server.call(Method::GET, &format!("/v1/atlas/keys?{query}"), Some(&server.admin_key), None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}: {:?}", answer.body);
        assert_eq!(answer.body["error"]["details"]["fields"][0]["field"], field, "{query}");
    }
    let bad_status = server.call(Method::GET, "/v1/atlas/runs?status=maybe", Some(&server.admin_key), None).await;
    assert_eq!(bad_status.status, StatusCode::BAD_REQUEST);
    let bad_id = server.call(Method::DELETE, "/v1/atlas/keys/not-an-id", Some(&server.admin_key), None).await;
    assert_eq!(bad_id.status, StatusCode::NOT_FOUND);
    let wrong_method = server.call(Method::PUT, "/v1/atlas/keys", Some(&server.admin_key), Some(json!({}))).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    let bad_key = server
        .send(
            Method::POST,
            "/v1/atlas/keys",
            Some(&server.admin_key),
            Some(json!({"name": "x", "scopes": ["atlas.runs.read"]})),
            &[("Idempotency-Key", "")],
        )
        .await;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);

    let after = server.call(Method::GET, "/v1/atlas/keys", Some(&server.admin_key), None).await.data()["keys"].as_array().unwrap().len();
    assert_eq!(after, before, "no refused request left a key behind");
});
