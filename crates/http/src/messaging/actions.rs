//! `POST /v1/atlas/actions`: `reply` (sent under the window rules on the conversation's own
//! channel, named in the answer), `draft` (stored, not sent) and `handoff` (automation stops).

use super::{action_executed, id_field, now, prefix_fields, run_send, send_fields};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{field_error, JsonBody};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_conversations::{
    ChannelId, ConversationId, DeliveryState, MessageId, MessageKind, OutboxId, SendCommand, SendReceipt, SendTarget,
};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `POST /v1/atlas/actions`. The handler parses the body into this type first (unknown
/// fields refused), then reads `payload` by action.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // parsed to check the body; the handler reads the same fields from it
pub struct ActionBody {
    /// The conversation (`conv_…`).
    conversation_id: String,
    /// `reply`, `draft` or `handoff`.
    action_type: String,
    /// `reply`: the send fields (`text`, `media`, `interactive`, `template_id`, `category`,
    /// `language`, `parameters`, `header`, `buttons`); `draft`: `text`; `handoff`: nothing.
    #[serde(default)]
    #[schema(value_type = Object)]
    payload: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    idempotency_key: Option<String>,
}

/// The answer of an action: a `reply` (202) names the queued message and its channel; a
/// `draft` (200) carries the draft; a `handoff` (200) the conversation's new `status`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionAnswer {
    pub accepted: bool,
    /// `reply`, `draft` or `handoff`.
    pub action_type: &'static str,
    #[schema(value_type = String)]
    pub conversation_id: ConversationId,
    /// The action's run (a reply's is pending until the provider answers).
    #[schema(value_type = Object)]
    pub run: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub delivery_state: Option<DeliveryState>,
    /// The channel the reply goes out on (the conversation's).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub channel_id: Option<ChannelId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub message_id: Option<MessageId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub outbox_id: Option<OutboxId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub kind: Option<MessageKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_open: Option<bool>,
    /// A `draft`'s stored draft.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub draft: Option<atlas_conversations::Draft>,
    /// A `handoff`'s new conversation status (`handed_off`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}

impl ActionAnswer {
    fn new(action_type: &'static str, conversation_id: ConversationId, run: &Value) -> Self {
        ActionAnswer {
            accepted: true,
            action_type,
            conversation_id,
            run: run.clone(),
            delivery_state: None,
            channel_id: None,
            message_id: None,
            outbox_id: None,
            kind: None,
            window_open: None,
            draft: None,
            status: None,
        }
    }
}

pub(super) async fn execute_action(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<ActionBody>,
) -> Response {
    let raw = body.raw;
    let conversation = match id_field::<ConversationId>(&raw, "conversation_id", true) {
        Ok(Some(c)) => c,
        Ok(None) => return ApiError::field("conversation_id", "is required").into_response(),
        Err(e) => return e.into_response(),
    };
    for key in raw.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
        if !["conversation_id", "action_type", "payload", "idempotency_key"].contains(&key.as_str()) {
            return field_error(&key, "unknown field, expected one of conversation_id, action_type, payload, idempotency_key")
                .into_response();
        }
    }
    let payload = raw.get("payload").cloned().unwrap_or_else(|| json!({}));
    if !payload.is_object() {
        return ApiError::field("payload", "must be an object").into_response();
    }
    match raw.get("action_type").and_then(Value::as_str) {
        Some("reply") => {
            let request = match send_fields(&payload, &[]) {
                Ok(r) => r,
                Err(mut e) => {
                    prefix_fields(&mut e, "payload");
                    return e.into_response();
                }
            };
            let command = SendCommand { target: SendTarget::Conversation(conversation), request };
            let render = |r: &SendReceipt, run: &Value| ActionAnswer {
                delivery_state: Some(r.delivery_state),
                channel_id: Some(r.channel_id),
                message_id: Some(r.message_id),
                outbox_id: Some(r.outbox_id),
                kind: Some(r.kind),
                window_open: Some(r.window_open),
                ..ActionAnswer::new("reply", r.conversation_id, run)
            };
            run_send(&state, &caller, &headers, &raw, ("actions.execute", Some("actions.reply")), command, &render).await
        }
        Some("draft") => {
            let text = match payload.get("text").and_then(Value::as_str) {
                Some(t) => t.to_owned(),
                None => return ApiError::field("payload.text", "a draft needs text").into_response(),
            };
            draft(&state, &caller, &headers, &raw, conversation, &text, ("actions.execute", "actions.draft")).await
        }
        Some("handoff") => handoff(&state, &caller, &headers, &raw, conversation, ("actions.execute", "actions.handoff")).await,
        Some(_) => ApiError::field("action_type", "must be reply, draft or handoff").into_response(),
        None => ApiError::field("action_type", "is required: reply, draft or handoff").into_response(),
    }
}

/// Stores a draft reply in `conversation` (the `draft` action's and the `draft_message` tool's
/// flow): idempotency under route `operation`, the run named `run_operation`.
pub(crate) async fn draft(
    state: &AppState,
    caller: &atlas_scopes::Principal,
    headers: &HeaderMap,
    raw: &Value,
    conversation: ConversationId,
    text: &str,
    (operation, run_operation): (&'static str, &str),
) -> Response {
    let mut mutation = match Mutation::begin(state, spec(operation), caller, headers, raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    mutation.set_operation(run_operation);
    let run = mutation.run_summary();
    let at = now(state);
    let journal = |draft: &atlas_conversations::Draft| {
        let answer = ActionAnswer { draft: Some(draft.clone()), ..ActionAnswer::new("draft", draft.conversation_id, &run) };
        let data = serde_json::to_value(answer).unwrap_or(Value::Null);
        let mut entry = mutation.entry(None, None, StatusCode::OK, &data, Some(draft.id.to_string()), None);
        entry.events.push(action_executed(caller.org_id, "draft", draft.conversation_id, json!({"draft": draft}), &run, at));
        entry
    };
    match state.messaging.draft(caller.org_id, conversation, text, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// Hands `conversation` to a person (the `handoff` action's and the `handoff` tool's flow):
/// idempotency under route `operation`, the run named `run_operation`.
pub(crate) async fn handoff(
    state: &AppState,
    caller: &atlas_scopes::Principal,
    headers: &HeaderMap,
    raw: &Value,
    conversation: ConversationId,
    (operation, run_operation): (&'static str, &str),
) -> Response {
    let mut mutation = match Mutation::begin(state, spec(operation), caller, headers, raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    mutation.set_operation(run_operation);
    let run = mutation.run_summary();
    let answer = ActionAnswer { status: Some("handed_off"), ..ActionAnswer::new("handoff", conversation, &run) };
    let data = serde_json::to_value(answer).unwrap_or(Value::Null);
    let mut entry = mutation.entry(None, None, StatusCode::OK, &data, Some(conversation.to_string()), None);
    entry.events.push(action_executed(caller.org_id, "handoff", conversation, json!({"status": "handed_off"}), &run, now(state)));
    match state.messaging.handoff(caller.org_id, conversation, &entry).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}
