//! Test sessions (seed 000): an agent on a conversation with no WhatsApp, through the same
//! runtime (the session is its outbound side). Open, list, read, delete; post a message as
//! the customer and get the agent's messages, tool calls, drafts and handoff; read the events;
//! stream them as server-sent events with a keep-alive (resuming after `Last-Event-ID`).
//! Scopes `atlas.sessions.read|write`.

use crate::agents::{begin, execution_answer, runtime, ExecutionAnswer};
use crate::auth::Caller;
use crate::contract::Example;
use crate::envelope::Envelope;
use crate::error::ApiError;
use crate::extract::{JsonBody, PageQuery, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_agents::{AgentId, Executed, Session, SessionEvent, SessionId};
use atlas_kernel::PageRequest;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// The handler of a session route, if `operation` is one.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "sessions.create" => on(filter, create),
        "sessions.list" => on(filter, list),
        "sessions.get" => on(filter, get),
        "sessions.delete" => on(filter, delete),
        "sessions.messages.create" => on(filter, post_message),
        "sessions.messages.list" => on(filter, events),
        "sessions.stream" => on(filter, stream),
        _ => return None,
    })
}

/// `POST /v1/atlas/sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionBody {
    #[serde(alias = "agentId")]
    #[schema(value_type = String)]
    pub agent_id: AgentId,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

impl Example for SessionBody {
    fn example() -> Value {
        json!({"agent_id": "agt_0190c9a8f2a47c3d9a1b2c3d4e5f6a7b"})
    }
}

fn example_session() -> Value {
    json!({"id": "ses_0190c9a8f2a47c3d9a1b2c3d4e5f6a7b", "agent_id": "agt_0190c9a8f2a47c3d9a1b2c3d4e5f6a7b",
           "handed_off": false, "created_at": "2026-04-07T12:00:00Z"})
}

impl Example for Session {
    fn example() -> Value {
        example_session()
    }
}

/// A page of sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<Session>,
    pub next_cursor: Option<String>,
}

impl Example for SessionList {
    fn example() -> Value {
        json!({"sessions": [example_session()], "next_cursor": null})
    }
}

fn session_id(text: &str) -> Result<SessionId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("session"))
}

async fn create(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<SessionBody>) -> Response {
    let mutation = begin!(state, "sessions.create", caller, headers, &body.raw);
    let journal = |s: &Session| {
        let location = format!("/v1/atlas/sessions/{}", s.id);
        mutation.entry(None, None, StatusCode::CREATED, &json!(s), Some(s.id.to_string()), Some(location))
    };
    match state.agents.open_session(caller.org_id, body.value.agent_id, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn list(State(state): State<AppState>, Caller(caller): Caller, QueryParams(q): QueryParams<PageQuery>) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = state.agents.sessions(caller.org_id, &page).await?;
    Ok(Envelope::ok(SessionList { sessions: found.items, next_cursor: found.next_cursor }).into_response())
}

async fn get(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let session = state.agents.session(caller.org_id, session_id(&id)?).await?;
    Ok(Envelope::ok(session).into_response())
}

async fn delete(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let id = match session_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "sessions.delete", caller, headers, &Value::Null);
    let entry = mutation.entry(None, None, StatusCode::OK, &json!({"id": id, "deleted": true}), Some(id.to_string()), None);
    match state.agents.close_session(caller.org_id, id, &entry).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// The answer of a deletion.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedSession {
    pub id: String,
    pub deleted: bool,
}

impl Example for DeletedSession {
    fn example() -> Value {
        json!({"id": "ses_0190c9a8f2a47c3d9a1b2c3d4e5f6a7b", "deleted": true})
    }
}

/// `POST /v1/atlas/sessions/:id/messages`: the tester writes as the customer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionMessageBody {
    pub text: String,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

impl Example for SessionMessageBody {
    fn example() -> Value {
        json!({"text": "What are your opening hours?"})
    }
}

/// What the agent did with one session message.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionReply {
    pub session_id: String,
    /// The texts the agent sent.
    pub messages: Vec<String>,
    /// The texts it kept as drafts (student, intern).
    pub drafts: Vec<String>,
    /// Whether it handed the session to a person.
    pub handoff: bool,
    /// The execution (answer, tool calls, outcome, run).
    pub execution: ExecutionAnswer,
}

impl Example for SessionReply {
    fn example() -> Value {
        json!({"session_id": "ses_0190c9a8f2a47c3d9a1b2c3d4e5f6a7b", "messages": ["We open at 9."], "drafts": [], "handoff": false,
               "execution": ExecutionAnswer::example()})
    }
}

fn texts(executed: &Executed, tool: &str) -> Vec<String> {
    executed
        .execution
        .tool_calls
        .iter()
        .filter(|c| c.ok && c.name == tool)
        .filter_map(|c| c.arguments.get("text").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

fn session_reply(id: SessionId, executed: &Executed, run: &Value) -> SessionReply {
    SessionReply {
        session_id: id.to_string(),
        messages: texts(executed, "send_message"),
        drafts: texts(executed, "draft_message"),
        handoff: executed.execution.tool_calls.iter().any(|c| c.ok && c.name == "handoff"),
        execution: execution_answer(executed, run),
    }
}

async fn post_message(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<SessionMessageBody>,
) -> Response {
    let id = match session_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "sessions.messages.create", caller, headers, &body.raw);
    let run = mutation.run_summary();
    let journal = |executed: &Executed| {
        mutation.entry(None, None, StatusCode::OK, &json!(session_reply(id, executed, &run)), Some(executed.episode.id.to_string()), None)
    };
    let runtime = runtime(&state);
    let outcome = state.agents.session_message(&runtime, &caller, id, &body.value.text, &journal).await;
    state.wake.sessions.notify_waiters();
    match outcome {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// `GET /v1/atlas/sessions/:id/messages` query: events after the cursor (a sequence number).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of session events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<SessionEvent>,
    pub next_cursor: Option<String>,
}

impl Example for EventList {
    fn example() -> Value {
        json!({"events": [{"seq": 1, "kind": "customer_message", "data": {"text": "Hi"}, "at": "2026-04-07T12:00:00Z"}], "next_cursor": null})
    }
}

fn after(cursor: Option<&str>) -> Result<i64, ApiError> {
    match cursor {
        None => Ok(0),
        Some(c) => c
            .strip_prefix("seq_")
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::field("cursor", "the cursor is not one this server issued")),
    }
}

async fn events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<EventsQuery>,
) -> Result<Response, ApiError> {
    let id = session_id(&id)?;
    let limit = match q.limit {
        None => 50,
        Some(n @ 1..=200) => n as u32,
        Some(_) => return Err(ApiError::field("limit", "must be between 1 and 200")),
    };
    let from = after(q.cursor.as_deref())?;
    let mut found = state.agents.session_events(caller.org_id, id, from, limit + 1).await?;
    let more = found.len() > limit as usize;
    found.truncate(limit as usize);
    let next_cursor = if more { found.last().map(|e| format!("seq_{}", e.seq)) } else { None };
    Ok(Envelope::ok(EventList { events: found, next_cursor }).into_response())
}

/// How long the stream waits for a wake-up before it looks at the store again (events written
/// by another replica wake nobody here).
const STREAM_POLL: Duration = Duration::from_secs(1);

async fn stream(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let id = match session_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = state.agents.session(caller.org_id, id).await {
        return ApiError::from(e).into_response();
    }
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let org = caller.org_id;
    let events = futures_util::stream::unfold((state, last, Vec::<SessionEvent>::new()), move |(state, mut last, mut queue)| async move {
        loop {
            if !queue.is_empty() {
                let event = queue.remove(0);
                last = event.seq;
                let sse = Event::default()
                    .id(event.seq.to_string())
                    .event(event.kind.as_str())
                    .data(serde_json::to_string(&event).unwrap_or_default());
                return Some((Ok::<_, Infallible>(sse), (state, last, queue)));
            }
            let wake = state.wake.sessions.notified();
            match state.agents.session_events(org, id, last, 100).await {
                Ok(found) if !found.is_empty() => queue = found,
                Ok(_) => {
                    let _ = tokio::time::timeout(STREAM_POLL, wake).await;
                }
                // The session was deleted (or the store failed): the stream ends.
                Err(_) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keep-alive")).into_response()
}

/// The stream (text/event-stream), described per event as readers of server-sent events (and
/// schemathesis) parse it: `id` (the event's `seq`), `event` (its kind) and `data` (the event as
/// JSON: `seq`, `kind`, `data`, `at`); `: keep-alive` comments carry no event.
pub const STREAM: crate::contract::Payload = crate::contract::Payload::foreign(
    |_| {
        json!({
            "type": "object",
            "description": "One server-sent event of the session.",
            "properties": {
                "id": {"type": "string", "description": "The event's sequence number (resume with Last-Event-ID)."},
                "event": {"type": "string", "description": "The event's kind, such as customer_message or agent_message."},
                "data": {"type": "string", "description": "The event as JSON: seq, kind, data, at."},
                "retry": {"type": "integer"}
            }
        })
    },
    || {
        json!({"id": "1", "event": "customer_message",
               "data": "{\"seq\":1,\"kind\":\"customer_message\",\"data\":{\"text\":\"Hi\"},\"at\":\"2026-04-07T12:00:00Z\"}"})
    },
);
