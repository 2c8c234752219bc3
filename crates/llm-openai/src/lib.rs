//! [`OpenAiChat`]: the agents' `ChatModel` port over an OpenAI-compatible
//! `POST {base_url}/chat/completions` (OpenAI, Azure-style gateways, vLLM, Ollama, LiteLLM…).
//! Tools go out as `{"type": "function", "function": {…}}`; the assistant's `tool_calls` and
//! each tool message's `tool_call_id` are carried as they are, so calls and answers stay
//! paired. A transport failure or timeout is `Unreachable`; a non-2xx answer or a body that is
//! no chat completion is `Upstream`.

use async_trait::async_trait;
use atlas_agents::{ChatMessage, ChatModel, ChatReply, ChatRequest, ChatRole, ModelEndpoint, ModelError, ToolCall};
use serde_json::{json, Value};
use std::time::Duration;

/// The most of an error body kept in a message.
const EXCERPT: usize = 300;

/// An OpenAI-compatible chat-completions client.
#[derive(Debug, Clone)]
pub struct OpenAiChat {
    client: reqwest::Client,
}

impl OpenAiChat {
    /// A client whose calls time out after `timeout`.
    ///
    /// # Panics
    /// When the TLS backend cannot be initialised.
    pub fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("Atlas-Agents/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        Self { client }
    }
}

fn role(role: ChatRole) -> &'static str {
    match role {
        ChatRole::System => "system",
        ChatRole::User => "user",
        ChatRole::Assistant => "assistant",
        ChatRole::Tool => "tool",
    }
}

fn message(m: &ChatMessage) -> Value {
    let mut out = json!({"role": role(m.role), "content": m.content});
    if !m.tool_calls.is_empty() {
        out["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        out["tool_call_id"] = json!(id);
    }
    out
}

/// The request body for `request` to `model`.
pub fn request_body(model: &str, request: &ChatRequest) -> Value {
    let mut body = json!({"model": model, "messages": request.messages.iter().map(message).collect::<Vec<_>>()});
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
            .collect();
    }
    body
}

/// Reads a chat completion's first choice.
///
/// # Errors
/// `Upstream` when `body` is no chat completion.
pub fn parse_reply(body: &Value) -> Result<ChatReply, ModelError> {
    let message = body.pointer("/choices/0/message").ok_or_else(|| ModelError::Upstream("the answer has no choices[0].message".into()))?;
    let content = message.get("content").and_then(Value::as_str).map(str::to_owned);
    let mut tool_calls = Vec::new();
    for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let id = call.get("id").and_then(Value::as_str);
        let name = call.pointer("/function/name").and_then(Value::as_str);
        let (Some(id), Some(name)) = (id, name) else {
            return Err(ModelError::Upstream("a tool call without id or function.name".into()));
        };
        let arguments = match call.pointer("/function/arguments") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "{}".to_owned(),
        };
        tool_calls.push(ToolCall { id: id.to_owned(), name: name.to_owned(), arguments });
    }
    Ok(ChatReply { content, tool_calls })
}

#[async_trait]
impl ChatModel for OpenAiChat {
    async fn complete(&self, endpoint: &ModelEndpoint, request: &ChatRequest) -> Result<ChatReply, ModelError> {
        let url = format!("{}/chat/completions", endpoint.base_url.trim_end_matches('/'));
        let mut call = self.client.post(&url).json(&request_body(&endpoint.model, request));
        if let Some(key) = &endpoint.api_key {
            call = call.bearer_auth(key);
        }
        let response = call.send().await.map_err(|e| ModelError::Unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| ModelError::Unreachable(e.to_string()))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let excerpt: String = text.chars().take(EXCERPT).collect();
            return Err(ModelError::Upstream(format!("HTTP {status}: {excerpt}")));
        }
        let body: Value = serde_json::from_slice(&bytes).map_err(|e| ModelError::Upstream(format!("the answer is not JSON: {e}")))?;
        parse_reply(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_agents::ToolDefinition;

    #[test]
    fn tool_calls_and_tool_messages_keep_their_ids() {
        let request = ChatRequest {
            messages: vec![
                ChatMessage {
                    role: ChatRole::Assistant,
                    content: None,
                    tool_calls: vec![ToolCall { id: "call_1".into(), name: "search_knowledge".into(), arguments: "{\"q\":\"x\"}".into() }],
                    tool_call_id: None,
                },
                ChatMessage {
                    role: ChatRole::Tool,
                    content: Some("{}".into()),
                    tool_calls: Vec::new(),
                    tool_call_id: Some("call_1".into()),
                },
            ],
            tools: vec![ToolDefinition { name: "search_knowledge".into(), description: "d".into(), parameters: json!({"type": "object"}) }],
        };
        let body = request_body("m", &request);
        assert_eq!(body["messages"][0]["tool_calls"][0]["id"], "call_1");
        assert_eq!(body["messages"][1]["tool_call_id"], "call_1");
        assert_eq!(body["tools"][0]["function"]["name"], "search_knowledge");
    }

    #[test]
    fn a_reply_without_choices_is_an_upstream_error() {
        assert!(matches!(parse_reply(&json!({"error": "x"})), Err(ModelError::Upstream(_))));
        let reply = parse_reply(&json!({"choices": [{"message": {"content": null, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "handoff", "arguments": "{}"}}]}}]}))
        .unwrap();
        assert_eq!(reply.tool_calls[0].name, "handoff");
    }
}
