//! Conversations: the list, a conversation's messages, the context an agent reads, and
//! `POST /v1/atlas/conversations/{id}/read` (the latest inbound message marked read at Meta,
//! through the outbox).

use super::{now, PageQuery};
use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_conversations::{
    ChannelId, ConversationId, ConversationStatus, ConversationView, Customer, CustomerId, CustomerSummary, DeliveryState, Direction,
    Message, MessageError, MessageId, MessageKind, MessageTemplate, OutboxId, ReadQueued, TemplateCategory,
};
use atlas_kernel::{PageRequest, PhoneNumber};
use atlas_runs::RunStatus;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

/// A page of conversations, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationList {
    /// Each with its customer, channel, status and window.
    #[schema(value_type = Vec<Object>)]
    pub conversations: Vec<ConversationView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A page of a conversation's messages, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageList {
    /// Each with its direction, kind, rich `content` and delivery state.
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<Message>,
    pub next_cursor: Option<String>,
}

/// What an agent reads before acting: the conversation, its customer, the 20 latest messages
/// and knowledge grounding: the best knowledge chunks for the customer's latest inbound text
/// (none when there is no such text or no matching knowledge).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Context {
    #[schema(value_type = Object)]
    pub conversation: ConversationView,
    #[schema(value_type = Object)]
    pub customer: Customer,
    #[schema(value_type = Vec<Object>)]
    pub recent_messages: Vec<Message>,
    pub knowledge: Vec<atlas_knowledge::SearchHit>,
}

pub(super) async fn list_conversations(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let now = now(&state);
    let conversations = state.messaging.conversations(caller.org_id, &page).await?.map(|c| c.view(now));
    let list = ConversationList { conversations: conversations.items, next_cursor: conversations.next_cursor };
    Ok(Envelope::sorted(ConversationListWire::of(&list)).into_response())
}

// The two pages are the reads clients make most: their answers are written straight from
// these borrowed views, with the keys in the sorted order that a `serde_json::Value` map (the
// generic envelope's path) prints, so the bytes are the same without building a `Value` tree per
// row. `typed_pages_print_what_values_print` proves it for every field.

/// [`ConversationList`] as written.
#[derive(Serialize)]
struct ConversationListWire<'a> {
    conversations: Vec<ConversationWire<'a>>,
    next_cursor: &'a Option<String>,
}

/// A [`ConversationView`] with its keys sorted.
#[derive(Serialize)]
struct ConversationWire<'a> {
    channel_id: &'a ChannelId,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    customer: CustomerWire<'a>,
    id: &'a ConversationId,
    #[serde(with = "time::serde::rfc3339::option")]
    last_inbound_at: Option<OffsetDateTime>,
    status: &'a ConversationStatus,
    #[serde(with = "time::serde::rfc3339::option")]
    window_expires_at: Option<OffsetDateTime>,
    window_open: bool,
}

/// A [`CustomerSummary`] with its keys sorted.
#[derive(Serialize)]
struct CustomerWire<'a> {
    id: &'a CustomerId,
    name: &'a Option<String>,
    phone_number: &'a PhoneNumber,
}

impl<'a> ConversationListWire<'a> {
    fn of(list: &'a ConversationList) -> Self {
        Self { conversations: list.conversations.iter().map(ConversationWire::of).collect(), next_cursor: &list.next_cursor }
    }
}

impl<'a> ConversationWire<'a> {
    fn of(view: &'a ConversationView) -> Self {
        let CustomerSummary { id, phone_number, name } = &view.customer;
        Self {
            channel_id: &view.channel_id,
            created_at: view.created_at,
            customer: CustomerWire { id, name, phone_number },
            id: &view.id,
            last_inbound_at: view.last_inbound_at,
            status: &view.status,
            window_expires_at: view.window_expires_at,
            window_open: view.window_open,
        }
    }
}

/// [`MessageList`] as written.
#[derive(Serialize)]
struct MessageListWire<'a> {
    messages: Vec<MessageWire<'a>>,
    next_cursor: &'a Option<String>,
}

/// A [`Message`] with its keys sorted. Rich `content` (media, interactive, inbound kinds; absent
/// from plain text and template messages) is an internally tagged enum whose `type` key serde
/// writes first, so it alone goes through a `Value`.
#[derive(Serialize)]
struct MessageWire<'a> {
    content: Option<Value>,
    conversation_id: &'a ConversationId,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    delivered_at: Option<OffsetDateTime>,
    delivery_state: &'a Option<DeliveryState>,
    direction: &'a Direction,
    error: Option<MessageErrorWire<'a>>,
    #[serde(with = "time::serde::rfc3339::option")]
    failed_at: Option<OffsetDateTime>,
    id: &'a MessageId,
    kind: &'a MessageKind,
    provider_message_id: &'a Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    read_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    sent_at: Option<OffsetDateTime>,
    template: Option<TemplateWire<'a>>,
    text: &'a Option<String>,
}

/// A [`MessageError`] with its keys sorted.
#[derive(Serialize)]
struct MessageErrorWire<'a> {
    code: &'a str,
    message: &'a str,
}

/// A [`MessageTemplate`] with its keys sorted.
#[derive(Serialize)]
struct TemplateWire<'a> {
    category: &'a TemplateCategory,
    language: &'a str,
    name: &'a str,
    parameters: &'a [String],
}

impl<'a> MessageListWire<'a> {
    fn of(list: &'a MessageList) -> Self {
        Self { messages: list.messages.iter().map(MessageWire::of).collect(), next_cursor: &list.next_cursor }
    }
}

impl<'a> MessageWire<'a> {
    fn of(message: &'a Message) -> Self {
        let Message {
            id,
            org_id: _,
            conversation_id,
            direction,
            kind,
            text,
            content,
            template,
            provider_message_id,
            delivery_state,
            error,
            created_at,
            sent_at,
            delivered_at,
            read_at,
            failed_at,
        } = message;
        Self {
            content: content.as_ref().map(|c| serde_json::to_value(c).unwrap_or(Value::Null)),
            conversation_id,
            created_at: *created_at,
            delivered_at: *delivered_at,
            delivery_state,
            direction,
            error: error.as_ref().map(|MessageError { code, message }| MessageErrorWire { code, message }),
            failed_at: *failed_at,
            id,
            kind,
            provider_message_id,
            read_at: *read_at,
            sent_at: *sent_at,
            template: template.as_ref().map(|MessageTemplate { name, language, category, parameters }| TemplateWire {
                category,
                language,
                name,
                parameters,
            }),
            text,
        }
    }
}

fn conversation_id(id: &str) -> Result<ConversationId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("conversation"))
}

pub(super) async fn list_messages(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let id = conversation_id(&id)?;
    // The store answers `NotFound` for a conversation the organization does not have.
    let messages = state.messaging.messages(caller.org_id, id, &page).await?;
    let list = MessageList { messages: messages.items, next_cursor: messages.next_cursor };
    Ok(Envelope::sorted(MessageListWire::of(&list)).into_response())
}

/// How many knowledge chunks the context carries.
pub(crate) const CONTEXT_KNOWLEDGE: u32 = 3;

/// The context of conversation `id` for `caller`: the one read the context route and the
/// `get_conversation` tool share.
pub(crate) async fn load_context(state: &AppState, caller: &atlas_scopes::Principal, id: ConversationId) -> Result<Context, ApiError> {
    let conversation = state.messaging.conversation(caller.org_id, id).await?;
    let recent = state.messaging.messages(caller.org_id, id, &PageRequest { limit: 20, after: None }).await?;
    let view = conversation.view(now(state));
    // Messages come newest first: the first inbound one with text is the latest.
    let latest_text = recent
        .items
        .iter()
        .filter(|m| m.direction == atlas_conversations::Direction::Inbound)
        .find_map(|m| m.text.clone().or_else(|| m.content.as_ref().and_then(|c| c.text())).filter(|t| !t.trim().is_empty()));
    let knowledge = match latest_text {
        Some(text) => crate::knowledge::search_hits(state, caller.org_id, &text, Some(CONTEXT_KNOWLEDGE)).await?,
        None => Vec::new(),
    };
    Ok(Context { conversation: view, customer: conversation.customer, recent_messages: recent.items, knowledge })
}

pub(super) async fn context(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = conversation_id(&id)?;
    Ok(Envelope::ok(load_context(&state, &caller, id).await?).into_response())
}

/// The answer of `POST /v1/atlas/conversations/{id}/read` (202).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadAnswer {
    #[schema(value_type = String)]
    pub conversation_id: ConversationId,
    /// The inbound message marked read.
    #[schema(value_type = String)]
    pub message_id: MessageId,
    pub provider_message_id: String,
    #[schema(value_type = String)]
    pub outbox_id: OutboxId,
    /// False when that message's receipt was already queued.
    pub queued: bool,
}

pub(super) async fn mark_read(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<Value>,
) -> Response {
    let id = match conversation_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    if let Some(key) = body.raw.as_object().and_then(|o| o.keys().find(|k| k.as_str() != "idempotency_key")) {
        return crate::extract::field_error(key, "unknown field: this route takes no body (idempotency_key only)").into_response();
    }
    let mut mutation = match Mutation::begin(&state, spec("conversations.read"), &caller, &headers, &body.raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    mutation.set_pending();
    let journal = |r: &ReadQueued| {
        let answer = ReadAnswer {
            conversation_id: r.conversation_id,
            message_id: r.message_id,
            provider_message_id: r.provider_message_id.clone(),
            outbox_id: r.outbox_id,
            queued: r.queued,
        };
        let data = serde_json::to_value(answer).unwrap_or(Value::Null);
        let mut entry = mutation.entry(None, None, StatusCode::ACCEPTED, &data, Some(r.message_id.to_string()), None);
        if !r.queued {
            // Nothing new to deliver: the run is done now.
            entry.run.status = RunStatus::Succeeded;
        }
        entry
    };
    match state.messaging.mark_read(caller.org_id, id, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{sorted_success_body, success_body};
    use serde_json::json;
    use time::macros::datetime;
    use uuid::Uuid;

    fn view(n: u128, name: Option<&str>, last_inbound: Option<OffsetDateTime>) -> ConversationView {
        ConversationView {
            id: ConversationId::from_uuid(Uuid::from_u128(n)),
            customer: CustomerSummary {
                id: CustomerId::from_uuid(Uuid::from_u128(n + 1000)),
                phone_number: PhoneNumber::parse("+15550001234").expect("a valid number"),
                name: name.map(str::to_owned),
            },
            channel_id: ChannelId::from_uuid(Uuid::from_u128(7)),
            status: ConversationStatus::HandedOff,
            window_open: last_inbound.is_some(),
            window_expires_at: last_inbound.map(|at| at + time::Duration::hours(24)),
            last_inbound_at: last_inbound,
            created_at: datetime!(2026-01-02 03:04:05.678901 UTC),
        }
    }

    fn message(n: u128, content: Option<Value>, template: bool, failed: bool) -> Message {
        let at = datetime!(2026-01-02 03:04:05.5 UTC);
        Message {
            id: MessageId::from_uuid(Uuid::from_u128(n)),
            org_id: atlas_kernel::OrgId::from_uuid(Uuid::from_u128(1)),
            conversation_id: ConversationId::from_uuid(Uuid::from_u128(2)),
            direction: if content.is_some() { Direction::Inbound } else { Direction::Outbound },
            kind: if template { MessageKind::Template } else { MessageKind::Text },
            text: (!template).then(|| format!("hello \"{n}\" ünïcode")),
            content: content.map(|c| serde_json::from_value(c).expect("a valid content")),
            template: template.then(|| MessageTemplate {
                name: "hello_world".into(),
                language: "en_US".into(),
                category: TemplateCategory::Marketing,
                parameters: vec!["a".into(), "b".into()],
            }),
            provider_message_id: failed.then(|| format!("wamid.{n}")),
            delivery_state: Some(if failed { DeliveryState::Failed } else { DeliveryState::Delivered }),
            error: failed.then(|| MessageError::new("131026", "undeliverable")),
            created_at: at,
            sent_at: Some(at),
            delivered_at: (!failed).then_some(at),
            read_at: None,
            failed_at: failed.then_some(at),
        }
    }

    /// The typed pages print, byte for byte, what the generic envelope (a `Value` tree, keys
    /// sorted) prints for the same answer: every field set and unset, rich content included.
    #[test]
    fn typed_pages_print_what_values_print() {
        let at = datetime!(2026-01-01 00:00:00 UTC);
        let conversations = ConversationList {
            conversations: vec![view(1, Some("Ada"), Some(at)), view(2, None, None)],
            next_cursor: Some("cursor".into()),
        };
        let generic = success_body(&serde_json::to_value(&conversations).expect("a value"));
        assert_eq!(sorted_success_body(&ConversationListWire::of(&conversations)).expect("bytes"), generic);
        let empty = ConversationList { conversations: vec![], next_cursor: None };
        let generic = success_body(&serde_json::to_value(&empty).expect("a value"));
        assert_eq!(sorted_success_body(&ConversationListWire::of(&empty)).expect("bytes"), generic);

        let contents = [
            json!({"type": "location", "latitude": 52.52, "longitude": 13.405, "name": "Berlin", "address": null, "url": null}),
            json!({"type": "reaction", "message_id": "wamid.reacted", "emoji": "\u{1f44d}"}),
            json!({"type": "button", "payload": "p", "text": "t"}),
            json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Z"}, "phones": []}]}),
            json!({"type": "text", "body": "hi"}),
        ];
        let mut messages: Vec<Message> = contents.into_iter().enumerate().map(|(i, c)| message(i as u128, Some(c), false, false)).collect();
        messages.push(message(10, None, true, false));
        messages.push(message(11, None, false, true));
        let list = MessageList { messages, next_cursor: None };
        let generic = success_body(&serde_json::to_value(&list).expect("a value"));
        assert_eq!(
            String::from_utf8(sorted_success_body(&MessageListWire::of(&list)).expect("bytes")).expect("utf-8"),
            String::from_utf8(generic).expect("utf-8")
        );
    }
}
