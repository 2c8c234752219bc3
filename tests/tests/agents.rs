//! Agents end to end against a local fake OpenAI-compatible chat endpoint: CRUD with the
//! agent's own credential and tenant isolation; an autonomous hosted agent whose tool calls
//! and tool answers are paired by id and whose send goes out; an intern's reply kept as a
//! draft, approved and sent once; handoff stopping every agent send (runtime and tool API)
//! until release; an LLM failure as 502; the built-in `faq` agent handing off.

use atlas_e2e::{on_both_backends, Options, TestServer};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A fake chat-completions endpoint: answers with the scripted replies in order (an empty
/// script answers 500) and keeps every request it received.
#[derive(Clone, Default)]
struct FakeModel {
    replies: Arc<Mutex<VecDeque<Value>>>,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl FakeModel {
    async fn start() -> (FakeModel, String) {
        let fake = FakeModel::default();
        let app = Router::new().route("/v1/chat/completions", post(complete)).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, url)
    }

    fn script(&self, replies: Vec<Value>) {
        self.replies.lock().unwrap().extend(replies);
    }

    fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

async fn complete(State(fake): State<FakeModel>, Json(body): Json<Value>) -> (axum::http::StatusCode, Json<Value>) {
    fake.requests.lock().unwrap().push(body);
    match fake.replies.lock().unwrap().pop_front() {
        Some(reply) => (
            axum::http::StatusCode::OK,
            Json(json!({"id": "cmpl", "object": "chat.completion", "choices": [{"index": 0, "message": reply, "finish_reason": "stop"}]})),
        ),
        None => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": {"message": "model overloaded"}}))),
    }
}

fn tool_call(id: &str, name: &str, arguments: Value) -> Value {
    json!({"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": arguments.to_string()}}]})
}

fn say(text: &str) -> Value {
    json!({"role": "assistant", "content": text})
}

async fn hosted_agent(server: &TestServer, model_url: &str, maturity: &str) -> (String, String) {
    let created = server
        .call(
            Method::POST,
            "/v1/atlas/agents",
            Some(&server.admin_key),
            Some(json!({"name": format!("{maturity} bot"), "role": "support", "kind": "hosted", "maturity_level": maturity,
                        "hosted": {"base_url": model_url, "model": "gpt-test", "api_key": "sk-test-secret", "system_prompt": "Be brief."}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let key = created.data()["credential"]["key"].as_str().expect("the credential is shown once").to_owned();
    (created.data()["id"].as_str().unwrap().to_owned(), key)
}

/// A conversation on the default (sandbox) channel, opened by the customer writing. The
/// built-in faq agent (which serves the sandbox) is paused first, so only the test's agent acts.
async fn conversation(server: &TestServer, phone: &str) -> String {
    let agents = server.call(Method::GET, "/v1/atlas/agents?q=faq", Some(&server.admin_key), None).await;
    for agent in agents.data()["agents"].as_array().unwrap() {
        let id = agent["id"].as_str().unwrap();
        let paused =
            server.call(Method::PATCH, &format!("/v1/atlas/agents/{id}"), Some(&server.admin_key), Some(json!({"status": "paused"}))).await;
        assert_eq!(paused.status, StatusCode::OK, "{:?}", paused.body);
    }
    let event = server
        .call(
            Method::POST,
            "/v1/atlas/events",
            Some(&server.admin_key),
            Some(json!({"customer": {"phone_number": phone}, "event_type": "message.received", "message": {"text": "Hi, when do you open?"}})),
        )
        .await;
    assert!(event.status.is_success(), "{:?}", event.body);
    event.data()["conversation_id"].as_str().unwrap().to_owned()
}

async fn outbound_texts(server: &TestServer, conversation: &str) -> Vec<String> {
    let messages =
        server.call(Method::GET, &format!("/v1/atlas/conversations/{conversation}/messages"), Some(&server.admin_key), None).await;
    assert_eq!(messages.status, StatusCode::OK, "{:?}", messages.body);
    messages.data()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "outbound")
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

on_both_backends!(agents_are_managed_with_their_own_credential_and_isolated, Options::default(), |server| {
    let (_, model) = FakeModel::start().await;
    let (id, key) = hosted_agent(&server, &model, "intern").await;
    assert!(key.starts_with("atlas_sk_"));
    let shown = server.call(Method::GET, &format!("/v1/atlas/agents/{id}"), Some(&server.admin_key), None).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.data()["maturity_level"], "intern");
    assert_eq!(shown.data()["hosted"]["has_api_key"], true);
    assert!(!shown.body.to_string().contains("sk-test-secret"), "the model API key is never shown");
    assert!(shown.data().get("credential").is_none(), "the credential is shown once, at creation");

    // The agent's credential works, within a subset of its creator's scopes.
    let manifest = server.call(Method::GET, "/agent/v1/tools/manifest", Some(&key), None).await;
    assert_eq!(manifest.status, StatusCode::OK, "{:?}", manifest.body);
    let refused = server.call(Method::GET, "/v1/atlas/agents", Some(&key), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // Seed 001's filters.
    hosted_agent(&server, &model, "autonomous").await;
    let interns = server.call(Method::GET, "/v1/atlas/agents?maturity_level=intern", Some(&server.admin_key), None).await;
    let names: Vec<&str> = interns.data()["agents"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["intern bot"]);
    let found = server.call(Method::GET, "/v1/atlas/agents?q=AUTONOMOUS&status=active", Some(&server.admin_key), None).await;
    assert_eq!(found.data()["agents"].as_array().unwrap().len(), 1);
    assert_eq!(found.data()["agents"][0]["name"], "autonomous bot");

    // PATCH and PUT.
    let patched = server
        .call(Method::PATCH, &format!("/v1/atlas/agents/{id}"), Some(&server.admin_key), Some(json!({"maturity_level": "supervised"})))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!((patched.data()["maturity_level"].as_str(), patched.data()["version"].as_i64()), (Some("supervised"), Some(2)));
    assert_eq!(patched.data()["hosted"]["has_api_key"], true, "a patch keeps the sealed key");
    let replaced = server
        .call(
            Method::PUT,
            &format!("/v1/atlas/agents/{id}"),
            Some(&server.admin_key),
            Some(json!({"name": "Renamed", "kind": "external", "url": "https://agent.example/events"})),
        )
        .await;
    assert_eq!(replaced.code(), "VALIDATION_ERROR", "the kind cannot change: {:?}", replaced.body);

    // Bad input is a field-level 400.
    let bad = server.call(Method::POST, "/v1/atlas/agents", Some(&server.admin_key), Some(json!({"name": "x", "kind": "external"}))).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"));
    assert_eq!(bad.body["error"]["details"]["fields"][0]["field"], "url");
    let bad = server
        .call(Method::POST, "/v1/atlas/agents", Some(&server.admin_key), Some(json!({"name": "x", "maturity_level": "genius"})))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Another organization sees nothing of it.
    let other = server.organization("Other").await;
    let hidden = server.call(Method::GET, &format!("/v1/atlas/agents/{id}"), Some(&other), None).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    let listed = server.call(Method::GET, "/v1/atlas/agents", Some(&other), None).await;
    assert!(listed.data()["agents"].as_array().unwrap().is_empty());
    let deleted = server.call(Method::DELETE, &format!("/v1/atlas/agents/{id}"), Some(&other), None).await;
    assert_eq!(deleted.status, StatusCode::NOT_FOUND);

    // Deleting revokes its credential.
    let deleted = server.call(Method::DELETE, &format!("/v1/atlas/agents/{id}"), Some(&server.admin_key), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    let revoked = server.call(Method::GET, "/agent/v1/tools/manifest", Some(&key), None).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
});

on_both_backends!(an_autonomous_agent_calls_tools_with_paired_ids_and_sends, Options::default(), |server| {
    let (fake, model) = FakeModel::start().await;
    let (id, _) = hosted_agent(&server, &model, "autonomous").await;
    let conversation = conversation(&server, "+14155550101").await;
    let doc = server
        .call(
            Method::POST,
            "/v1/atlas/knowledge",
            Some(&server.admin_key),
            Some(json!({"title": "Opening hours", "content": "We open at 9 every weekday."})),
        )
        .await;
    assert_eq!(doc.status, StatusCode::CREATED, "{:?}", doc.body);
    fake.script(vec![
        tool_call("call_search", "search_knowledge", json!({"query": "opening hours"})),
        tool_call("call_send", "send_message", json!({"conversation_id": conversation, "text": "We open at 9."})),
        say("I told the customer we open at 9."),
    ]);
    let executed = server
        .call(
            Method::POST,
            &format!("/v1/atlas/agents/{id}/execute"),
            Some(&server.admin_key),
            Some(json!({"input": "The customer asks when we open.", "conversation_id": conversation})),
        )
        .await;
    assert_eq!(executed.status, StatusCode::OK, "{:?}", executed.body);
    let data = executed.data();
    assert_eq!(data["outcome"], "answered");
    assert_eq!(data["answer"], "I told the customer we open at 9.");
    assert_eq!(data["run"]["operation"], "agents.execute");
    let ids: Vec<&str> = data["tool_calls"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["call_search", "call_send"]);
    assert_eq!(data["tool_calls"][0]["ok"], true, "the registry ran the search: {:?}", data["tool_calls"][0]);
    assert_eq!(data["tool_calls"][0]["result"]["results"][0]["title"], "Opening hours");
    assert_eq!(data["tool_calls"][1]["ok"], true, "{:?}", data["tool_calls"][1]);

    // The model saw each tool answer right after the call it answers, with the call's id.
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0]["model"], "gpt-test");
    let last = requests[2]["messages"].as_array().unwrap();
    for (i, m) in last.iter().enumerate() {
        if m["role"] == "tool" {
            assert_eq!(last[i - 1]["role"], "assistant");
            assert_eq!(last[i - 1]["tool_calls"][0]["id"], m["tool_call_id"]);
        }
    }
    let answered: Vec<&str> = last.iter().filter(|m| m["role"] == "tool").map(|m| m["tool_call_id"].as_str().unwrap()).collect();
    assert_eq!(answered, ["call_search", "call_send"]);
    assert!(last.iter().any(|m| m["role"] == "tool" && m["content"].as_str().unwrap().contains("We open at 9 every weekday.")));
    let offered: Vec<&str> = requests[0]["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert!(offered.contains(&"search_knowledge") && offered.contains(&"send_message"), "{offered:?}");

    assert_eq!(outbound_texts(&server, &conversation).await, ["We open at 9."]);
    // Every step wrote a run.
    let runs = server.call(Method::GET, "/v1/atlas/runs?limit=200", Some(&server.admin_key), None).await;
    let operations: Vec<&str> = runs.data()["runs"].as_array().unwrap().iter().map(|r| r["operation"].as_str().unwrap()).collect();
    for op in ["agents.execute", "tools.search_knowledge", "tools.send_message"] {
        let written = operations.iter().filter(|o| **o == op).count();
        assert_eq!(written, 1, "every step wrote one run: {op} in {operations:?}");
    }
});

on_both_backends!(an_intern_reply_is_a_draft_approved_then_sent_once, Options::default(), |server| {
    let (fake, model) = FakeModel::start().await;
    let (id, _) = hosted_agent(&server, &model, "intern").await;
    let conversation = conversation(&server, "+14155550102").await;
    fake.script(vec![tool_call("c1", "send_message", json!({"text": "Our hours are 9 to 5."})), say("Drafted a reply.")]);
    let executed = server
        .call(
            Method::POST,
            &format!("/v1/atlas/agents/{id}/execute"),
            Some(&server.admin_key),
            Some(json!({"input": "Reply to the customer.", "conversation_id": conversation})),
        )
        .await;
    assert_eq!(executed.status, StatusCode::OK, "{:?}", executed.body);
    assert_eq!(executed.data()["outcome"], "drafted");
    let call = &executed.data()["tool_calls"][0];
    assert_eq!(call["name"], "draft_message", "governance kept the send as a draft: {call:?}");
    let draft = call["result"]["draft_id"].as_str().unwrap().to_owned();
    assert!(outbound_texts(&server, &conversation).await.is_empty(), "nothing reaches the customer before approval");
    let queue = format!("/v1/atlas/conversations/{conversation}/drafts?state=pending");
    let pending = server.call(Method::GET, &queue, Some(&server.admin_key), None).await;
    assert_eq!(pending.status, StatusCode::OK, "{:?}", pending.body);
    assert_eq!(pending.data()["drafts"][0]["id"], draft.as_str(), "the draft waits in the review queue");
    assert_eq!(pending.data()["drafts"][0]["text"], "Our hours are 9 to 5.");

    // Five people approve at once: one sends, the others are told it is decided.
    let path = format!("/v1/atlas/conversations/{conversation}/drafts/{draft}/approve");
    let approve = || server.call(Method::POST, &path, Some(&server.admin_key), Some(json!({})));
    let (a, b, c, d, e) = tokio::join!(approve(), approve(), approve(), approve(), approve());
    let approvals = [a, b, c, d, e];
    let statuses: Vec<StatusCode> = approvals.iter().map(|a| a.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "one approval wins: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT), "{statuses:?}");
    let approved = approvals.iter().find(|a| a.status == StatusCode::OK).unwrap();
    assert_eq!(approved.data()["state"], "approved");
    let message_id = approved.data()["message_id"].as_str().unwrap().to_owned();
    assert!(message_id.starts_with("msg_"));
    let listed = server.call(Method::GET, &format!("/v1/atlas/conversations/{conversation}/drafts"), Some(&server.admin_key), None).await;
    assert_eq!(listed.data()["drafts"][0]["state"], "approved", "the decision is on the draft");
    assert_eq!(listed.data()["drafts"][0]["message_id"], message_id.as_str(), "with the message it queued");
    assert!(server.call(Method::GET, &queue, Some(&server.admin_key), None).await.data()["drafts"].as_array().unwrap().is_empty());
    let again = server.call(Method::POST, &path, Some(&server.admin_key), Some(json!({"text": "changed"}))).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "CONFLICT"), "{:?}", again.body);
    let rejected = server
        .call(
            Method::POST,
            &format!("/v1/atlas/conversations/{conversation}/drafts/{draft}/reject"),
            Some(&server.admin_key),
            Some(json!({"reason": "late"})),
        )
        .await;
    assert_eq!(rejected.status, StatusCode::CONFLICT);
    assert_eq!(outbound_texts(&server, &conversation).await, ["Our hours are 9 to 5."], "sent exactly once");

    // A rejected draft is never sent.
    fake.script(vec![tool_call("c2", "send_message", json!({"text": "Something wrong"})), say("ok")]);
    let executed = server
        .call(
            Method::POST,
            &format!("/v1/atlas/agents/{id}/execute"),
            Some(&server.admin_key),
            Some(json!({"input": "Again.", "conversation_id": conversation})),
        )
        .await;
    let draft = executed.data()["tool_calls"][0]["result"]["draft_id"].as_str().unwrap().to_owned();
    let rejected = server
        .call(
            Method::POST,
            &format!("/v1/atlas/conversations/{conversation}/drafts/{draft}/reject"),
            Some(&server.admin_key),
            Some(json!({"reason": "wrong"})),
        )
        .await;
    assert_eq!((rejected.status, rejected.data()["state"].as_str()), (StatusCode::OK, Some("rejected")), "{:?}", rejected.body);
    let approve = server
        .call(
            Method::POST,
            &format!("/v1/atlas/conversations/{conversation}/drafts/{draft}/approve"),
            Some(&server.admin_key),
            Some(json!({})),
        )
        .await;
    assert_eq!(approve.status, StatusCode::CONFLICT);
    assert_eq!(outbound_texts(&server, &conversation).await.len(), 1);

    // Another organization cannot approve it.
    let other = server.organization("Other").await;
    let hidden = server
        .call(Method::POST, &format!("/v1/atlas/conversations/{conversation}/drafts/{draft}/approve"), Some(&other), Some(json!({})))
        .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
});

on_both_backends!(a_handoff_stops_every_agent_send_until_release, Options::default(), |server| {
    let (fake, model) = FakeModel::start().await;
    let (id, agent_key) = hosted_agent(&server, &model, "autonomous").await;
    let conversation = conversation(&server, "+14155550103").await;
    let handoff = server
        .call(
            Method::POST,
            "/v1/atlas/actions",
            Some(&server.admin_key),
            Some(json!({"conversation_id": conversation, "action_type": "handoff"})),
        )
        .await;
    assert_eq!(handoff.status, StatusCode::OK, "{:?}", handoff.body);

    // The hosted runtime: the send is refused and the model is told so.
    fake.script(vec![tool_call("c1", "send_message", json!({"text": "Still here!"})), say("I could not send.")]);
    let executed = server
        .call(
            Method::POST,
            &format!("/v1/atlas/agents/{id}/execute"),
            Some(&server.admin_key),
            Some(json!({"input": "Reply.", "conversation_id": conversation})),
        )
        .await;
    assert_eq!(executed.status, StatusCode::OK, "{:?}", executed.body);
    assert_eq!(executed.data()["tool_calls"][0]["result"]["error"]["code"], "CONVERSATION_HANDED_OFF");
    // The tool API with the agent's own credential.
    let tool = server
        .call(
            Method::POST,
            "/agent/v1/tools/send_message",
            Some(&agent_key),
            Some(json!({"conversation_id": conversation, "text": "Hello?"})),
        )
        .await;
    assert_eq!((tool.status, tool.code()), (StatusCode::CONFLICT, "CONVERSATION_HANDED_OFF"), "{:?}", tool.body);
    // A person still sends.
    let person = server
        .call(
            Method::POST,
            "/v1/atlas/actions",
            Some(&server.admin_key),
            Some(json!({"conversation_id": conversation, "action_type": "reply", "payload": {"text": "A person here."}})),
        )
        .await;
    assert_eq!(person.status, StatusCode::ACCEPTED, "{:?}", person.body);
    assert_eq!(outbound_texts(&server, &conversation).await, ["A person here."]);

    let released =
        server.call(Method::POST, &format!("/v1/atlas/conversations/{conversation}/release"), Some(&server.admin_key), None).await;
    assert_eq!((released.status, released.data()["status"].as_str()), (StatusCode::OK, Some("open")), "{:?}", released.body);
    let tool = server
        .call(
            Method::POST,
            "/agent/v1/tools/send_message",
            Some(&agent_key),
            Some(json!({"conversation_id": conversation, "text": "Back again."})),
        )
        .await;
    assert_eq!(tool.status, StatusCode::ACCEPTED, "{:?}", tool.body);
});

on_both_backends!(a_failing_model_is_a_502_and_faq_hands_off_without_knowledge, Options::default(), |server| {
    let (_, model) = FakeModel::start().await;
    let (id, _) = hosted_agent(&server, &model, "autonomous").await;
    let failed =
        server.call(Method::POST, &format!("/v1/atlas/agents/{id}/execute"), Some(&server.admin_key), Some(json!({"input": "Hi"}))).await;
    assert_eq!((failed.status, failed.code()), (StatusCode::BAD_GATEWAY, "PROVIDER_UNAVAILABLE"), "{:?}", failed.body);
    assert_eq!(failed.body["error"]["retryable"], true);
    // A model nobody listens at is the same 502.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (gone, _) = hosted_agent(&server, &format!("http://127.0.0.1:{port}/v1"), "autonomous").await;
    let unreachable =
        server.call(Method::POST, &format!("/v1/atlas/agents/{gone}/execute"), Some(&server.admin_key), Some(json!({"input": "Hi"}))).await;
    assert_eq!((unreachable.status, unreachable.code()), (StatusCode::BAD_GATEWAY, "PROVIDER_UNAVAILABLE"), "{:?}", unreachable.body);
    let blank =
        server.call(Method::POST, &format!("/v1/atlas/agents/{id}/execute"), Some(&server.admin_key), Some(json!({"input": "  "}))).await;
    assert_eq!(blank.status, StatusCode::BAD_REQUEST);

    // The first start shipped the built-in faq agent, serving the sandbox.
    let agents = server.call(Method::GET, "/v1/atlas/agents?q=faq", Some(&server.admin_key), None).await;
    let faq = agents.data()["agents"].as_array().unwrap().first().cloned().expect("the faq agent ships with the first start");
    assert_eq!(faq["hosted"]["model"], "faq");
    let conversation = conversation(&server, "+14155550104").await;
    let executed = server
        .call(
            Method::POST,
            &format!("/v1/atlas/agents/{}/execute", faq["id"].as_str().unwrap()),
            Some(&server.admin_key),
            Some(json!({"input": "What is the meaning of life?", "conversation_id": conversation})),
        )
        .await;
    assert_eq!(executed.status, StatusCode::OK, "{:?}", executed.body);
    assert_eq!(executed.data()["outcome"], "handed_off");
    let shown = server.call(Method::GET, &format!("/v1/atlas/context/{conversation}"), Some(&server.admin_key), None).await;
    assert_eq!(shown.data()["conversation"]["status"], "handed_off", "{:?}", shown.body);
});
