//! `POST /v1/atlas/actions`: `reply` (sent under the window rules on the conversation's own
//! channel, named in the answer), `draft` (stored, not sent) and `handoff` (automation stops).

use super::{action_executed, now, parse_id, prefix_fields, run_send, SendFields};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{typed, JsonBody};
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

/// `POST /v1/atlas/actions`. Parsed once (unknown fields refused); `payload` is then parsed
/// by its action's own type (`SendFields` for a reply, `DraftPayload` for a draft).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
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
    #[allow(dead_code)] // read from the raw body by `Mutation::begin`
    idempotency_key: Option<String>,
}

/// A `draft` action's payload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftPayload {
    #[serde(default)]
    text: Option<String>,
}

/// Parses an action's payload into its own type, naming failing fields under `payload.`.
fn payload<T: serde::de::DeserializeOwned>(payload: serde_json::Map<String, Value>) -> Result<T, ApiError> {
    typed(&Value::Object(payload)).map_err(|mut e| {
        prefix_fields(&mut e, "payload");
        e
    })
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
    let JsonBody { raw, value } = body;
    let conversation = match parse_id::<ConversationId>("conversation_id", &value.conversation_id) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let fields = value.payload.unwrap_or_default();
    match value.action_type.as_str() {
        "reply" => {
            let request = match payload::<SendFields>(fields).and_then(SendFields::request) {
                Ok(r) => r,
                Err(e) => return e.into_response(),
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
        "draft" => {
            let text = match payload::<DraftPayload>(fields)
                .and_then(|p| p.text.ok_or_else(|| ApiError::field("payload.text", "a draft needs text")))
            {
                Ok(text) => text,
                Err(e) => return e.into_response(),
            };
            draft(&state, &caller, &headers, &raw, conversation, &text, ("actions.execute", "actions.draft")).await
        }
        "handoff" => handoff(&state, &caller, &headers, &raw, conversation, ("actions.execute", "actions.handoff")).await,
        _ => ApiError::field("action_type", "must be reply, draft or handoff").into_response(),
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
