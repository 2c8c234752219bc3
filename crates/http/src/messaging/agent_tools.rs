//! The Agent tool API: the OpenAI-style manifest filtered by the caller's scopes, the send
//! tools (text, templates with components, media and interactive messages, under the window
//! rules; each answer names its `channel_id`), and the delivery status lookup.

use super::run_send;
use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;
use atlas_conversations::{ChannelId, ConversationId, MessageId, MessageKind, OutboxId, SendReceipt};
use atlas_kernel::PhoneNumber;
use atlas_scopes::Scope;
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
    let JsonBody { raw, value } = body;
    let command = match value.command() {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let render = |r: &SendReceipt, _run: &Value| ToolSendAnswer::from_receipt(r, false);
    run_send(&state, &caller, &headers, &raw, ("tools.send_message", None), command, &render).await
}

pub(super) async fn tool_send_to_phone(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<super::PhoneSendBody>,
) -> Response {
    let JsonBody { raw, value } = body;
    let command = match value.command() {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let render = |r: &SendReceipt, _run: &Value| ToolSendAnswer::from_receipt(r, true);
    run_send(&state, &caller, &headers, &raw, ("tools.send_message_to_phone", None), command, &render).await
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
    /// `{"type": "function", "function": {…}, "x-endpoint": {…}, "x-required-scopes": […]}`.
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Value>,
}

pub(super) async fn message_status(
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

/// One tool: its scope, endpoint, and OpenAI function definition.
struct Tool {
    scope: Scope,
    method: &'static str,
    path: &'static str,
    function: fn() -> Value,
}

fn send_parameters(target: Value, required: &str) -> Value {
    let mut properties = json!({
        "text": {"type": "string", "description": "Free-form text; only inside the 24-hour window"},
        "media": {"type": "object", "description": "An image, audio, video, document or sticker, by Meta media id or public link; only inside the window",
            "properties": {"type": {"type": "string", "enum": ["image", "audio", "video", "document", "sticker"]}, "id": {"type": "string"},
                "link": {"type": "string", "format": "uri"}, "caption": {"type": "string", "description": "image, video and document only"},
                "filename": {"type": "string", "description": "document only"}}, "required": ["type"]},
        "interactive": {"type": "object", "description": "Reply buttons (type button, 1-3 buttons) or a list (type list, a button label and sections of rows); only inside the window",
            "properties": {"type": {"type": "string", "enum": ["button", "list"]}, "header": {"type": "string"}, "body": {"type": "string"}, "footer": {"type": "string"},
                "buttons": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "title": {"type": "string", "maxLength": 20}}, "required": ["id", "title"]}},
                "button": {"type": "string", "maxLength": 20},
                "sections": {"type": "array", "items": {"type": "object", "properties": {"title": {"type": "string"},
                    "rows": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "title": {"type": "string", "maxLength": 24}, "description": {"type": "string"}}, "required": ["id", "title"]}}}}}},
            "required": ["type", "body"]},
        "template_id": {"type": "string", "description": "An approved template's name or id; required outside the window"},
        "category": {"type": "string", "enum": ["utility", "marketing", "authentication"]},
        "language": {"type": "string", "description": "The template's language code, such as en_US"},
        "parameters": {"type": "array", "items": {"type": "string"}, "description": "Values for {{1}}, {{2}}, …"},
        "header": {"type": "object", "description": "The template header's parameter: text, or an image, document or video by id or link",
            "properties": {"type": {"type": "string", "enum": ["text", "image", "document", "video"]}, "text": {"type": "string"}, "id": {"type": "string"}, "link": {"type": "string"}, "filename": {"type": "string"}}, "required": ["type"]},
        "buttons": {"type": "array", "description": "Template button parameters", "items": {"type": "object",
            "properties": {"index": {"type": "integer", "minimum": 0}, "type": {"type": "string", "enum": ["quick_reply", "url"]}, "payload": {"type": "string"}, "text": {"type": "string", "description": "the URL's suffix"}}, "required": ["index", "type"]}},
        "idempotency_key": {"type": "string", "description": "Makes retries safe"}
    });
    if let (Some(p), Some(t)) = (properties.as_object_mut(), target.as_object()) {
        p.extend(t.clone());
    }
    json!({"type": "object", "properties": properties, "required": [required]})
}

const TOOLS: &[Tool] = &[
    Tool {
        scope: Scope::ActionsExecute,
        method: "POST",
        path: "/agent/v1/tools/send_message",
        function: || {
            json!({"name": "send_message", "description": "Send a WhatsApp message in an existing conversation: text, media or interactive buttons/lists while the customer's 24-hour window is open; otherwise an approved template.",
            "parameters": send_parameters(json!({"conversation_id": {"type": "string"}}), "conversation_id")})
        },
    },
    Tool {
        scope: Scope::ActionsExecute,
        method: "POST",
        path: "/agent/v1/tools/send_message_to_phone",
        function: || {
            json!({"name": "send_message_to_phone", "description": "Send a WhatsApp message to any phone number, creating or reusing the customer and conversation; it goes out on the channel where the customer last wrote (or channel_id).",
            "parameters": send_parameters(json!({"phone_number": {"type": "string", "description": "E.164, such as +14155552671"}, "channel_id": {"type": "string", "description": "Send on this channel instead"}}), "phone_number")})
        },
    },
    Tool {
        scope: Scope::ActionsExecute,
        method: "GET",
        path: "/agent/v1/tools/messages/{provider_message_id}/status",
        function: || {
            json!({"name": "get_message_status", "description": "The delivery state of a sent message: queued, sending, sent, delivered, read or failed.",
            "parameters": {"type": "object", "properties": {"provider_message_id": {"type": "string"}}, "required": ["provider_message_id"]}})
        },
    },
    Tool {
        scope: Scope::ConversationsRead,
        method: "GET",
        path: "/v1/atlas/context/{conversation_id}",
        function: || {
            json!({"name": "get_conversation_context", "description": "The conversation, its customer, recent messages and knowledge grounding.",
            "parameters": {"type": "object", "properties": {"conversation_id": {"type": "string"}}, "required": ["conversation_id"]}})
        },
    },
    Tool {
        scope: Scope::ConversationsRead,
        method: "GET",
        path: "/v1/atlas/conversations",
        function: || {
            json!({"name": "list_conversations", "description": "The organization's conversations, newest first.",
            "parameters": {"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 200}, "cursor": {"type": "string"}}}})
        },
    },
];

pub(super) async fn manifest(Caller(caller): Caller) -> Response {
    let tools: Vec<Value> = TOOLS
        .iter()
        .filter(|t| caller.has(t.scope))
        .map(|t| json!({"type": "function", "function": (t.function)(), "x-endpoint": {"method": t.method, "path": t.path}, "x-required-scopes": [t.scope.as_str()]}))
        .collect();
    Envelope::ok(Manifest { tools }).into_response()
}
