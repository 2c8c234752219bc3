//! Agents answering customers end to end: a customer writes (an inbound event on the sandbox
//! channel) and the agent serving the conversation answers in the background: a hosted agent
//! through a local fake chat endpoint, retried when the endpoint fails; the built-in `faq`
//! agent handing off when no knowledge answers; an external agent receiving the message as a
//! signed `agent.message_received` webhook and answering through the tool API with its own
//! credential.

use atlas_e2e::receiver::Receiver;
use atlas_e2e::{Backend, Options, TestServer};
use atlas_webhooks::{verify, StandardHeaders, WebhookSecret};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

macro_rules! on_both_backends {
    ($name:ident, |$server:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn scenario($server: TestServer) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                scenario(TestServer::start(Backend::Sqlite, Options::default()).await.unwrap()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let mut options = Options::default();
                options.env.insert("ATLAS_WEBHOOKS_ALLOW_PRIVATE".into(), "true".into());
                let Some(server) = TestServer::start(Backend::Postgres, options).await else { return };
                scenario(server).await;
            }
        }
    };
}

/// A chat endpoint that fails its first `failures` calls (500), then answers `text`.
async fn flaky_model(failures: u32, text: &'static str) -> (String, Arc<Mutex<u32>>) {
    let calls = Arc::new(Mutex::new(0_u32));
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(move |State(calls): State<Arc<Mutex<u32>>>, Json(_): Json<Value>| async move {
                let n = {
                    let mut c = calls.lock().unwrap();
                    *c += 1;
                    *c
                };
                if n <= failures {
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "overloaded"})))
                } else {
                    (axum::http::StatusCode::OK, Json(json!({"choices": [{"message": {"role": "assistant", "content": text}}]})))
                }
            }),
        )
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

/// The calls counted so far, and the answers to give.
type Script = (Arc<Mutex<u32>>, Arc<Vec<Option<Value>>>);

/// A chat endpoint that answers its n-th call with the n-th of `script` (`None`: a 500), and
/// counts the calls.
async fn scripted_model(script: Vec<Option<Value>>) -> (String, Arc<Mutex<u32>>) {
    let calls = Arc::new(Mutex::new(0_u32));
    let script = Arc::new(script);
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(move |State((calls, script)): State<Script>, Json(_): Json<Value>| async move {
                let n = {
                    let mut c = calls.lock().unwrap();
                    *c += 1;
                    *c as usize
                };
                match script.get(n - 1).cloned().flatten() {
                    Some(message) => (axum::http::StatusCode::OK, Json(json!({"choices": [{"message": message}]}))),
                    None => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "overloaded"}))),
                }
            }),
        )
        .with_state((calls.clone(), script));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

fn send_call(id: &str, text: &str) -> Option<Value> {
    Some(json!({"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function",
        "function": {"name": "send_message", "arguments": json!({"text": text}).to_string()}}]}))
}

/// The sandbox channel's id, and the built-in faq agent paused (so the test's agent serves).
/// The sandbox channel; the first start's `faq` agent (paused at first) is started when
/// `faq_active`, and otherwise stays paused.
async fn sandbox(server: &TestServer, faq_active: bool) -> String {
    let channels = server.call(Method::GET, "/v1/atlas/channels", Some(&server.admin_key), None).await;
    let channel = channels.data()["channels"][0]["id"].as_str().unwrap().to_owned();
    let agents = server.call(Method::GET, "/v1/atlas/agents?q=faq", Some(&server.admin_key), None).await;
    let faq = agents.data()["agents"].as_array().unwrap();
    assert_eq!(faq.len(), 1, "the first start made one faq agent: {faq:?}");
    assert_eq!(faq[0]["status"], "paused", "it starts paused");
    if faq_active {
        let started = server
            .call(
                Method::PATCH,
                &format!("/v1/atlas/agents/{}", faq[0]["id"].as_str().unwrap()),
                Some(&server.admin_key),
                Some(json!({"status": "active"})),
            )
            .await;
        assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
    }
    channel
}

async fn customer_writes(server: &TestServer, phone: &str, text: &str) -> String {
    let event = server
        .call(
            Method::POST,
            "/v1/atlas/events",
            Some(&server.admin_key),
            Some(json!({"customer": {"phone_number": phone}, "event_type": "message.received", "message": {"text": text}})),
        )
        .await;
    assert!(event.status.is_success(), "{:?}", event.body);
    event.data()["conversation_id"].as_str().unwrap().to_owned()
}

/// Reads the conversation until `done` holds (or fails after 20 s).
async fn until(server: &TestServer, conversation: &str, done: impl Fn(&Value, &[Value]) -> bool) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let context = server.call(Method::GET, &format!("/v1/atlas/context/{conversation}"), Some(&server.admin_key), None).await;
        let messages =
            server.call(Method::GET, &format!("/v1/atlas/conversations/{conversation}/messages"), Some(&server.admin_key), None).await;
        let messages = messages.data()["messages"].as_array().cloned().unwrap_or_default();
        if done(&context.data()["conversation"], &messages) {
            return (context.data()["conversation"].clone(), messages);
        }
        assert!(Instant::now() < deadline, "the agent did not act: {context:?} {messages:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn outbound(messages: &[Value]) -> Vec<String> {
    messages.iter().filter(|m| m["direction"] == "outbound").map(|m| m["text"].as_str().unwrap_or_default().to_owned()).collect()
}

on_both_backends!(a_hosted_agent_answers_a_customer_and_retries_a_failing_model, |server| {
    let channel = sandbox(&server, false).await;
    let (model, calls) = flaky_model(1, "Hello! We open at 9.").await;
    let created = server
        .call(
            Method::POST,
            "/v1/atlas/agents",
            Some(&server.admin_key),
            Some(json!({"name": "Greeter", "maturity_level": "autonomous",
              "serves": {"channel_ids": [channel]}, "hosted": {"base_url": model, "model": "gpt-test"}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let conversation = customer_writes(&server, "+14155550201", "When do you open?").await;
    let (_, messages) = until(&server, &conversation, |_, m| !outbound(m).is_empty()).await;
    assert_eq!(outbound(&messages), ["Hello! We open at 9."]);
    assert_eq!(*calls.lock().unwrap(), 2, "the failed call was retried once");
    // The job's run commits when the job ends, which may be a moment after its send.
    let runs = until_runs(&server, "agents.execute", || "the job's run was never recorded".to_owned()).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
});

on_both_backends!(a_retried_run_does_not_write_to_the_customer_twice, |server| {
    let channel = sandbox(&server, false).await;
    // The first attempt sends, then its model fails; the retry asks to send again (in other
    // words), then ends.
    let script = vec![
        send_call("c1", "We open at 9."),
        None,
        send_call("c2", "We open at 9 am."),
        Some(json!({"role": "assistant", "content": "Done."})),
    ];
    let (model, calls) = scripted_model(script).await;
    let created = server
        .call(
            Method::POST,
            "/v1/atlas/agents",
            Some(&server.admin_key),
            Some(json!({"name": "Retrier", "maturity_level": "autonomous",
              "serves": {"channel_ids": [channel]}, "hosted": {"base_url": model, "model": "gpt-test"}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let conversation = customer_writes(&server, "+14155550204", "When do you open?").await;
    until_runs(&server, "agents.execute", || format!("the job was not retried to its end ({} model calls)", calls.lock().unwrap())).await;
    assert_eq!(*calls.lock().unwrap(), 4, "two attempts: send then fail, send again then end");
    let (_, messages) = until(&server, &conversation, |_, m| !outbound(m).is_empty()).await;
    assert_eq!(outbound(&messages), ["We open at 9."], "the retry got the first attempt's send back instead of sending again");
    let sends = server.call(Method::GET, "/v1/atlas/runs?operation=tools.send_message", Some(&server.admin_key), None).await;
    assert_eq!(sends.data()["runs"].as_array().unwrap().len(), 1, "one send, one run: {:?}", sends.body);
});

on_both_backends!(the_builtin_faq_agent_answers_from_knowledge_and_hands_off_the_rest, |server| {
    sandbox(&server, true).await;
    let doc = server
        .call(
            Method::POST,
            "/v1/atlas/knowledge",
            Some(&server.admin_key),
            Some(json!({"title": "Opening hours",
              "content": "Our shop opening hours are 9am to 5pm, Monday to Friday."})),
        )
        .await;
    assert_eq!(doc.status, StatusCode::CREATED, "{:?}", doc.body);
    let answered = customer_writes(&server, "+14155550212", "opening hours?").await;
    let (_, messages) = until(&server, &answered, |_, m| !outbound(m).is_empty()).await;
    assert_eq!(outbound(&messages), ["Our shop opening hours are 9am to 5pm, Monday to Friday."]);

    let conversation = customer_writes(&server, "+14155550202", "Can I pay with seashells?").await;
    let (c, messages) = until(&server, &conversation, |c, _| c["status"] == "handed_off").await;
    assert_eq!(c["status"], "handed_off");
    assert!(outbound(&messages).is_empty(), "nothing was sent: {messages:?}");
});

on_both_backends!(an_external_agent_gets_a_signed_event_and_replies_through_the_tool_api, |server| {
    let channel = sandbox(&server, false).await;
    let receiver = Receiver::start().await;
    let created = server
        .call(
            Method::POST,
            "/v1/atlas/agents",
            Some(&server.admin_key),
            Some(json!({"name": "Outside", "kind": "external", "maturity_level": "autonomous",
              "url": receiver.url(), "serves": {"channel_ids": [channel]}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let agent_id = created.data()["id"].as_str().unwrap().to_owned();
    let key = created.data()["credential"]["key"].as_str().unwrap().to_owned();
    let secret =
        WebhookSecret::parse(created.data()["credential"]["webhook_secret"].as_str().expect("the signing secret is shown once")).unwrap();

    let conversation = customer_writes(&server, "+14155550203", "Is my order shipped?").await;
    let received = receiver.wait_for(1, Duration::from_secs(20)).await;
    let event = received.iter().find(|r| r.json()["type"] == "agent.message_received").expect("the agent got the message");
    let headers = StandardHeaders::from_lookup(|name| event.headers.get(name).and_then(|v| v.to_str().ok()));
    verify(&secret, &headers, &event.body, time::OffsetDateTime::now_utc(), time::Duration::minutes(5)).expect("signed as webhooks are");
    let data = &event.json()["data"];
    assert_eq!(data["agent_id"], agent_id.as_str());
    assert_eq!(data["conversation_id"], conversation.as_str());
    assert_eq!(data["message"]["text"], "Is my order shipped?");

    let reply = server
        .call(
            Method::POST,
            "/agent/v1/tools/send_message",
            Some(&key),
            Some(json!({"conversation_id": conversation, "text": "Yes, it left today."})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let (_, messages) = until(&server, &conversation, |_, m| !outbound(m).is_empty()).await;
    assert_eq!(outbound(&messages), ["Yes, it left today."]);
});

/// Creates an external agent serving `conversations`, posting to `url`: its id, key and webhook id.
async fn external_agent(server: &TestServer, name: &str, url: &str, conversations: &[&str]) -> (String, String, String) {
    let created = server
        .call(
            Method::POST,
            "/v1/atlas/agents",
            Some(&server.admin_key),
            Some(json!({"name": name, "kind": "external", "maturity_level": "autonomous",
              "url": url, "serves": {"conversation_ids": conversations}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let credential = &created.data()["credential"];
    (
        created.data()["id"].as_str().unwrap().to_owned(),
        credential["key"].as_str().unwrap().to_owned(),
        credential["webhook_id"].as_str().unwrap().to_owned(),
    )
}

/// Waits until `receiver` got the message `text` (or fails after 20 s).
/// The runs of `operation` once there is at least one (within 20 s; else fails with `why`).
async fn until_runs(server: &TestServer, operation: &str, why: impl Fn() -> String) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = server.call(Method::GET, &format!("/v1/atlas/runs?operation={operation}"), Some(&server.admin_key), None).await;
        let runs = runs.data()["runs"].as_array().cloned().unwrap_or_default();
        if !runs.is_empty() {
            return runs;
        }
        assert!(Instant::now() < deadline, "{}", why());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn until_received(receiver: &Receiver, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !receiver.received().iter().any(|r| r.json()["data"]["message"]["text"] == text) {
        assert!(Instant::now() < deadline, "the agent did not get {text:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count(server: &TestServer, path: &str, plural: &str) -> usize {
    let listed = server.call(Method::GET, path, Some(&server.admin_key), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    listed.data()[plural].as_array().unwrap().len()
}

on_both_backends!(two_external_agents_each_get_their_own_conversations_and_leave_nothing_behind, |server| {
    sandbox(&server, false).await;
    let first_conversation = customer_writes(&server, "+14155550221", "Hello").await;
    let second_conversation = customer_writes(&server, "+14155550222", "Hi").await;
    let (first_receiver, second_receiver) = (Receiver::start().await, Receiver::start().await);
    let (first, first_key, first_hook) = external_agent(&server, "First", &first_receiver.url(), &[&first_conversation]).await;
    let (second, _, second_hook) = external_agent(&server, "Second", &second_receiver.url(), &[&second_conversation]).await;

    customer_writes(&server, "+14155550221", "Where is order 1?").await;
    customer_writes(&server, "+14155550222", "Where is order 2?").await;
    until_received(&first_receiver, "Where is order 1?").await;
    until_received(&second_receiver, "Where is order 2?").await;
    // Every event was fanned out by now (fan-out goes in event order). Each endpoint's
    // deliveries, once all arrived, are of its own agent's conversation only (the agent may
    // also have been handed the customer's first message, if the worker reached it after the
    // agent was created).
    for (hook, agent, conversation, receiver) in
        [(&first_hook, &first, &first_conversation, &first_receiver), (&second_hook, &second, &second_conversation, &second_receiver)]
    {
        let deliveries = server.call(Method::GET, &format!("/v1/atlas/webhooks/{hook}/deliveries"), Some(&server.admin_key), None).await;
        let made = deliveries.data()["deliveries"].as_array().unwrap().len();
        let got = receiver.wait_for(made, Duration::from_secs(20)).await;
        assert_eq!(got.len(), made, "every delivery arrived, and nothing else");
        for event in &got {
            let data = &event.json()["data"];
            assert_eq!((data["agent_id"].as_str(), data["conversation_id"].as_str()), (Some(agent.as_str()), Some(conversation.as_str())));
        }
    }

    // An agent whose endpoint is refused is not created, and leaves no credential or endpoint.
    let (keys, hooks) = (count(&server, "/v1/atlas/keys?limit=200", "keys").await, count(&server, "/v1/atlas/webhooks", "webhooks").await);
    let refused = server
        .call(
            Method::POST,
            "/v1/atlas/agents",
            Some(&server.admin_key),
            Some(json!({"name": "Metadata", "kind": "external", "url": "http://169.254.169.254/latest/meta-data"})),
        )
        .await;
    assert_eq!((refused.status, refused.code()), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"), "{:?}", refused.body);
    assert_eq!(count(&server, "/v1/atlas/keys?limit=200", "keys").await, keys, "no credential was minted for it");
    assert_eq!(count(&server, "/v1/atlas/webhooks", "webhooks").await, hooks, "nor an endpoint made");

    // A new URL moves the agent's endpoint with it; a refused one moves nothing.
    let moved_to = format!("{}/v2", second_receiver.url());
    let patched =
        server.call(Method::PATCH, &format!("/v1/atlas/agents/{second}"), Some(&server.admin_key), Some(json!({"url": moved_to}))).await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    let hook = server.call(Method::GET, &format!("/v1/atlas/webhooks/{second_hook}"), Some(&server.admin_key), None).await;
    assert_eq!(hook.data()["url"], moved_to.as_str(), "the endpoint follows the agent");
    let refused = server
        .call(
            Method::PATCH,
            &format!("/v1/atlas/agents/{second}"),
            Some(&server.admin_key),
            Some(json!({"url": "http://169.254.169.254/x"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{:?}", refused.body);
    let agent = server.call(Method::GET, &format!("/v1/atlas/agents/{second}"), Some(&server.admin_key), None).await;
    assert_eq!(agent.data()["url"], moved_to.as_str());

    // Deleting an agent revokes its credential and removes its endpoint, at once.
    let deleted = server.call(Method::DELETE, &format!("/v1/atlas/agents/{first}"), Some(&server.admin_key), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    let hook = server.call(Method::GET, &format!("/v1/atlas/webhooks/{first_hook}"), Some(&server.admin_key), None).await;
    assert_eq!(hook.status, StatusCode::NOT_FOUND, "the endpoint went with the agent");
    let used = server.call(Method::GET, "/agent/v1/tools/manifest", Some(&first_key), None).await;
    assert_eq!(used.status, StatusCode::UNAUTHORIZED, "the credential went with the agent: {:?}", used.body);
    assert_eq!(count(&server, "/v1/atlas/webhooks", "webhooks").await, hooks - 1);
});
