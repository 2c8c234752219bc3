//! Idempotency end to end: header and body keys, replays that execute nothing, reuse with
//! another body, and many concurrent requests with one key executing exactly once.

use atlas_e2e::{on_both_backends, Backend, Options, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;

async fn key_count(server: &TestServer) -> usize {
    let listed = server.call(Method::GET, "/v1/atlas/keys?limit=200", Some(&server.admin_key), None).await;
    listed.data()["keys"].as_array().unwrap().len()
}

on_both_backends!(header_and_body_keys_replay_without_executing_again, Options::default(), |server| {
    let before = key_count(&server).await;
    let body = json!({"name": "replayed", "scopes": ["atlas.runs.read"]});
    let first =
        server.send(Method::POST, "/v1/atlas/keys", Some(&server.admin_key), Some(body.clone()), &[("Idempotency-Key", "mint-1")]).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(first.header("idempotent-replayed").is_none());
    let second = server
        .send(Method::POST, "/v1/atlas/keys", Some(&server.admin_key), Some(body.clone()), &[("Idempotency-Key", "\"mint-1\"")])
        .await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert!(first.data()["key"].as_str().unwrap().starts_with("atlas_sk_"));
    assert_eq!(second.body, first.body, "the stored answer is replayed verbatim, the key it showed included");
    assert_eq!(second.header("location"), first.header("location"), "a replay restores Location");
    assert_eq!(key_count(&server).await, before + 1, "the replay executed nothing");

    let with_body_key = json!({"name": "body keyed", "scopes": ["atlas.runs.read"], "idempotency_key": "mint-2"});
    let a = server.call(Method::POST, "/v1/atlas/keys", Some(&server.admin_key), Some(with_body_key.clone())).await;
    let b = server.call(Method::POST, "/v1/atlas/keys", Some(&server.admin_key), Some(with_body_key)).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    assert_eq!(a.data()["id"], b.data()["id"]);

    let reused = server
        .send(
            Method::POST,
            "/v1/atlas/keys",
            Some(&server.admin_key),
            Some(json!({"name": "other", "scopes": ["atlas.runs.read"]})),
            &[("Idempotency-Key", "mint-1")],
        )
        .await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.code(), "IDEMPOTENCY_KEY_REUSED");

    let conflicting = server
        .send(
            Method::POST,
            "/v1/atlas/keys",
            Some(&server.admin_key),
            Some(json!({"name": "x", "scopes": ["atlas.runs.read"], "idempotency_key": "k-a"})),
            &[("Idempotency-Key", "k-b")],
        )
        .await;
    assert_eq!(conflicting.status, StatusCode::BAD_REQUEST);
    assert_eq!(conflicting.code(), "VALIDATION_ERROR");

    let refused = server
        .send(
            Method::POST,
            "/v1/atlas/keys",
            Some(&server.admin_key),
            Some(json!({"name": "wide", "scopes": ["atlas.platform.admin"]})),
            &[("Idempotency-Key", "mint-3")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused_again = server
        .send(
            Method::POST,
            "/v1/atlas/keys",
            Some(&server.admin_key),
            Some(json!({"name": "wide", "scopes": ["atlas.platform.admin"]})),
            &[("Idempotency-Key", "mint-3")],
        )
        .await;
    assert_eq!(refused_again.status, StatusCode::FORBIDDEN);
    assert!(refused_again.header("idempotent-replayed").is_none(), "a scope refusal is not stored: the retry runs afresh");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_with_one_key_create_one_key_on_postgres() {
    let Some(server) = TestServer::start(Backend::Postgres, Options::default()).await else { return };
    let server = Arc::new(server);
    let before = key_count(&server).await;
    let body = json!({"name": "concurrent", "scopes": ["atlas.runs.read"]});
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let server = server.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            server.send(Method::POST, "/v1/atlas/keys", Some(&server.admin_key), Some(body), &[("Idempotency-Key", "one-key")]).await
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        let answer = task.await.unwrap();
        match answer.status {
            StatusCode::CREATED => {
                created += 1;
                ids.insert(answer.data()["id"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => assert_eq!(answer.code(), "IDEMPOTENCY_IN_PROGRESS"),
            other => panic!("unexpected {other}: {:?}", answer.body),
        }
    }
    assert!(created >= 1);
    assert_eq!(ids.len(), 1, "every success is the same key");
    assert_eq!(key_count(&server).await, before + 1, "exactly one key record was created");
}

// A send claims its key at commit: concurrent duplicates all execute up to the commit, exactly
// one commits its message, and every other one is answered with that send's stored answer.
on_both_backends!(twenty_concurrent_sends_with_one_key_queue_one_message, Options::default(), |server| {
    let template = server
        .call(
            Method::POST,
            "/v1/atlas/templates",
            Some(&server.admin_key),
            Some(json!({"name": "hello_world", "language": "en_US", "category": "utility", "body": "Hello"})),
        )
        .await;
    assert!(template.status == StatusCode::CREATED || template.status == StatusCode::CONFLICT, "{:?}", template.body);
    let server = Arc::new(server);
    let body = json!({"phone_number": "+14155550199", "template_id": "hello_world", "category": "utility"});
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let server = server.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            server.send(Method::POST, "/v1/atlas/messages", Some(&server.admin_key), Some(body), &[("Idempotency-Key", "one-send")]).await
        }));
    }
    let mut answers = std::collections::BTreeSet::new();
    for task in tasks {
        let answer = task.await.unwrap();
        match answer.status {
            StatusCode::ACCEPTED => {
                answers.insert(answer.data()["message_id"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => assert_eq!(answer.code(), "IDEMPOTENCY_IN_PROGRESS"),
            other => panic!("unexpected {other}: {:?}", answer.body),
        }
    }
    assert_eq!(answers.len(), 1, "every accepted answer names the same message: {answers:?}");
    let conversations = server.call(Method::GET, "/v1/atlas/conversations", Some(&server.admin_key), None).await;
    let conversation = conversations.data()["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["customer"]["phone_number"] == "+14155550199")
        .expect("the send's conversation")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let messages =
        server.call(Method::GET, &format!("/v1/atlas/conversations/{conversation}/messages"), Some(&server.admin_key), None).await;
    let ids: Vec<&str> = messages.data()["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, answers.iter().map(String::as_str).collect::<Vec<_>>(), "exactly one message was queued");
});
