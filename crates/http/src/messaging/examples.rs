//! The examples of the messaging routes' request and answer types (`contract::Example`): what
//! the OpenAPI document, the Postman collection and the contract tests show and send. They
//! follow seed 000's examples (the customer `+14155552671`, `hello_world`, Meta's payload
//! shapes); request examples are parsed by the handlers' own types in a test.

use super::actions::{ActionAnswer, ActionBody};
use super::agent_tools::{Manifest, MessageStatus, ToolSendAnswer};
use super::channels::{ChannelBody, ChannelList, ChannelPatch, ChannelView};
use super::conversations::{Context, ConversationList, MessageList, ReadAnswer};
use super::events::{EventAnswer, EventBody};
use super::messages::SendAnswer;
use super::meta_webhook::WebhookAnswer;
use super::templates::{SyncAnswer, TemplateBody, TemplateList, TemplateView};
use super::{ConversationSendBody, PhoneSendBody};
use crate::contract::{Components, Example, Payload};
use serde_json::{json, Value};

const CONVERSATION: &str = "conv_01936a3c8f2e7b4d9a1c5e6f7a8b9c20";
const CUSTOMER: &str = "cus_01936a3c8f2e7b4d9a1c5e6f7a8b9c21";
const MESSAGE: &str = "msg_01936a3c8f2e7b4d9a1c5e6f7a8b9c22";
const OUTBOX: &str = "obx_01936a3c8f2e7b4d9a1c5e6f7a8b9c23";
const CHANNEL: &str = "chn_01936a3c8f2e7b4d9a1c5e6f7a8b9c24";
const TEMPLATE: &str = "tpl_01936a3c8f2e7b4d9a1c5e6f7a8b9c25";
const RUN: &str = "run_01936a3c8f2e7b4d9a1c5e6f7a8b9c10";
const WAMID: &str = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=";
const AT: &str = "2026-04-07T12:00:00Z";

impl Example for PhoneSendBody {
    fn example() -> Value {
        // seed 000's request, with a template so that it is accepted outside the window too
        json!({"idempotency_key": "unique-request-id", "phone_number": "+14155552671", "template_id": "hello_world",
               "category": "utility", "language": "en_US"})
    }
}

impl Example for ConversationSendBody {
    fn example() -> Value {
        json!({"conversation_id": CONVERSATION, "template_id": "hello_world", "category": "utility", "language": "en_US"})
    }
}

impl Example for SendAnswer {
    fn example() -> Value {
        json!({"accepted": true, "delivery_state": "queued", "conversation_id": CONVERSATION, "customer_id": CUSTOMER, "message_id": MESSAGE,
               "outbox_id": OUTBOX, "channel_id": CHANNEL, "kind": "template", "window_open": false})
    }
}

impl Example for ToolSendAnswer {
    fn example() -> Value {
        json!({"conversation_id": CONVERSATION, "queued": true, "window_open": true, "outbox_id": OUTBOX, "message_id": MESSAGE,
               "channel_id": CHANNEL, "kind": "text"})
    }
}

fn conversation() -> Value {
    json!({"id": CONVERSATION, "customer": {"id": CUSTOMER, "phone_number": "+14155552671", "name": "Kerry Fisher"}, "channel_id": CHANNEL,
           "status": "open", "window_open": true, "window_expires_at": "2026-04-08T12:00:00Z", "last_inbound_at": AT, "created_at": AT})
}

fn message() -> Value {
    json!({"id": MESSAGE, "conversation_id": CONVERSATION, "direction": "inbound", "kind": "text", "text": "Hi", "content": null,
           "template": null, "provider_message_id": WAMID, "delivery_state": null, "error": null, "created_at": AT, "sent_at": null,
           "delivered_at": null, "read_at": null, "failed_at": null})
}

impl Example for ConversationList {
    fn example() -> Value {
        json!({"conversations": [conversation()], "next_cursor": null})
    }
}

impl Example for MessageList {
    fn example() -> Value {
        json!({"messages": [message()], "next_cursor": null})
    }
}

impl Example for Context {
    fn example() -> Value {
        json!({"conversation": conversation(), "customer": {"id": CUSTOMER, "phone_number": "+14155552671", "name": "Kerry Fisher"},
               "recent_messages": [message()], "knowledge": []})
    }
}

impl Example for ReadAnswer {
    fn example() -> Value {
        json!({"conversation_id": CONVERSATION, "message_id": MESSAGE, "provider_message_id": WAMID, "outbox_id": OUTBOX, "queued": true})
    }
}

impl Example for EventBody {
    fn example() -> Value {
        json!({"idempotency_key": "evt-001", "channel": "whatsapp", "customer": {"phone_number": "+14155552671", "name": "Kerry Fisher"},
               "event_type": "message.received", "message": {"text": "Hi", "id": WAMID, "timestamp": AT}})
    }
}

impl Example for EventAnswer {
    fn example() -> Value {
        json!({"accepted": true, "duplicate": false, "conversation_id": CONVERSATION, "customer_id": CUSTOMER, "channel_id": CHANNEL,
               "message_id": MESSAGE})
    }
}

impl Example for ActionBody {
    fn example() -> Value {
        json!({"idempotency_key": "reply-001", "conversation_id": CONVERSATION, "action_type": "reply",
               "payload": {"text": "Thanks for reaching out!"}})
    }
}

impl Example for ActionAnswer {
    fn example() -> Value {
        json!({"accepted": true, "action_type": "reply", "conversation_id": CONVERSATION, "delivery_state": "queued", "channel_id": CHANNEL,
               "message_id": MESSAGE, "outbox_id": OUTBOX, "kind": "text", "window_open": true,
               "run": {"id": RUN, "operation": "actions.reply", "status": "pending"}})
    }
}

impl Example for ChannelBody {
    fn example() -> Value {
        json!({"provider": "whatsapp", "name": "Support line", "phone_number_id": "106540352242922", "display_phone_number": "+1 555 010 0000",
               "access_token": "EAAG…", "app_secret": "3f1c2a8e4b7d4e0a", "verify_token": "a-long-random-string",
               "waba_id": "102290129340398"})
    }
}

impl Example for ChannelPatch {
    fn example() -> Value {
        json!({"is_default": true})
    }
}

fn channel() -> Value {
    json!({"id": CHANNEL, "provider": "whatsapp", "name": "Support line", "phone_number_id": "106540352242922",
           "display_phone_number": "+1 555 010 0000", "waba_id": "102290129340398", "is_default": true, "status": "connected",
           "webhook_url": format!("/v1/atlas/channels/{CHANNEL}/webhook"), "created_at": AT, "disconnected_at": null})
}

impl Example for ChannelView {
    fn example() -> Value {
        channel()
    }
}

impl Example for ChannelList {
    fn example() -> Value {
        json!({"channels": [channel()], "next_cursor": null})
    }
}

impl Example for SyncAnswer {
    fn example() -> Value {
        json!({"channel_id": CHANNEL, "synced": 3, "deleted": 0})
    }
}

impl Example for TemplateBody {
    fn example() -> Value {
        json!({"name": "appointment_reminder", "language": "en_US", "category": "utility", "status": "approved",
               "body": "Hi {{1}}, your appointment is on {{2}}."})
    }
}

fn template() -> Value {
    json!({"id": TEMPLATE, "name": "hello_world", "language": "en_US", "category": "utility", "status": "approved",
           "body": "Hello World", "components": null, "channel_id": null, "created_at": AT})
}

impl Example for TemplateView {
    fn example() -> Value {
        template()
    }
}

impl Example for TemplateList {
    fn example() -> Value {
        json!({"templates": [template()], "next_cursor": null})
    }
}

impl Example for WebhookAnswer {
    fn example() -> Value {
        json!({"received": true, "messages": 1, "duplicates": 0, "statuses": 0, "skipped": 0})
    }
}

impl Example for Manifest {
    fn example() -> Value {
        json!({"tools": [{"type": "function", "function": {"name": "get_message_status",
               "description": "The delivery state of a sent message: queued, sending, sent, delivered, read or failed.",
               "parameters": {"type": "object", "properties": {"provider_message_id": {"type": "string"}}, "required": ["provider_message_id"]}},
               "x-required-scopes": ["atlas.actions.execute"]}]})
    }
}

impl Example for MessageStatus {
    fn example() -> Value {
        json!({"status": "delivered", "updated_at": AT, "provider_message_id": WAMID, "message_id": MESSAGE,
               "conversation_id": CONVERSATION, "error": null})
    }
}

fn meta_payload_schema(_: &mut Components) -> Value {
    json!({"type": "object", "description": "Meta's webhook payload as sent (WhatsApp Business Account `entry[].changes[]`), signed with X-Hub-Signature-256"})
}

fn meta_payload_example() -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550100000", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": "14155552671"}],
        "messages": [{"from": "14155552671", "id": WAMID, "timestamp": "1712491200", "type": "text", "text": {"body": "Hi"}}]}}]}]})
}

/// Meta's webhook body: a foreign format, decoded item by item by the `WebhookDecoder`.
pub const META_WEBHOOK: Payload = Payload::foreign(meta_payload_schema, meta_payload_example);

/// Meta's handshake answer: the challenge, as text.
pub const CHALLENGE: Payload = Payload::text(|| json!("1158201444"));
