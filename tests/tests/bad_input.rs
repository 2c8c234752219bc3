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

/// Posts `body` to `path` and expects a VALIDATION_ERROR naming `field`.
async fn assert_refused_at(server: &TestServer, path: &str, body: serde_json::Value, field: &str) {
    let answer = server.call(Method::POST, path, Some(&server.admin_key), Some(body.clone())).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path} {body}: {:?}", answer.body);
    assert_eq!(answer.code(), "VALIDATION_ERROR", "{path} {body}");
    assert_eq!(answer.body["error"]["details"]["fields"][0]["field"], field, "{path} {body}: {:?}", answer.body);
}

on_both_backends!(send_and_action_bodies_name_the_failing_field_and_write_nothing, Options::default(), |server| {
    let conversation = "conv_01936a3c8f2e7b4d9a1c5e6f7a8b9c20";
    for (path, body, field) in [
        ("/v1/atlas/messages", json!({"phone_number": "not a number", "text": "hi"}), "phone_number"),
        ("/v1/atlas/messages", json!({"text": "hi"}), "body"),
        ("/v1/atlas/messages", json!({"phone_number": "+14155552671", "channel_id": "conv_1", "text": "hi"}), "channel_id"),
        ("/v1/atlas/messages", json!({"phone_number": "+14155552671", "text": "hi", "colour": "red"}), "colour"),
        ("/v1/atlas/messages", json!({"phone_number": "+14155552671", "text": "hi", "category": "spam"}), "category"),
        ("/v1/atlas/messages", json!({"phone_number": "+14155552671", "text": "hi", "parameters": ["1"]}), "template_id"),
        ("/agent/v1/tools/send_message_to_phone", json!({"phone_number": 14155552671_u64, "text": "hi"}), "phone_number"),
        ("/agent/v1/tools/send_message", json!({"conversation_id": "cus_1", "text": "hi"}), "conversation_id"),
        ("/agent/v1/tools/send_message", json!({"conversation_id": conversation, "text": 5}), "text"),
        ("/v1/atlas/actions", json!({"conversation_id": conversation, "action_type": "wave"}), "action_type"),
        ("/v1/atlas/actions", json!({"conversation_id": conversation, "action_type": "reply", "colour": "red"}), "colour"),
        ("/v1/atlas/actions", json!({"conversation_id": conversation, "action_type": "reply", "payload": {"txt": "hi"}}), "payload.txt"),
        ("/v1/atlas/actions", json!({"conversation_id": conversation, "action_type": "draft", "payload": {}}), "payload.text"),
        ("/v1/atlas/actions", json!({"conversation_id": "nope", "action_type": "handoff"}), "conversation_id"),
    ] {
        assert_refused_at(&server, path, body, field).await;
    }
    let runs = server.call(Method::GET, "/v1/atlas/runs?operation=messages.send", Some(&server.admin_key), None).await;
    assert_eq!(runs.data()["runs"].as_array().map(Vec::len), Some(0), "a refused send leaves no run: {:?}", runs.body);
    let conversations = server.call(Method::GET, "/v1/atlas/conversations", Some(&server.admin_key), None).await;
    assert_eq!(conversations.data()["conversations"].as_array().map(Vec::len), Some(0), "nor a conversation");
});
