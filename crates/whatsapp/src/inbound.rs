//! The `WebhookDecoder` port of `atlas-conversations` over Meta's webhook: [`MetaWebhook`]
//! answers the handshake, checks `X-Hub-Signature-256`, and decodes a payload into the domain's
//! changes and items, **item by item**: an item that cannot be read becomes
//! `ProviderItem::Malformed` naming its JSON path, and every other item of the batch is kept.
//!
//! Every message type Meta documents keeps its content: `text`; `image`, `audio`, `video`,
//! `document`, `sticker` (media id, mime type, sha256, caption, file name); `location`;
//! `contacts`; `interactive` (`button_reply` or `list_reply`: id, title, description);
//! `button` (payload, text); `reaction` (emoji, the message reacted to); `unsupported` (its
//! error). A type Meta adds later is kept as `unsupported` with the type's name as the title.

use crate::webhook::{verify_handshake, verify_signature, WHATSAPP_OBJECT};
use atlas_conversations::{
    DeliveryState, InboundMedia, InteractiveReply, Location, MediaType, MessageContent, MessageError, ProviderChange, ProviderItem,
    ProviderMessage, ProviderStatus, StatusEvent, UndecodableWebhook, UnsupportedError, WebhookDecoder,
};
use serde_json::Value;
use time::OffsetDateTime;

/// Meta's webhook, as the domain's `WebhookDecoder`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaWebhook;

impl WebhookDecoder for MetaWebhook {
    fn handshake(&self, mode: Option<String>, token: Option<String>, challenge: Option<String>, expected_token: &str) -> Option<String> {
        verify_handshake(mode.as_deref(), token.as_deref(), challenge.as_deref(), expected_token)
    }

    fn verify(&self, app_secret: &[u8], body: &[u8], signature: Option<String>) -> bool {
        verify_signature(app_secret, body, signature.as_deref())
    }

    fn decode(&self, body: &[u8]) -> Result<Vec<ProviderChange>, UndecodableWebhook> {
        decode_changes(body)
    }
}

fn text(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn timestamp(value: &Value) -> Result<OffsetDateTime, String> {
    let seconds = match value.get("timestamp") {
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64().filter(|n| *n >= 0),
        None | Some(Value::Null) => return Err("timestamp: missing".into()),
        Some(_) => None,
    };
    seconds.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok()).ok_or_else(|| "timestamp: not a unix timestamp in seconds".into())
}

/// Decodes a webhook body into its changes (see the module documentation).
///
/// # Errors
/// `UndecodableWebhook` when the body is not JSON or not a WhatsApp Business Account webhook.
pub fn decode_changes(body: &[u8]) -> Result<Vec<ProviderChange>, UndecodableWebhook> {
    let root: Value = serde_json::from_slice(body).map_err(|e| UndecodableWebhook(format!("the webhook body is not valid JSON: {e}")))?;
    match root.get("object").and_then(Value::as_str) {
        Some(WHATSAPP_OBJECT) => {}
        Some(other) => return Err(UndecodableWebhook(format!("unexpected webhook object {other:?}"))),
        None => return Err(UndecodableWebhook("$.object: missing".into())),
    }
    let mut changes = Vec::new();
    for (i, entry) in root.get("entry").and_then(Value::as_array).into_iter().flatten().enumerate() {
        for (j, change) in entry.get("changes").and_then(Value::as_array).into_iter().flatten().enumerate() {
            if change.get("field").and_then(Value::as_str) != Some("messages") {
                continue;
            }
            let Some(value) = change.get("value") else { continue };
            let path = format!("$.entry[{i}].changes[{j}].value");
            changes.push(decode_value(&path, value));
        }
    }
    Ok(changes)
}

fn decode_value(path: &str, value: &Value) -> ProviderChange {
    let phone_number_id = value.get("metadata").and_then(|m| text(m, "phone_number_id")).filter(|id| !id.is_empty());
    let contacts = value.get("contacts").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut items = Vec::new();
    for (k, m) in value.get("messages").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let at = format!("{path}.messages[{k}]");
        items.push(match decode_message(m, &contacts) {
            Ok(message) => ProviderItem::Message(Box::new(message)),
            Err(reason) => ProviderItem::Malformed { path: at, reason },
        });
    }
    for (k, s) in value.get("statuses").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let at = format!("{path}.statuses[{k}]");
        items.push(decode_status(s).unwrap_or_else(|reason| ProviderItem::Malformed { path: at, reason }));
    }
    ProviderChange { phone_number_id, items }
}

fn decode_message(m: &Value, contacts: &[Value]) -> Result<ProviderMessage, String> {
    let id = text(m, "id").filter(|s| !s.is_empty()).ok_or("id: missing")?;
    let from = text(m, "from").filter(|s| !s.is_empty()).ok_or("from: missing")?;
    let timestamp = timestamp(m)?;
    let kind = text(m, "type").filter(|s| !s.is_empty()).ok_or("type: missing")?;
    let profile_name = contacts
        .iter()
        .find(|c| text(c, "wa_id").as_deref() == Some(from.as_str()))
        .and_then(|c| c.get("profile"))
        .and_then(|p| text(p, "name"));
    let content = decode_content(&kind, m)?;
    Ok(ProviderMessage { provider_message_id: id, from, profile_name, timestamp, content })
}

fn object<'a>(m: &'a Value, key: &str) -> Result<&'a Value, String> {
    m.get(key).filter(|v| v.is_object()).ok_or_else(|| format!("{key}: missing"))
}

fn decode_content(kind: &str, m: &Value) -> Result<MessageContent, String> {
    if let Some(media_type) = MediaType::parse(kind) {
        let o = object(m, kind)?;
        let media = InboundMedia {
            media_id: text(o, "id").ok_or_else(|| format!("{kind}.id: missing"))?,
            mime_type: text(o, "mime_type"),
            sha256: text(o, "sha256"),
            caption: text(o, "caption"),
            filename: text(o, "filename"),
            voice: o.get("voice").and_then(Value::as_bool),
            animated: o.get("animated").and_then(Value::as_bool),
        };
        return Ok(match media_type {
            MediaType::Image => MessageContent::Image(media),
            MediaType::Audio => MessageContent::Audio(media),
            MediaType::Video => MessageContent::Video(media),
            MediaType::Document => MessageContent::Document(media),
            MediaType::Sticker => MessageContent::Sticker(media),
        });
    }
    Ok(match kind {
        "text" => MessageContent::Text { body: object(m, "text").ok().and_then(|t| text(t, "body")).ok_or("text.body: missing")? },
        "location" => {
            let o = object(m, "location")?;
            let coordinate = |key: &str| o.get(key).and_then(Value::as_f64).ok_or_else(|| format!("location.{key}: missing"));
            MessageContent::Location(Location {
                latitude: coordinate("latitude")?,
                longitude: coordinate("longitude")?,
                name: text(o, "name"),
                address: text(o, "address"),
                url: text(o, "url"),
            })
        }
        "contacts" => {
            MessageContent::Contacts { contacts: m.get("contacts").and_then(Value::as_array).cloned().ok_or("contacts: missing")? }
        }
        "interactive" => {
            let o = object(m, "interactive")?;
            let reply_type = text(o, "type").ok_or("interactive.type: missing")?;
            let reply = object(o, &reply_type).map_err(|e| format!("interactive.{e}"))?;
            MessageContent::Interactive(InteractiveReply {
                id: text(reply, "id").ok_or_else(|| format!("interactive.{reply_type}.id: missing"))?,
                title: text(reply, "title").unwrap_or_default(),
                description: text(reply, "description"),
                reply_type,
            })
        }
        "button" => {
            let o = object(m, "button")?;
            MessageContent::Button { payload: text(o, "payload"), text: text(o, "text") }
        }
        "reaction" => {
            let o = object(m, "reaction")?;
            MessageContent::Reaction {
                message_id: text(o, "message_id").ok_or("reaction.message_id: missing")?,
                emoji: text(o, "emoji").unwrap_or_default(),
            }
        }
        "unsupported" => {
            let error = m.get("errors").and_then(Value::as_array).and_then(|e| e.first()).cloned().unwrap_or(Value::Null);
            MessageContent::Unsupported(UnsupportedError {
                code: error.get("code").and_then(Value::as_i64),
                title: text(&error, "title").or_else(|| text(&error, "message")),
                details: error.get("error_data").and_then(|d| text(d, "details")),
            })
        }
        other => MessageContent::Unsupported(UnsupportedError {
            code: None,
            title: Some(format!("message type `{other}` is not supported")),
            details: None,
        }),
    })
}

fn decode_status(s: &Value) -> Result<ProviderItem, String> {
    let id = text(s, "id").filter(|s| !s.is_empty()).ok_or("id: missing")?;
    let status = text(s, "status").filter(|s| !s.is_empty()).ok_or("status: missing")?;
    let at = timestamp(s)?;
    let state = match status.as_str() {
        "sent" => DeliveryState::Sent,
        "delivered" => DeliveryState::Delivered,
        "read" => DeliveryState::Read,
        "failed" => DeliveryState::Failed,
        _ => return Ok(ProviderItem::IgnoredStatus { provider_message_id: id, status }),
    };
    let error = s.get("errors").and_then(Value::as_array).and_then(|e| e.first()).map(|e| {
        MessageError::new(
            e.get("code").and_then(Value::as_i64).map_or_else(|| "provider_error".to_owned(), |c| c.to_string()),
            text(e, "message").or_else(|| text(e, "title")).unwrap_or_else(|| "failed".into()),
        )
    });
    Ok(ProviderItem::Status(ProviderStatus { provider_message_id: id, event: StatusEvent { state, at, error } }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(messages: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
            "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "555"}, "messages": messages}}]}]}))
        .unwrap()
    }

    #[test]
    fn a_malformed_item_is_reported_and_the_others_kept() {
        let changes = decode_changes(&body(json!([
            {"from": "1415", "id": "wamid.A", "timestamp": "1700000000", "type": "text", "text": {"body": "hi"}},
            {"from": "1415", "timestamp": "1700000000", "type": "text", "text": {"body": "no id"}},
            {"from": "1415", "id": "wamid.C", "timestamp": "soon", "type": "text", "text": {"body": "bad time"}},
            {"from": "1415", "id": "wamid.D", "timestamp": "1700000001", "type": "image", "image": {"id": "MEDIA1", "mime_type": "image/jpeg", "caption": "look"}}
        ])))
        .unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].phone_number_id.as_deref(), Some("555"));
        let items = &changes[0].items;
        assert!(matches!(&items[0], ProviderItem::Message(m) if m.content == MessageContent::Text { body: "hi".into() }));
        assert!(matches!(&items[1], ProviderItem::Malformed { path, reason } if path.ends_with("messages[1]") && reason.starts_with("id")));
        assert!(matches!(&items[2], ProviderItem::Malformed { reason, .. } if reason.starts_with("timestamp")));
        assert!(
            matches!(&items[3], ProviderItem::Message(m) if matches!(&m.content, MessageContent::Image(i) if i.media_id == "MEDIA1" && i.caption.as_deref() == Some("look")))
        );
    }

    #[test]
    fn replies_reactions_and_unknown_types_keep_their_content() {
        let changes = decode_changes(&body(json!([
            {"from": "1", "id": "a", "timestamp": "1", "type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "Row", "description": "d"}}},
            {"from": "1", "id": "b", "timestamp": "1", "type": "reaction", "reaction": {"message_id": "wamid.OUT", "emoji": "👍"}},
            {"from": "1", "id": "c", "timestamp": "1", "type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown"}]},
            {"from": "1", "id": "d", "timestamp": "1", "type": "poll"}
        ])))
        .unwrap();
        let contents: Vec<MessageContent> = changes[0]
            .items
            .iter()
            .map(|i| match i {
                ProviderItem::Message(m) => m.content.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            contents[0],
            MessageContent::Interactive(InteractiveReply {
                reply_type: "list_reply".into(),
                id: "r1".into(),
                title: "Row".into(),
                description: Some("d".into())
            })
        );
        assert_eq!(contents[1], MessageContent::Reaction { message_id: "wamid.OUT".into(), emoji: "👍".into() });
        assert!(matches!(&contents[2], MessageContent::Unsupported(e) if e.code == Some(131051)));
        assert!(matches!(&contents[3], MessageContent::Unsupported(e) if e.title.as_deref().is_some_and(|t| t.contains("poll"))));
    }

    #[test]
    fn a_body_that_is_no_webhook_is_refused_whole() {
        assert!(decode_changes(b"not json").is_err());
        assert!(decode_changes(br#"{"object": "page"}"#).is_err());
    }
}
