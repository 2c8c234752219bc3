//! Conversations: the list, a conversation's messages, the context an agent reads, and
//! `POST /v1/atlas/conversations/{id}/read` (the latest inbound message marked read at Meta,
//! through the outbox).

use super::{now, PageQuery};
use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_conversations::{ConversationId, ConversationView, Customer, Message, MessageId, OutboxId, ReadQueued};
use atlas_kernel::PageRequest;
use atlas_runs::RunStatus;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// A page of conversations, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationList {
    /// Each with its customer, channel, status and window.
    #[schema(value_type = Vec<Object>)]
    pub conversations: Vec<ConversationView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A page of a conversation's messages, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageList {
    /// Each with its direction, kind, rich `content` and delivery state.
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<Message>,
    pub next_cursor: Option<String>,
}

/// What an agent reads before acting: the conversation, its customer, the 20 latest messages
/// and knowledge grounding: the best knowledge chunks for the customer's latest inbound text
/// (none when there is no such text or no matching knowledge).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Context {
    #[schema(value_type = Object)]
    pub conversation: ConversationView,
    #[schema(value_type = Object)]
    pub customer: Customer,
    #[schema(value_type = Vec<Object>)]
    pub recent_messages: Vec<Message>,
    pub knowledge: Vec<atlas_knowledge::SearchHit>,
}

pub(super) async fn list_conversations(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let now = now(&state);
    let conversations = state.messaging.conversations(caller.org_id, &page).await?.map(|c| c.view(now));
    Ok(Envelope::ok(ConversationList { conversations: conversations.items, next_cursor: conversations.next_cursor }).into_response())
}

fn conversation_id(id: &str) -> Result<ConversationId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("conversation"))
}

pub(super) async fn list_messages(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let id = conversation_id(&id)?;
    state.messaging.conversation(caller.org_id, id).await?;
    let messages = state.messaging.messages(caller.org_id, id, &page).await?;
    Ok(Envelope::ok(MessageList { messages: messages.items, next_cursor: messages.next_cursor }).into_response())
}

/// How many knowledge chunks the context carries.
pub(crate) const CONTEXT_KNOWLEDGE: u32 = 3;

/// The context of conversation `id` for `caller`: the one read the context route and the
/// `get_conversation` tool share.
pub(crate) async fn load_context(state: &AppState, caller: &atlas_scopes::Principal, id: ConversationId) -> Result<Context, ApiError> {
    let conversation = state.messaging.conversation(caller.org_id, id).await?;
    let recent = state.messaging.messages(caller.org_id, id, &PageRequest { limit: 20, after: None }).await?;
    let view = conversation.view(now(state));
    // Messages come newest first: the first inbound one with text is the latest.
    let latest_text = recent
        .items
        .iter()
        .filter(|m| m.direction == atlas_conversations::Direction::Inbound)
        .find_map(|m| m.text.clone().or_else(|| m.content.as_ref().and_then(|c| c.text())).filter(|t| !t.trim().is_empty()));
    let knowledge = match latest_text {
        Some(text) => crate::knowledge::search_hits(state, caller.org_id, &text, Some(CONTEXT_KNOWLEDGE)).await?,
        None => Vec::new(),
    };
    Ok(Context { conversation: view, customer: conversation.customer, recent_messages: recent.items, knowledge })
}

pub(super) async fn context(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = conversation_id(&id)?;
    Ok(Envelope::ok(load_context(&state, &caller, id).await?).into_response())
}

/// The answer of `POST /v1/atlas/conversations/{id}/read` (202).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadAnswer {
    #[schema(value_type = String)]
    pub conversation_id: ConversationId,
    /// The inbound message marked read.
    #[schema(value_type = String)]
    pub message_id: MessageId,
    pub provider_message_id: String,
    #[schema(value_type = String)]
    pub outbox_id: OutboxId,
    /// False when that message's receipt was already queued.
    pub queued: bool,
}

pub(super) async fn mark_read(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<Value>,
) -> Response {
    let id = match conversation_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    if let Some(key) = body.raw.as_object().and_then(|o| o.keys().find(|k| k.as_str() != "idempotency_key")) {
        return crate::extract::field_error(key, "unknown field: this route takes no body (idempotency_key only)").into_response();
    }
    let mut mutation = match Mutation::begin(&state, spec("conversations.read"), &caller, &headers, &body.raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    mutation.set_pending();
    let journal = |r: &ReadQueued| {
        let answer = ReadAnswer {
            conversation_id: r.conversation_id,
            message_id: r.message_id,
            provider_message_id: r.provider_message_id.clone(),
            outbox_id: r.outbox_id,
            queued: r.queued,
        };
        let data = serde_json::to_value(answer).unwrap_or(Value::Null);
        let mut entry = mutation.entry(None, None, StatusCode::ACCEPTED, &data, Some(r.message_id.to_string()), None);
        if !r.queued {
            // Nothing new to deliver: the run is done now.
            entry.run.status = RunStatus::Succeeded;
        }
        entry
    };
    match state.messaging.mark_read(caller.org_id, id, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}
