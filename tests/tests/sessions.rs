//! Test sessions end to end: an agent runs on a conversation with no WhatsApp through the same
//! runtime (the session is its outbound side); the answer lists its messages, drafts, tool
//! calls and handoff; the events are listed and streamed as server-sent events; sessions are
//! isolated per organization.

use atlas_e2e::{on_both_backends, Options, TestServer};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A chat endpoint that always answers `text`.
async fn fake_model(text: &'static str) -> String {
    let seen = Arc::new(Mutex::new(0_u32));
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(move |State(seen): State<Arc<Mutex<u32>>>, Json(_): Json<Value>| async move {
                *seen.lock().unwrap() += 1;
                Json(json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}))
            }),
        )
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn agent(server: &TestServer, body: Value) -> String {
    let created = server.call(Method::POST, "/v1/atlas/agents", Some(&server.admin_key), Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    created.data()["id"].as_str().unwrap().to_owned()
}

async fn session(server: &TestServer, agent: &str) -> String {
    let opened = server.call(Method::POST, "/v1/atlas/sessions", Some(&server.admin_key), Some(json!({"agent_id": agent}))).await;
    assert_eq!(opened.status, StatusCode::CREATED, "{:?}", opened.body);
    opened.data()["id"].as_str().unwrap().to_owned()
}

on_both_backends!(a_session_runs_the_agent_without_whatsapp, Options::default(), |server| {
    let model = fake_model("We open at 9.").await;
    let autonomous =
        agent(&server, json!({"name": "Hours", "maturity_level": "autonomous", "hosted": {"base_url": model, "model": "gpt-test"}})).await;
    let id = session(&server, &autonomous).await;
    let reply = server
        .call(
            Method::POST,
            &format!("/v1/atlas/sessions/{id}/messages"),
            Some(&server.admin_key),
            Some(json!({"text": "When do you open?"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.data()["messages"], json!(["We open at 9."]));
    assert_eq!(reply.data()["drafts"], json!([]));
    assert_eq!(reply.data()["handoff"], false);
    assert_eq!(reply.data()["execution"]["outcome"], "answered");

    let events = server.call(Method::GET, &format!("/v1/atlas/sessions/{id}/messages"), Some(&server.admin_key), None).await;
    let kinds: Vec<&str> = events.data()["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["customer_message", "agent_message"]);
    let seqs: Vec<i64> = events.data()["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2]);
    let page = server.call(Method::GET, &format!("/v1/atlas/sessions/{id}/messages?limit=1"), Some(&server.admin_key), None).await;
    let cursor = page.data()["next_cursor"].as_str().unwrap().to_owned();
    let rest = server.call(Method::GET, &format!("/v1/atlas/sessions/{id}/messages?cursor={cursor}"), Some(&server.admin_key), None).await;
    assert_eq!(rest.data()["events"][0]["kind"], "agent_message");

    // An intern's reply is a draft in the session too.
    let intern =
        agent(&server, json!({"name": "Careful", "maturity_level": "intern", "hosted": {"base_url": model, "model": "gpt-test"}})).await;
    let careful = session(&server, &intern).await;
    let reply = server
        .call(Method::POST, &format!("/v1/atlas/sessions/{careful}/messages"), Some(&server.admin_key), Some(json!({"text": "Hours?"})))
        .await;
    assert_eq!(
        (reply.data()["messages"].clone(), reply.data()["drafts"].clone()),
        (json!([]), json!(["We open at 9."])),
        "{:?}",
        reply.body
    );

    // The built-in faq agent, with no knowledge, hands off; then the session refuses the agent.
    let faq = agent(&server, json!({"name": "FAQ two", "maturity_level": "autonomous", "hosted": {"model": "faq"}})).await;
    let handed = session(&server, &faq).await;
    let reply = server
        .call(Method::POST, &format!("/v1/atlas/sessions/{handed}/messages"), Some(&server.admin_key), Some(json!({"text": "Anything?"})))
        .await;
    assert_eq!((reply.status, reply.data()["handoff"].as_bool()), (StatusCode::OK, Some(true)), "{:?}", reply.body);
    let again = server
        .call(Method::POST, &format!("/v1/atlas/sessions/{handed}/messages"), Some(&server.admin_key), Some(json!({"text": "Hello?"})))
        .await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "CONVERSATION_HANDED_OFF"));

    // Isolation, listing, deletion.
    let other = server.organization("Other").await;
    assert_eq!(server.call(Method::GET, &format!("/v1/atlas/sessions/{id}"), Some(&other), None).await.status, StatusCode::NOT_FOUND);
    let theirs = server.call(Method::POST, &format!("/v1/atlas/sessions/{id}/messages"), Some(&other), Some(json!({"text": "hi"}))).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let foreign_agent = server.call(Method::POST, "/v1/atlas/sessions", Some(&other), Some(json!({"agent_id": autonomous}))).await;
    assert_eq!(foreign_agent.status, StatusCode::BAD_REQUEST, "{:?}", foreign_agent.body);
    let listed = server.call(Method::GET, "/v1/atlas/sessions", Some(&server.admin_key), None).await;
    assert_eq!(listed.data()["sessions"].as_array().unwrap().len(), 3);
    let deleted = server.call(Method::DELETE, &format!("/v1/atlas/sessions/{id}"), Some(&server.admin_key), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(
        server.call(Method::GET, &format!("/v1/atlas/sessions/{id}"), Some(&server.admin_key), None).await.status,
        StatusCode::NOT_FOUND
    );
});

on_both_backends!(a_session_streams_its_events, Options::default(), |server| {
    let model = fake_model("Streamed answer.").await;
    let id =
        agent(&server, json!({"name": "Streamer", "maturity_level": "autonomous", "hosted": {"base_url": model, "model": "gpt-test"}}))
            .await;
    let session = session(&server, &id).await;
    let mut stream =
        server.http.get(format!("{}/v1/atlas/sessions/{session}/stream", server.base)).bearer_auth(&server.admin_key).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let reply = server
        .call(Method::POST, &format!("/v1/atlas/sessions/{session}/messages"), Some(&server.admin_key), Some(json!({"text": "Hi"})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let mut seen = String::new();
    while !seen.contains("event: agent_message") {
        let chunk =
            tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await.expect("the stream delivers").unwrap().expect("open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("id: 1\n") && seen.contains("event: customer_message"), "{seen}");
    assert!(seen.contains("Streamed answer."), "{seen}");

    // Resuming after Last-Event-ID skips what was seen.
    let mut resumed = server
        .http
        .get(format!("{}/v1/atlas/sessions/{session}/stream", server.base))
        .bearer_auth(&server.admin_key)
        .header("Last-Event-ID", "1")
        .send()
        .await
        .unwrap();
    let chunk = tokio::time::timeout(Duration::from_secs(10), resumed.chunk()).await.expect("the stream delivers").unwrap().unwrap();
    let text = String::from_utf8_lossy(&chunk);
    assert!(text.contains("id: 2\n") && !text.contains("id: 1\n"), "{text}");

    let other = server.organization("Other").await;
    let hidden = server.http.get(format!("{}/v1/atlas/sessions/{session}/stream", server.base)).bearer_auth(&other).send().await.unwrap();
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
});
