//! TEMPORARY: the contract of the messaging routes, described from outside their handlers.
//! `messaging.rs` still reads most bodies as `serde_json::Value` and answers with `json!`
//! trees; its rewrite into typed request and response structs (with `ToSchema`) is under way
//! elsewhere. Until it lands, these schema-only request types say what the handlers accept
//! (each mirrors the handler's own checks, so the fuzzer's invalid data is refused), and the
//! answers are described loosely with the seed's examples. When the typed handlers land, the
//! route table names their types with `.accepts::<T>()` / `.returns::<T>()`, this file goes,
//! and the completeness test's exception list (`MESSAGING_RESPONSES_UNTYPED`) is emptied.

use crate::contract::{Components, Example, Payload};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

/// A template category (`transactional` is the legacy name of `utility`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Utility,
    Marketing,
    Authentication,
    Transactional,
}

/// `POST /v1/atlas/messages` and `POST /agent/v1/tools/send_message_to_phone`: text inside the
/// 24-hour window, or an approved template (required outside it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SendToPhoneBody {
    /// E.164, such as +14155552671 (spaces, dots, dashes and brackets are ignored; `00` may
    /// stand for `+`).
    #[schema(pattern = r"^\s*(\+|00)[ .()-]*[1-9]([ .()-]*[0-9]){7,14}[ .()-]*\s*$")]
    phone_number: String,
    /// The channel to send through; default: where the customer last wrote, else the
    /// organization's default channel.
    #[serde(default)]
    channel_id: Option<String>,
    /// Free-form text; only inside the 24-hour window.
    #[serde(default)]
    text: Option<String>,
    /// An approved template's name (`hello_world`) or id; required outside the window.
    #[serde(default, alias = "templateId")]
    template_id: Option<String>,
    /// Goes with `template_id`; must match the registered template.
    #[serde(default)]
    category: Option<Category>,
    /// The template's language (`en_US`); goes with `template_id`.
    #[serde(default)]
    language: Option<String>,
    /// Values for `{{1}}`, `{{2}}`, …; go with `template_id`.
    #[serde(default)]
    parameters: Option<Vec<String>>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    idempotency_key: Option<String>,
}

impl Example for SendToPhoneBody {
    fn example() -> Value {
        // seed 000's request, with a template so that it is accepted outside the window too
        json!({"idempotency_key": "unique-request-id", "phone_number": "+14155552671", "text": "Reminder: your appointment is tomorrow.",
               "template_id": "hello_world", "category": "utility"})
    }
}

/// `POST /agent/v1/tools/send_message`: the same, in an existing conversation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SendInConversationBody {
    conversation_id: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default, alias = "templateId")]
    template_id: Option<String>,
    #[serde(default)]
    category: Option<Category>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    parameters: Option<Vec<String>>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    idempotency_key: Option<String>,
}

impl Example for SendInConversationBody {
    fn example() -> Value {
        json!({"conversation_id": "conv_01936a3c8f2e7b4d9a1c5e6f7a8b9c20", "text": "Thanks for your message!", "template_id": "hello_world", "category": "utility"})
    }
}

/// The customer an event is from.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct EventCustomer {
    /// E.164, such as +14155552671.
    #[schema(pattern = r"^\s*(\+|00)[ .()-]*[1-9]([ .()-]*[0-9]){7,14}[ .()-]*\s*$")]
    phone_number: String,
    #[serde(default)]
    name: Option<String>,
}

/// The message an event carries.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct EventMessage {
    #[serde(default)]
    text: Option<String>,
    /// The source's id of the message (deduplicates).
    #[serde(default)]
    id: Option<String>,
    /// When the customer sent it (RFC 3339); the window opens from here. Default: now.
    #[serde(default)]
    #[schema(format = DateTime)]
    timestamp: Option<String>,
}

/// The event types `POST /v1/atlas/events` takes.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub enum EventKind {
    #[serde(rename = "message.received")]
    MessageReceived,
}

/// The channel kinds.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Whatsapp,
    Sandbox,
}

/// `POST /v1/atlas/events`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct IngestEventBody {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    idempotency_key: Option<String>,
    #[serde(default)]
    channel: Option<ChannelKind>,
    #[serde(default)]
    channel_id: Option<String>,
    customer: EventCustomer,
    event_type: EventKind,
    message: EventMessage,
}

impl Example for IngestEventBody {
    fn example() -> Value {
        json!({"idempotency_key": "evt-001", "channel": "whatsapp", "customer": {"phone_number": "+14155552671"},
               "event_type": "message.received", "message": {"text": "Hi"}})
    }
}

/// What an action does.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Reply,
    Draft,
    Handoff,
}

/// `POST /v1/atlas/actions`: `reply` (payload: the send fields), `draft` (payload: `text`),
/// `handoff` (no payload).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ActionBody {
    conversation_id: String,
    action_type: ActionKind,
    /// `reply`: `text`, `template_id`, `category`, `language`, `parameters`; `draft`: `text`.
    #[serde(default)]
    #[schema(value_type = Object)]
    payload: serde_json::Map<String, Value>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    idempotency_key: Option<String>,
}

impl Example for ActionBody {
    fn example() -> Value {
        json!({"idempotency_key": "reply-001", "conversation_id": "conv_01936a3c8f2e7b4d9a1c5e6f7a8b9c20", "action_type": "reply",
               "payload": {"text": "Thanks for reaching out!"}})
    }
}

/// `POST /v1/atlas/channels`: a WhatsApp Cloud API number, or a sandbox channel. Secrets are
/// encrypted at rest and never returned.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConnectChannelBody {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    idempotency_key: Option<String>,
    provider: ChannelKind,
    name: String,
    #[serde(default)]
    phone_number_id: Option<String>,
    #[serde(default)]
    display_phone_number: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    app_secret: Option<String>,
    #[serde(default)]
    verify_token: Option<String>,
}

impl Example for ConnectChannelBody {
    fn example() -> Value {
        json!({"provider": "whatsapp", "name": "Support line", "phone_number_id": "106540352242922", "display_phone_number": "+1 555 010 0000",
               "access_token": "EAAG…", "app_secret": "3f1c2a8e4b7d4e0a", "verify_token": "a-long-random-string"})
    }
}

/// A template's review status.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemplateStatusName {
    Approved,
    Pending,
    Rejected,
}

/// `POST /v1/atlas/templates`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RegisterTemplateBody {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    idempotency_key: Option<String>,
    name: String,
    language: String,
    category: Category,
    /// Default `approved`.
    #[serde(default)]
    status: Option<TemplateStatusName>,
    /// The text, with `{{1}}`, `{{2}}`, … parameters.
    body: String,
}

impl Example for RegisterTemplateBody {
    fn example() -> Value {
        json!({"name": "appointment_reminder", "language": "en_US", "category": "utility", "status": "approved",
               "body": "Hi {{1}}, your appointment is on {{2}}."})
    }
}

/// Meta's verification handshake.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct Handshake {
    /// `subscribe`.
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    mode: Option<String>,
    /// Must equal the channel's `verify_token`.
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    verify_token: Option<String>,
    /// Echoed back as the body.
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    challenge: Option<String>,
}

fn meta_payload_schema(_: &mut Components) -> Value {
    json!({"type": "object", "description": "Meta's webhook payload as sent (WhatsApp Business Account `entry[].changes[]`), signed with X-Hub-Signature-256"})
}

fn meta_payload_example() -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550100000", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": "14155552671"}],
        "messages": [{"from": "14155552671", "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", "timestamp": "1712491200",
                      "type": "text", "text": {"body": "Hi"}}]}}]}]})
}

/// Meta's webhook body (a foreign format, described loosely).
pub const META_WEBHOOK: Payload = Payload::foreign(meta_payload_schema, meta_payload_example);

/// An answer described by its example only, until the handler's typed response lands.
macro_rules! untyped_answer {
    ($name:ident, $what:literal, $example:expr) => {
        /// See the module comment: described loosely until the typed handler lands.
pub const $name: Payload = Payload::foreign(|_| json!({"type": "object", "description": $what}), || $example);
    };
}

untyped_answer!(
    SEND_ACCEPTED,
    "The send was accepted and queued",
    json!({"accepted": true, "delivery_state": "queued", "conversation_id": "conv_01936a3c8f2e7b4d9a1c5e6f7a8b9c20",
           "customer_id": "cus_01936a3c8f2e7b4d9a1c5e6f7a8b9c21", "message_id": "msg_01936a3c8f2e7b4d9a1c5e6f7a8b9c22",
           "outbox_id": "obx_01936a3c8f2e7b4d9a1c5e6f7a8b9c23", "channel_id": "chn_01936a3c8f2e7b4d9a1c5e6f7a8b9c24", "kind": "template", "window_open": false})
);
untyped_answer!(
    CONVERSATIONS,
    "`conversations` (newest first) and `next_cursor`",
    json!({"conversations": [{"id": "conv_01936a3c8f2e7b4d9a1c5e6f7a8b9c20", "customer": {"id": "cus_01936a3c8f2e7b4d9a1c5e6f7a8b9c21",
           "phone_number": "+14155552671", "name": "Kerry"}, "channel_id": "chn_01936a3c8f2e7b4d9a1c5e6f7a8b9c24", "status": "open",
           "window_open": true, "window_expires_at": "2026-04-08T12:00:00Z", "last_inbound_at": "2026-04-07T12:00:00Z",
           "created_at": "2026-04-07T12:00:00Z"}], "next_cursor": null})
);
untyped_answer!(
    MESSAGES,
    "`messages` (newest first) and `next_cursor`",
    json!({"messages": [{"id": "msg_01936a3c8f2e7b4d9a1c5e6f7a8b9c22", "conversation_id": "conv_01936a3c8f2e7b4d9a1c5e6f7a8b9c20",
           "direction": "inbound", "kind": "text", "text": "Hi", "template": null, "provider_message_id": "wamid.HBgL", "delivery_state": null,
           "error": null, "created_at": "2026-04-07T12:00:00Z", "sent_at": null, "delivered_at": null, "read_at": null, "failed_at": null}],
           "next_cursor": null})
);
untyped_answer!(
    CONTEXT,
    "The conversation, its customer, recent messages and knowledge grounding",
    json!({"conversation": {"id": "conv_01936a3c8f2e7b4d9a1c5e6f7a8b9c20", "status": "open", "window_open": true},
           "customer": {"id": "cus_01936a3c8f2e7b4d9a1c5e6f7a8b9c21", "phone_number": "+14155552671", "name": "Kerry"},
           "recent_messages": [], "knowledge": []})
);
untyped_answer!(
    EVENT_ACCEPTED,
    "The event was recorded (`duplicate` when its message id was seen before)",
    json!({"accepted": true, "duplicate": false, "conversation_id": "conv_01936a3c8f2e7b4d9a1c5e6f7a8b9c20",
           "customer_id": "cus_01936a3c8f2e7b4d9a1c5e6f7a8b9c21", "message_id": "msg_01936a3c8f2e7b4d9a1c5e6f7a8b9c22"})
);
untyped_answer!(
    ACTION_DONE,
    "What the action did, with its run",
    json!({"accepted": true, "action_type": "reply", "delivery_state": "queued", "conversation_id": "conv_01936a3c8f2e7b4d9a1c5e6f7a8b9c20",
           "message_id": "msg_01936a3c8f2e7b4d9a1c5e6f7a8b9c22", "outbox_id": "obx_01936a3c8f2e7b4d9a1c5e6f7a8b9c23", "window_open": true,
           "run": {"id": "run_01936a3c8f2e7b4d9a1c5e6f7a8b9c10", "operation": "actions.reply", "status": "pending"}})
);
untyped_answer!(
    CHANNEL,
    "The channel (never its secrets) and the URL to give Meta",
    json!({"id": "chn_01936a3c8f2e7b4d9a1c5e6f7a8b9c24", "provider": "whatsapp", "name": "Support line", "phone_number_id": "106540352242922",
           "display_phone_number": "+1 555 010 0000", "is_default": true, "created_at": "2026-04-07T12:00:00Z",
           "webhook_url": "/v1/atlas/channels/chn_01936a3c8f2e7b4d9a1c5e6f7a8b9c24/webhook"})
);
untyped_answer!(
    CHANNELS,
    "`channels` and `next_cursor`",
    json!({"channels": [{"id": "chn_01936a3c8f2e7b4d9a1c5e6f7a8b9c24", "provider": "sandbox", "name": "Sandbox", "phone_number_id": "sandbox",
           "display_phone_number": "+1 555 000 0000", "is_default": true, "created_at": "2026-04-07T12:00:00Z",
           "webhook_url": "/v1/atlas/channels/chn_01936a3c8f2e7b4d9a1c5e6f7a8b9c24/webhook"}], "next_cursor": null})
);
untyped_answer!(WEBHOOK_RECEIVED, "How many messages and statuses the batch held", json!({"received": true, "messages": 1, "statuses": 0}));
untyped_answer!(
    TEMPLATE,
    "The template",
    json!({"id": "tpl_01936a3c8f2e7b4d9a1c5e6f7a8b9c25", "name": "appointment_reminder", "language": "en_US", "category": "utility",
           "status": "approved", "body": "Hi {{1}}, your appointment is on {{2}}.", "created_at": "2026-04-07T12:00:00Z"})
);
untyped_answer!(
    TEMPLATES,
    "`templates` and `next_cursor`",
    json!({"templates": [{"id": "tpl_01936a3c8f2e7b4d9a1c5e6f7a8b9c25", "name": "hello_world", "language": "en_US", "category": "utility",
           "status": "approved", "body": "Hello World", "created_at": "2026-04-07T12:00:00Z"}], "next_cursor": null})
);
untyped_answer!(
    MANIFEST,
    "OpenAI function-tool definitions the credential may call",
    json!({"tools": [{"type": "function", "function": {"name": "send_message", "description": "Send a WhatsApp message in an existing conversation.",
           "parameters": {"type": "object", "properties": {"conversation_id": {"type": "string"}}, "required": ["conversation_id"]}},
           "x-endpoint": {"method": "POST", "path": "/agent/v1/tools/send_message"}, "x-required-scopes": ["atlas.actions.execute"]}]})
);
untyped_answer!(
    TOOL_QUEUED,
    "The send was queued",
    json!({"conversation_id": "conv_01936a3c8f2e7b4d9a1c5e6f7a8b9c20", "queued": true, "window_open": true,
           "outbox_id": "obx_01936a3c8f2e7b4d9a1c5e6f7a8b9c23", "message_id": "msg_01936a3c8f2e7b4d9a1c5e6f7a8b9c22", "kind": "text"})
);
untyped_answer!(
    MESSAGE_STATUS,
    "The delivery state of a sent message",
    json!({"status": "delivered", "updated_at": "2026-04-07T00:00:00Z", "provider_message_id": "wamid.HBgL",
           "message_id": "msg_01936a3c8f2e7b4d9a1c5e6f7a8b9c22", "conversation_id": "conv_01936a3c8f2e7b4d9a1c5e6f7a8b9c20", "error": null})
);

/// Meta's handshake answer: the challenge, as text.
pub const CHALLENGE: Payload = Payload::text(|| json!("1158201444"));
