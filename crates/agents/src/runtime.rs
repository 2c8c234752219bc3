//! The agent runtime: the ports it drives ([`ChatModel`] for an OpenAI-compatible chat model,
//! [`ToolRunner`] for the one tool registry, [`KnowledgeSearch`], [`Outbound`] for where a
//! reply goes: a real conversation or a test session), the hosted tool-call loop (at most
//! [`MAX_STEPS`] model calls) and the built-in `faq` engine (no LLM). The messaging tools
//! (`send_message`, `draft_message`, `handoff`) are applied under governance through
//! [`Outbound`]; every other tool goes to the registry.

use crate::governance::{govern, Disposition};
use crate::model::{Maturity, Outcome, ToolCallRecord};
use async_trait::async_trait;
use atlas_conversations::ConversationId;
use atlas_kernel::OrgId;
use atlas_scopes::Principal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thiserror::Error;

/// At most this many model calls per execution.
pub const MAX_STEPS: usize = 6;
/// The `faq` engine answers with a knowledge chunk scoring at least this (scores are in [0, 1]).
pub const FAQ_THRESHOLD: f64 = 0.3;

/// Who says a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatRole {
    System,
    User,
    Assistant,
    Tool,
}

/// A tool call the model asked for: its id, the tool, the arguments as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: Option<String>,
    /// An assistant message's tool calls.
    pub tool_calls: Vec<ToolCall>,
    /// A tool message answers the call with this id.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    fn text(role: ChatRole, content: impl Into<String>) -> Self {
        Self { role, content: Some(content.into()), tool_calls: Vec::new(), tool_call_id: None }
    }
}

/// A tool as the model is told about it (OpenAI function shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

/// Where and what a hosted agent's model is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEndpoint {
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
}

/// One chat-completions request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolDefinition>,
}

/// The model's answer: text, tool calls, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatReply {
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
}

/// Why the model gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    /// Unreachable or timed out (503).
    #[error("the model endpoint is unreachable: {0}")]
    Unreachable(String),
    /// It answered with an error or something that is not a chat completion (502).
    #[error("the model endpoint answered with an error: {0}")]
    Upstream(String),
}

/// An OpenAI-compatible chat model.
#[async_trait]
pub trait ChatModel: Send + Sync + std::fmt::Debug {
    /// One chat completion.
    ///
    /// # Errors
    /// `Unreachable` or `Upstream`.
    async fn complete(&self, endpoint: &ModelEndpoint, request: &ChatRequest) -> Result<ChatReply, ModelError>;
}

/// A refusal or failure of a tool, as the model (and the answer) sees it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{code}: {message}")]
pub struct ToolFailure {
    pub code: String,
    pub message: String,
}

impl ToolFailure {
    /// A failure with this code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }
}

/// The one tool registry, as the runtime uses it (the server implements it over its tool host).
#[async_trait]
pub trait ToolRunner: Send + Sync + std::fmt::Debug {
    /// The tools `caller` may use.
    fn tools(&self, caller: &Principal) -> Vec<ToolDefinition>;

    /// Runs a tool as `caller`, writing the call's own `tools.<name>` run.
    ///
    /// # Errors
    /// The tool's refusal or failure.
    async fn run(&self, caller: &Principal, name: &str, arguments: Value) -> Result<Value, ToolFailure>;
}

/// One knowledge search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeHit {
    pub title: String,
    pub content: String,
    /// In [0, 1].
    pub score: f64,
    pub document_id: String,
}

/// The knowledge base, as the `faq` engine uses it.
#[async_trait]
pub trait KnowledgeSearch: Send + Sync + std::fmt::Debug {
    /// The best chunks for `query`, best first.
    ///
    /// # Errors
    /// A description of the failure.
    async fn search(&self, org_id: OrgId, query: &str, limit: u32) -> Result<Vec<KnowledgeHit>, ToolFailure>;
}

/// Where an agent's replies go: a real conversation (WhatsApp or sandbox, through the
/// messaging use cases) or a test session. Each call returns what the tool answer shows.
#[async_trait]
pub trait Outbound: Send + Sync + std::fmt::Debug {
    /// Sends `text` to the customer.
    ///
    /// # Errors
    /// `CONVERSATION_HANDED_OFF`, `WINDOW_CLOSED`, … as the send refused.
    async fn send(&self, text: &str) -> Result<Value, ToolFailure>;

    /// Keeps `text` as a draft for a person to approve.
    ///
    /// # Errors
    /// As the draft refused.
    async fn draft(&self, text: &str) -> Result<Value, ToolFailure>;

    /// Hands the conversation to a person.
    ///
    /// # Errors
    /// As the handoff refused.
    async fn handoff(&self, reason: Option<&str>) -> Result<Value, ToolFailure>;

    /// Whether each call writes its own `tools.*` run (a conversation's does; a test session
    /// keeps events instead, and the execution writes the runs).
    fn journals(&self) -> bool {
        false
    }
}

/// What one execution did.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub answer: Option<String>,
    pub tool_calls: Vec<ToolCallRecord>,
    pub outcome: Outcome,
    /// Model calls made.
    pub steps: usize,
    /// A supervised agent's reply that went out and waits for review.
    pub flagged: bool,
}

impl Execution {
    /// Whether a person has to act (a draft to approve, a handoff).
    pub fn needs_person(&self) -> bool {
        matches!(self.outcome, Outcome::Drafted | Outcome::HandedOff)
    }
}

/// One run of an agent.
#[derive(Debug)]
pub struct Turn<'a> {
    pub caller: &'a Principal,
    pub maturity: Maturity,
    pub system_prompt: Option<&'a str>,
    pub input: &'a str,
    /// The conversation it runs on (told to the model), if any.
    pub conversation_id: Option<ConversationId>,
    /// Where replies go; `None` (a bare execute) leaves the messaging tools unavailable.
    pub outbound: Option<&'a dyn Outbound>,
    /// Whether the final answer is itself the reply to deliver (inbound message, session).
    pub reply_with_answer: bool,
}

/// Tools the runtime applies itself, under governance.
const MESSAGING_TOOLS: [&str; 3] = ["send_message", "draft_message", "handoff"];

#[derive(Debug, Default)]
struct Progress {
    calls: Vec<ToolCallRecord>,
    sent: bool,
    drafted: bool,
    handed_off: bool,
    flagged: bool,
}

impl Progress {
    fn outcome(&self, answered: bool) -> Outcome {
        if self.handed_off {
            Outcome::HandedOff
        } else if self.drafted {
            Outcome::Drafted
        } else if answered || self.sent {
            Outcome::Answered
        } else {
            Outcome::StepLimit
        }
    }

    /// Records a call the execution itself must journal.
    fn record(&mut self, id: &str, name: &str, arguments: Value, result: Result<Value, ToolFailure>) -> Value {
        self.record_as(id, name, arguments, result, false)
    }

    /// Records a call; `journaled` when whatever ran it wrote its run.
    fn record_as(&mut self, id: &str, name: &str, arguments: Value, result: Result<Value, ToolFailure>, journaled: bool) -> Value {
        let (ok, shown) = match result {
            Ok(v) => (true, v),
            Err(f) => (false, json!({"error": {"code": f.code, "message": f.message}})),
        };
        self.calls.push(ToolCallRecord { id: id.to_owned(), name: name.to_owned(), arguments, result: shown.clone(), ok, journaled });
        shown
    }
}

/// Delivers `text` as a reply under governance; records it as a tool call.
async fn deliver(progress: &mut Progress, outbound: &dyn Outbound, maturity: Maturity, id: &str, text: &str) -> Value {
    let disposition = govern(maturity);
    let (name, result) = match disposition {
        Disposition::Draft => ("draft_message", outbound.draft(text).await),
        Disposition::SendFlagged | Disposition::Send => ("send_message", outbound.send(text).await),
    };
    if result.is_ok() {
        match disposition {
            Disposition::Draft => progress.drafted = true,
            Disposition::SendFlagged => {
                progress.sent = true;
                progress.flagged = true;
            }
            Disposition::Send => progress.sent = true,
        }
    }
    progress.record_as(id, name, json!({"text": text}), result, outbound.journals())
}

fn text_argument(arguments: &Value) -> Result<String, ToolFailure> {
    match arguments.get("text").and_then(Value::as_str).map(str::trim) {
        Some(t) if !t.is_empty() => Ok(t.to_owned()),
        _ => Err(ToolFailure::new("VALIDATION_ERROR", "text: must be a non-blank string")),
    }
}

async fn messaging_tool(progress: &mut Progress, turn: &Turn<'_>, call: &ToolCall, arguments: Value) -> Value {
    let Some(outbound) = turn.outbound else {
        let failure = ToolFailure::new("VALIDATION_ERROR", "this execution has no conversation to reply in");
        return progress.record(&call.id, &call.name, arguments, Err(failure));
    };
    match call.name.as_str() {
        "handoff" => {
            let reason = arguments.get("reason").and_then(Value::as_str).map(str::to_owned);
            let result = outbound.handoff(reason.as_deref()).await;
            if result.is_ok() {
                progress.handed_off = true;
            }
            progress.record_as(&call.id, &call.name, arguments, result, outbound.journals())
        }
        "draft_message" => match text_argument(&arguments) {
            Ok(text) => {
                let result = outbound.draft(&text).await;
                if result.is_ok() {
                    progress.drafted = true;
                }
                progress.record_as(&call.id, &call.name, arguments, result, outbound.journals())
            }
            Err(f) => progress.record(&call.id, &call.name, arguments, Err(f)),
        },
        _ => match text_argument(&arguments) {
            // send_message: governance decides whether it goes out or waits as a draft.
            Ok(text) => {
                // The record names what happened (`draft_message` when governance kept it).
                let shown = deliver(progress, outbound, turn.maturity, &call.id, &text).await;
                if let Some(last) = progress.calls.last_mut() {
                    last.arguments = arguments;
                }
                shown
            }
            Err(f) => progress.record(&call.id, &call.name, arguments, Err(f)),
        },
    }
}

fn system_prompt(turn: &Turn<'_>) -> String {
    let mut prompt = turn.system_prompt.unwrap_or("You are a helpful customer-service agent.").to_owned();
    if let Some(id) = turn.conversation_id {
        prompt.push_str(&format!("\nYou are answering in conversation {id}. Reply with the send_message tool."));
    }
    prompt
}

/// The hosted loop: the model is called with the caller's tools at most [`MAX_STEPS`] times;
/// each tool call it asks for is run (messaging tools under governance) and answered with a
/// tool message carrying the call's id; a reply without tool calls is the answer.
///
/// # Errors
/// The model's failure (`ModelError`); tool failures are shown to the model, not returned.
pub async fn run_hosted(
    model: &dyn ChatModel,
    endpoint: &ModelEndpoint,
    tools: &dyn ToolRunner,
    turn: &Turn<'_>,
) -> Result<Execution, ModelError> {
    let mut definitions = tools.tools(turn.caller);
    if turn.outbound.is_some() {
        for name in MESSAGING_TOOLS {
            if !definitions.iter().any(|d| d.name == name) {
                definitions.push(messaging_definition(name));
            }
        }
    } else {
        definitions.retain(|d| !MESSAGING_TOOLS.contains(&d.name.as_str()));
    }
    let mut messages = vec![ChatMessage::text(ChatRole::System, system_prompt(turn)), ChatMessage::text(ChatRole::User, turn.input)];
    let mut progress = Progress::default();
    let mut answer = None;
    let mut steps = 0;
    while steps < MAX_STEPS {
        steps += 1;
        let reply = model.complete(endpoint, &ChatRequest { messages: messages.clone(), tools: definitions.clone() }).await?;
        if reply.tool_calls.is_empty() {
            answer = reply.content.filter(|c| !c.trim().is_empty());
            break;
        }
        messages.push(ChatMessage {
            role: ChatRole::Assistant,
            content: reply.content.clone(),
            tool_calls: reply.tool_calls.clone(),
            tool_call_id: None,
        });
        for call in &reply.tool_calls {
            let shown = match serde_json::from_str::<Value>(&call.arguments) {
                Err(e) => {
                    let failure = ToolFailure::new("VALIDATION_ERROR", format!("arguments are not JSON: {e}"));
                    progress.record(&call.id, &call.name, Value::Null, Err(failure))
                }
                Ok(arguments) if MESSAGING_TOOLS.contains(&call.name.as_str()) => {
                    messaging_tool(&mut progress, turn, call, arguments).await
                }
                Ok(arguments) => {
                    let result = tools.run(turn.caller, &call.name, arguments.clone()).await;
                    progress.record_as(&call.id, &call.name, arguments, result, true)
                }
            };
            messages.push(ChatMessage {
                role: ChatRole::Tool,
                content: Some(shown.to_string()),
                tool_calls: Vec::new(),
                tool_call_id: Some(call.id.clone()),
            });
        }
    }
    if let (Some(text), Some(outbound), true) = (&answer, turn.outbound, turn.reply_with_answer) {
        if !progress.sent && !progress.drafted && !progress.handed_off {
            deliver(&mut progress, outbound, turn.maturity, "answer", text).await;
        }
    }
    let outcome = progress.outcome(answer.is_some());
    Ok(Execution { answer, tool_calls: progress.calls, outcome, steps, flagged: progress.flagged })
}

/// The built-in `faq` engine (no LLM): the best knowledge chunk for the input, when it scores
/// at least `threshold`, is the answer (delivered under governance when there is somewhere to
/// reply); otherwise the conversation is handed to a person.
pub async fn run_faq(knowledge: &dyn KnowledgeSearch, turn: &Turn<'_>, threshold: f64) -> Execution {
    let mut progress = Progress::default();
    let arguments = json!({"query": turn.input, "limit": 1});
    let hits = knowledge.search(turn.caller.org_id, turn.input, 1).await;
    let best = hits.as_ref().ok().and_then(|h| h.first().cloned()).filter(|h| h.score >= threshold);
    let shown = hits.map(|h| json!({"results": h}));
    progress.record("faq_search", "search_knowledge", arguments, shown);
    let answer = best.map(|hit| hit.content);
    if let Some(outbound) = turn.outbound {
        match &answer {
            Some(text) => {
                deliver(&mut progress, outbound, turn.maturity, "faq_reply", text).await;
            }
            None => {
                let reason = "no knowledge answers this well enough";
                let result = outbound.handoff(Some(reason)).await;
                if result.is_ok() {
                    progress.handed_off = true;
                }
                progress.record_as("faq_handoff", "handoff", json!({"reason": reason}), result, outbound.journals());
            }
        }
    }
    let outcome = if answer.is_none() && turn.outbound.is_none() { Outcome::HandedOff } else { progress.outcome(answer.is_some()) };
    Execution { answer, tool_calls: progress.calls, outcome, steps: 0, flagged: progress.flagged }
}

/// The messaging tools' definitions, for a runtime whose registry lacks them.
pub fn messaging_definition(name: &str) -> ToolDefinition {
    let (description, parameters) = match name {
        "handoff" => (
            "Hand the conversation to a person; no agent replies in it until a person releases it.",
            json!({"type": "object", "properties": {"reason": {"type": "string"}}, "additionalProperties": false}),
        ),
        "draft_message" => (
            "Keep a reply as a draft for a person to approve.",
            json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"], "additionalProperties": true}),
        ),
        _ => (
            "Send a text reply to the customer in this conversation.",
            json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"], "additionalProperties": true}),
        ),
    };
    ToolDefinition { name: name.to_owned(), description: description.to_owned(), parameters }
}

#[cfg(test)]
mod tests;
