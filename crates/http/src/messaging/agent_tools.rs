//! The Agent tool API: the OpenAI-style manifest filtered by the caller's scopes, the send
//! tools (text, templates with components, media and interactive messages, under the window
//! rules; each answer names its `channel_id`), and the delivery status lookup.

use super::{id_field, phone_command, run_send, send_fields};
use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;
use atlas_conversations::{ChannelId, ConversationId, MessageId, MessageKind, OutboxId, SendCommand, SendReceipt, SendTarget};
use atlas_kernel::PhoneNumber;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

/// The answer of `send_message` and `send_message_to_phone` (202).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ToolSendAnswer {
    #[schema(value_type = String)]
    pub conversation_id: ConversationId,
    pub queued: bool,
    pub window_open: bool,
    #[schema(value_type = String)]
    pub outbox_id: OutboxId,
    #[schema(value_type = String)]
    pub message_id: MessageId,
    /// The channel the message goes out on.
    #[schema(value_type = String)]
    pub channel_id: ChannelId,
    #[schema(value_type = String)]
    pub kind: MessageKind,
    /// `send_message_to_phone` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub phone_number: Option<PhoneNumber>,
}

impl ToolSendAnswer {
    fn from_receipt(r: &SendReceipt, with_phone: bool) -> Self {
        ToolSendAnswer {
            conversation_id: r.conversation_id,
            queued: true,
            window_open: r.window_open,
            outbox_id: r.outbox_id,
            message_id: r.message_id,
            channel_id: r.channel_id,
            kind: r.kind,
            phone_number: with_phone.then(|| r.phone_number.clone()),
        }
    }
}

pub(super) async fn tool_send_message(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<super::ConversationSendBody>,
) -> Response {
    send_in_conversation(&state, &caller, &headers, &body.raw, "tools.send_message").await
}

/// A send in the conversation `raw` names (the `send_message` route's and tool's flow), its
/// run named `run_operation`.
pub(crate) async fn send_in_conversation(
    state: &AppState,
    caller: &atlas_scopes::Principal,
    headers: &HeaderMap,
    raw: &Value,
    run_operation: &str,
) -> Response {
    let prepared = (|| {
        let conversation: ConversationId =
            id_field(raw, "conversation_id", true)?.ok_or_else(|| ApiError::field("conversation_id", "is required"))?;
        let request = send_fields(raw, &["conversation_id"])?;
        Ok::<_, ApiError>(SendCommand { target: SendTarget::Conversation(conversation), request })
    })();
    let command = match prepared {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let render = |r: &SendReceipt, _run: &Value| ToolSendAnswer::from_receipt(r, false);
    run_send(state, caller, headers, raw, ("tools.send_message", Some(run_operation)), command, &render).await
}

pub(super) async fn tool_send_to_phone(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<super::PhoneSendBody>,
) -> Response {
    send_to_phone(&state, &caller, &headers, &body.raw, "tools.send_message_to_phone").await
}

/// A send to the phone number `raw` names (the `send_message_to_phone` route's and tool's
/// flow), its run named `run_operation`.
pub(crate) async fn send_to_phone(
    state: &AppState,
    caller: &atlas_scopes::Principal,
    headers: &HeaderMap,
    raw: &Value,
    run_operation: &str,
) -> Response {
    let command = match phone_command(raw) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let render = |r: &SendReceipt, _run: &Value| ToolSendAnswer::from_receipt(r, true);
    run_send(state, caller, headers, raw, ("tools.send_message_to_phone", Some(run_operation)), command, &render).await
}

/// The answer of the status lookup.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageStatus {
    /// `queued`, `sending`, `sent`, `delivered`, `read`, `failed`, or `received` (inbound).
    pub status: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: time::OffsetDateTime,
    pub provider_message_id: Option<String>,
    #[schema(value_type = String)]
    pub message_id: MessageId,
    #[schema(value_type = String)]
    pub conversation_id: ConversationId,
    /// Why the send failed, when it did.
    #[schema(value_type = Option<Object>)]
    pub error: Option<atlas_conversations::MessageError>,
}

/// The tool manifest: OpenAI function-tool definitions the caller's scopes allow.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Manifest {
    /// `{"type": "function", "function": {"name", "description", "parameters"}, "x-required-scopes": […]}`,
    /// from the one tool registry (`atlas-tools`), filtered by the caller's scopes.
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Value>,
}

pub(crate) async fn message_status(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let message = state.messaging.message_by_provider_id(caller.org_id, &id).await?;
    let state_name = message.delivery_state.map(|s| s.as_str()).unwrap_or("received");
    let updated_at = [message.failed_at, message.read_at, message.delivered_at, message.sent_at]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(message.created_at);
    Ok(Envelope::ok(MessageStatus {
        status: state_name,
        updated_at,
        provider_message_id: message.provider_message_id,
        message_id: message.id,
        conversation_id: message.conversation_id,
        error: message.error,
    })
    .into_response())
}

// ---------------------------------------------------------------- the tool manifest

/// The manifest: the registry's tools the caller's scopes allow, as OpenAI function
/// definitions, each with the scope it needs (`x-required-scopes`).
pub(super) async fn manifest(Caller(caller): Caller) -> Response {
    let allowed = atlas_tools::allowed(&caller.scopes);
    let functions = atlas_tools::openai_functions(&allowed);
    let tools: Vec<Value> = functions
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .zip(&allowed)
        .map(|(mut f, spec)| {
            f["x-required-scopes"] = json!([spec.scope.as_str()]);
            f
        })
        .collect();
    Envelope::ok(Manifest { tools }).into_response()
}
