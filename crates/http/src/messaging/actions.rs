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
use serde::Serialize;
use serde_json::{json, Value};

/// The answer of a `reply` action (202).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplyAnswer {
    pub accepted: bool,
    pub action_type: &'static str,
    #[schema(value_type = String)]
    pub delivery_state: DeliveryState,
    #[schema(value_type = String)]
    pub conversation_id: ConversationId,
    /// The channel the reply goes out on (the conversation's).
    #[schema(value_type = String)]
    pub channel_id: ChannelId,
    #[schema(value_type = String)]
    pub message_id: MessageId,
    #[schema(value_type = String)]
    pub outbox_id: OutboxId,
    #[schema(value_type = String)]
    pub kind: MessageKind,
    pub window_open: bool,
    /// The send's run (pending until the provider answers).
    #[schema(value_type = Object)]
    pub run: Value,
}

pub(super) async fn execute_action(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<Value>,
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
            let render = |r: &SendReceipt, run: &Value| ReplyAnswer {
                accepted: true,
                action_type: "reply",
                delivery_state: r.delivery_state,
                conversation_id: r.conversation_id,
                channel_id: r.channel_id,
                message_id: r.message_id,
                outbox_id: r.outbox_id,
                kind: r.kind,
                window_open: r.window_open,
                run: run.clone(),
            };
            run_send(&state, &caller, &headers, &raw, ("actions.execute", Some("actions.reply")), command, &render).await
        }
        Some("draft") => {
            let text = match payload.get("text").and_then(Value::as_str) {
                Some(t) => t.to_owned(),
                None => return ApiError::field("payload.text", "a draft needs text").into_response(),
            };
            let mut mutation = match Mutation::begin(&state, spec("actions.execute"), &caller, &headers, &raw).await {
                Ok(Started::Execute(m)) => m,
                Ok(Started::Answer(r)) => return r,
                Err(e) => return e.into_response(),
            };
            mutation.set_operation("actions.draft");
            let run = mutation.run_summary();
            let at = now(&state);
            let journal = |draft: &atlas_conversations::Draft| {
                let data =
                    json!({"accepted": true, "action_type": "draft", "draft": draft, "conversation_id": draft.conversation_id, "run": run});
                let mut entry = mutation.entry(None, None, StatusCode::OK, &data, Some(draft.id.to_string()), None);
                entry.events.push(action_executed(caller.org_id, "draft", draft.conversation_id, json!({"draft": draft}), &run, at));
                entry
            };
            match state.messaging.draft(caller.org_id, conversation, &text, &journal).await {
                Ok(_) => mutation.respond().await,
                Err(e) => mutation.fail(e.into()).await,
            }
        }
        Some("handoff") => {
            let mut mutation = match Mutation::begin(&state, spec("actions.execute"), &caller, &headers, &raw).await {
                Ok(Started::Execute(m)) => m,
                Ok(Started::Answer(r)) => return r,
                Err(e) => return e.into_response(),
            };
            mutation.set_operation("actions.handoff");
            let run = mutation.run_summary();
            let data =
                json!({"accepted": true, "action_type": "handoff", "conversation_id": conversation, "status": "handed_off", "run": run});
            let mut entry = mutation.entry(None, None, StatusCode::OK, &data, Some(conversation.to_string()), None);
            entry.events.push(action_executed(caller.org_id, "handoff", conversation, json!({"status": "handed_off"}), &run, now(&state)));
            match state.messaging.handoff(caller.org_id, conversation, &entry).await {
                Ok(_) => mutation.respond().await,
                Err(e) => mutation.fail(e.into()).await,
            }
        }
        Some(_) => ApiError::field("action_type", "must be reply, draft or handoff").into_response(),
        None => ApiError::field("action_type", "is required: reply, draft or handoff").into_response(),
    }
}
