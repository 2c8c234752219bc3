//! The MCP server at `/mcp`, end to end with the `rmcp` crate's own client over streamable
//! HTTP: `initialize`, `tools/list` (filtered by the key's scopes), `tools/call` (a knowledge
//! search and a send that succeed, a send the window refuses and a tool the key's scopes do not
//! allow, both as `isError: true` results with the API error code), a run per call, a missing
//! or bad token (401 with `WWW-Authenticate`), and a `Host` that is not allowed (403).

use atlas_e2e::{on_both_backends, Options, TestServer};
use reqwest::{Method, StatusCode};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Map, Value};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#;

async fn client(server: &TestServer, key: &str) -> RunningService<RoleClient, ()> {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", server.base)).auth_header(key.to_owned());
    ().serve(StreamableHttpClientTransport::from_config(config)).await.expect("the MCP handshake succeeds")
}

async fn call(client: &RunningService<RoleClient, ()>, name: &'static str, arguments: Value) -> CallToolResult {
    let arguments: Map<String, Value> = arguments.as_object().cloned().unwrap_or_default();
    client.call_tool(CallToolRequestParams::new(name).with_arguments(arguments)).await.expect("the call is answered")
}

fn structured(result: &CallToolResult) -> &Value {
    result.structured_content.as_ref().expect("a structured result")
}

on_both_backends!(mcp_initialize_list_and_call, Options::default(), |server| {
    let (_, key) = server.mint(&["atlas.actions.execute", "atlas.knowledge.read", "atlas.knowledge.write"]).await;
    let doc = json!({"title": "Opening hours", "content": "We are open Monday to Saturday from 9am to 6pm."});
    assert_eq!(server.call(Method::POST, "/v1/atlas/knowledge", Some(&key), Some(doc)).await.status, StatusCode::CREATED);
    // A customer wrote, so the window is open in that conversation.
    let event = json!({"channel": "whatsapp", "customer": {"phone_number": "+14155550100"}, "event_type": "message.received", "message": {"text": "Open on Saturday?"}});
    let received = server.call(Method::POST, "/v1/atlas/events", Some(&server.admin_key), Some(event)).await;
    let conversation = received.data()["conversation_id"].as_str().unwrap().to_owned();

    let mcp = client(&server, &key).await;
    let info = mcp.peer_info().expect("the server introduced itself");
    assert_eq!(info.server_info.as_ref().map(|i| i.name.as_str()), Some("atlas"));
    assert!(info.capabilities.tools.is_some());

    let tools = mcp.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in ["search_knowledge", "send_message", "send_message_to_phone", "draft_message", "handoff", "get_message_status"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    assert!(!names.contains(&"create_incident") && !names.contains(&"get_conversation"), "filtered by scopes: {names:?}");
    let search = tools.iter().find(|t| t.name == "search_knowledge").unwrap();
    assert_eq!(search.input_schema.get("type"), Some(&json!("object")));
    assert_eq!(search.input_schema["required"], json!(["query"]));

    let found = call(&mcp, "search_knowledge", json!({"query": "open on saturday"})).await;
    assert_ne!(found.is_error, Some(true), "{found:?}");
    assert_eq!(structured(&found)["results"][0]["title"], "Opening hours");

    let sent =
        call(&mcp, "send_message", json!({"conversation_id": conversation, "text": "Yes, from 9am.", "idempotency_key": "mcp-send-1"}))
            .await;
    assert_ne!(sent.is_error, Some(true), "{sent:?}");
    assert_eq!(structured(&sent)["queued"], true);
    assert_eq!(structured(&sent)["conversation_id"], conversation.as_str());
    let again =
        call(&mcp, "send_message", json!({"conversation_id": conversation, "text": "Yes, from 9am.", "idempotency_key": "mcp-send-1"}))
            .await;
    assert_eq!(structured(&again)["message_id"], structured(&sent)["message_id"], "the same key replays the first send");

    // A new number has no open window: free-form text is refused, as a tool error.
    let refused = call(&mcp, "send_message_to_phone", json!({"phone_number": "+14155550199", "text": "Hello"})).await;
    assert_eq!(refused.is_error, Some(true), "{refused:?}");
    assert_eq!(structured(&refused)["error"]["code"], "WINDOW_CLOSED");
    // A tool the key's scopes do not allow is refused the same way.
    let forbidden = call(&mcp, "create_incident", json!({"title": "x", "severity": "P3"})).await;
    assert_eq!(forbidden.is_error, Some(true));
    assert_eq!(structured(&forbidden)["error"]["code"], "FORBIDDEN");
    let invalid = call(&mcp, "search_knowledge", json!({"query": "x", "bogus": 1})).await;
    assert_eq!(invalid.is_error, Some(true));
    assert_eq!(structured(&invalid)["error"]["code"], "VALIDATION_ERROR");
    let unknown = mcp.call_tool(CallToolRequestParams::new("no_such_tool")).await;
    assert!(unknown.is_err(), "an unknown tool is a protocol error");

    for (operation, count) in [("tools.search_knowledge", 2), ("tools.send_message", 1), ("tools.send_message_to_phone", 1)] {
        let runs = server.call(Method::GET, &format!("/v1/atlas/runs?operation={operation}"), Some(&server.admin_key), None).await;
        assert_eq!(runs.data()["runs"].as_array().unwrap().len(), count, "{operation}: {:?}", runs.body);
    }
    let failed = server.call(Method::GET, "/v1/atlas/runs?operation=tools.send_message_to_phone", Some(&server.admin_key), None).await;
    assert_eq!(failed.data()["runs"][0]["status"], "failed");
    mcp.cancel().await.ok();
    server.stop().await;
});

#[tokio::test]
async fn mcp_needs_a_bearer_token_and_an_allowed_host() {
    let server = TestServer::sqlite().await;
    let url = format!("{}/mcp", server.base);
    let post = |token: Option<&str>| {
        let mut request = server
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(INITIALIZE);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send()
    };
    for token in [None, Some("atlas_sk_not_a_real_key_0000000000000000")] {
        let answer = post(token).await.unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        let challenge = answer.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    let ok = post(Some(&server.admin_key)).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "JSON responses");
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["result"]["serverInfo"]["name"], "atlas");

    let rebinding = server
        .http
        .post(&url)
        .header("host", "evil.example.com")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(&server.admin_key)
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(rebinding.status(), StatusCode::FORBIDDEN, "a Host outside ATLAS_MCP_ALLOWED_HOSTS is refused");
    // The REST error handling is untouched: an unknown path is still the envelope's 404.
    assert_eq!(server.call(Method::GET, "/mcpx", Some(&server.admin_key), None).await.status, StatusCode::NOT_FOUND);
    server.stop().await;
}
