//! The registry's entries: each tool's description and the JSON Schema of its arguments.

use crate::ToolSpec;
use atlas_scopes::Scope;
use serde_json::{json, Value};

/// The send fields every send tool takes, plus the target's own fields, with `required`.
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
        "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 255, "description": "Makes retries safe: the same key and arguments answer the first call's result"}
    });
    if let (Some(p), Some(t)) = (properties.as_object_mut(), target.as_object()) {
        p.extend(t.clone());
    }
    json!({"type": "object", "properties": properties, "required": [required], "additionalProperties": false})
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

fn idempotency_key() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 255, "description": "Makes retries safe"})
}

pub(crate) fn all() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "search_knowledge",
            description: "Search the organization's knowledge base (documents split into chunks) and return the best matching chunks with a score in [0, 1].",
            parameters: object(
                json!({"query": {"type": "string", "minLength": 1, "description": "What to look for, in words"},
                       "limit": {"type": "integer", "minimum": 1, "maximum": 50, "description": "How many results (default 5)"}}),
                &["query"],
            ),
            scope: Scope::KnowledgeRead,
        },
        ToolSpec {
            name: "get_conversation",
            description: "A conversation with its customer, recent messages and the knowledge that matches the customer's latest message.",
            parameters: object(json!({"conversation_id": {"type": "string", "description": "conv_…"}}), &["conversation_id"]),
            scope: Scope::ConversationsRead,
        },
        ToolSpec {
            name: "send_message",
            description: "Send a WhatsApp message in an existing conversation: text, media or interactive buttons/lists while the customer's 24-hour window is open; otherwise an approved template.",
            parameters: send_parameters(json!({"conversation_id": {"type": "string", "description": "conv_…"}}), "conversation_id"),
            scope: Scope::ActionsExecute,
        },
        ToolSpec {
            name: "send_message_to_phone",
            description: "Send a WhatsApp message to any phone number, creating or reusing the customer and conversation; it goes out on the channel where the customer last wrote (or channel_id).",
            parameters: send_parameters(
                json!({"phone_number": {"type": "string", "description": "E.164, such as +14155552671"},
                       "channel_id": {"type": "string", "description": "Send on this channel instead"}}),
                "phone_number",
            ),
            scope: Scope::ActionsExecute,
        },
        ToolSpec {
            name: "draft_message",
            description: "Store a reply as a draft in a conversation for a person to review; nothing is sent.",
            parameters: object(
                json!({"conversation_id": {"type": "string", "description": "conv_…"}, "text": {"type": "string", "minLength": 1},
                       "idempotency_key": idempotency_key()}),
                &["conversation_id", "text"],
            ),
            scope: Scope::ActionsExecute,
        },
        ToolSpec {
            name: "handoff",
            description: "Hand the conversation to a person: no agent sends in it until it is released. Always allowed and idempotent.",
            parameters: object(
                json!({"conversation_id": {"type": "string", "description": "conv_…"},
                       "reason": {"type": "string", "description": "Why a person should take over"},
                       "idempotency_key": idempotency_key()}),
                &["conversation_id"],
            ),
            scope: Scope::ActionsExecute,
        },
        ToolSpec {
            name: "get_message_status",
            description: "The delivery state of a sent message: queued, sending, sent, delivered, read or failed.",
            parameters: object(json!({"provider_message_id": {"type": "string", "description": "The provider's id (wamid.…)"}}), &["provider_message_id"]),
            scope: Scope::ActionsExecute,
        },
        ToolSpec {
            name: "create_incident",
            description: "Open an incident (signals with the same dedup_key fold into one incident).",
            parameters: object(
                json!({"title": {"type": "string", "minLength": 1}, "severity": {"type": "string", "enum": ["P1", "P2", "P3", "P4", "P5"]},
                       "description": {"type": "string"}, "source": {"type": "string"},
                       "ci_ids": {"type": "array", "items": {"type": "string"}, "description": "Affected configuration items (ci_…)"},
                       "dedup_key": {"type": "string"}, "assignee": {"type": "string"}, "idempotency_key": idempotency_key()}),
                &["title", "severity"],
            ),
            scope: Scope::IncidentsWrite,
        },
        ToolSpec {
            name: "get_incident",
            description: "One incident by id (inc_…) or reference (INC-00000001).",
            parameters: object(json!({"incident_id": {"type": "string"}}), &["incident_id"]),
            scope: Scope::IncidentsRead,
        },
        ToolSpec {
            name: "create_task",
            description: "Create a task in a project (by the project's id or key).",
            parameters: object(
                json!({"project_id": {"type": "string"}, "title": {"type": "string", "minLength": 1}, "description": {"type": "string"},
                       "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"]},
                       "due_on": {"type": "string", "description": "An RFC 3339 time or a date (2026-05-01)"},
                       "assignee": {"type": "string"}, "idempotency_key": idempotency_key()}),
                &["project_id", "title"],
            ),
            scope: Scope::TasksWrite,
        },
        ToolSpec {
            name: "update_task_status",
            description: "Move a task to todo, in_progress, done or cancelled (a task blocked by unfinished dependencies cannot be done).",
            parameters: object(
                json!({"task_id": {"type": "string"}, "status": {"type": "string", "enum": ["todo", "in_progress", "done", "cancelled"]},
                       "idempotency_key": idempotency_key()}),
                &["task_id", "status"],
            ),
            scope: Scope::TasksWrite,
        },
    ]
}
