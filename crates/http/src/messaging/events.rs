//! `POST /v1/atlas/events`: an external `message.received` event (text, or any rich content
//! as `type` plus `content`), recorded like an inbound message: it opens or extends the window
//! from its own timestamp and is announced as `atlas.event.received`.

use super::{event_received, now};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_conversations::{InboundEvent, InboundRecorded, MessageContent, MessageKind};
use atlas_kernel::{OrgId, PhoneNumber};
use atlas_runs::JournalEntry;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The customer an event is from.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventCustomer {
    /// E.164, such as `+14155552671`.
    phone_number: String,
    #[serde(default)]
    name: Option<String>,
}

/// The message of an event.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventMessage {
    #[serde(default)]
    text: Option<String>,
    /// The provider's id of the message, when the source has one (deduplicates).
    #[serde(default)]
    id: Option<String>,
    /// When the customer sent it (RFC 3339); defaults to now.
    #[serde(default)]
    timestamp: Option<String>,
    /// Rich content (`{"type": "image", "media_id": …}`, `{"type": "location", …}`…); the
    /// message's kind is its `type`.
    #[serde(default)]
    content: Option<MessageContent>,
}

/// `POST /v1/atlas/events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    #[serde(default)]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
    /// `whatsapp` or `sandbox` (informational).
    #[serde(default)]
    channel: Option<String>,
    /// The channel it came through; the default channel when absent.
    #[serde(default)]
    channel_id: Option<String>,
    customer: EventCustomer,
    /// `message.received`.
    event_type: String,
    message: EventMessage,
}

/// What recording an event did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventAnswer {
    pub accepted: bool,
    /// True when a message with the event's `message.id` was already recorded.
    pub duplicate: bool,
    #[schema(value_type = String)]
    pub conversation_id: atlas_conversations::ConversationId,
    #[schema(value_type = String)]
    pub customer_id: atlas_conversations::CustomerId,
    #[schema(value_type = String)]
    pub channel_id: atlas_conversations::ChannelId,
    #[schema(value_type = String)]
    pub message_id: atlas_conversations::MessageId,
}

fn inbound_journal(
    mutation: &Mutation,
    org_id: OrgId,
    at: OffsetDateTime,
    status: StatusCode,
) -> impl Fn(&InboundRecorded) -> Option<JournalEntry> + Send + Sync + '_ {
    move |recorded: &InboundRecorded| {
        let answer = EventAnswer {
            accepted: true,
            duplicate: recorded.duplicate,
            conversation_id: recorded.conversation.id,
            customer_id: recorded.customer.id,
            channel_id: recorded.conversation.channel_id,
            message_id: recorded.message.id,
        };
        let data = serde_json::to_value(answer).unwrap_or(serde_json::Value::Null);
        let mut entry = mutation.entry(None, None, status, &data, Some(recorded.message.id.to_string()), None);
        if !recorded.duplicate {
            entry.events.push(event_received(org_id, recorded, at));
        }
        Some(entry)
    }
}

pub(super) async fn ingest_event(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<EventBody>,
) -> Response {
    let b = body.value;
    let prepared = (|| {
        if b.event_type != "message.received" {
            return Err(ApiError::field("event_type", "must be message.received"));
        }
        if let Some(channel) = &b.channel {
            if channel != "whatsapp" && channel != "sandbox" {
                return Err(ApiError::field("channel", "must be whatsapp or sandbox"));
            }
        }
        let from = PhoneNumber::parse(&b.customer.phone_number).map_err(|e| ApiError::field("customer.phone_number", e.to_string()))?;
        let channel_id =
            b.channel_id.as_deref().map(|c| c.parse().map_err(|_| ApiError::field("channel_id", "is not a channel id"))).transpose()?;
        let timestamp = b
            .message
            .timestamp
            .as_deref()
            .map(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| ApiError::field("message.timestamp", "must be RFC 3339"))
            })
            .transpose()?;
        let (kind, text, content) = match b.message.content.clone() {
            None => (MessageKind::Text, b.message.text.clone(), None),
            Some(MessageContent::Text { body }) => (MessageKind::Text, Some(body), None),
            Some(MessageContent::OutboundMedia(_) | MessageContent::OutboundInteractive(_)) => {
                return Err(ApiError::field("message.content.type", "an inbound message's content cannot be an outbound type"))
            }
            Some(content) => (content.kind(), b.message.text.clone().or_else(|| content.text()), Some(content)),
        };
        Ok(InboundEvent {
            channel_id,
            from,
            profile_name: b.customer.name.clone(),
            provider_message_id: b.message.id.clone(),
            kind,
            text,
            content,
            timestamp,
        })
    })();
    let event = match prepared {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let mutation = match Mutation::begin(&state, spec("events.ingest"), &caller, &headers, &body.raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    let outcome = {
        let journal = inbound_journal(&mutation, caller.org_id, now(&state), StatusCode::OK);
        state.messaging.ingest(caller.org_id, event, &journal).await
    };
    match outcome {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}
