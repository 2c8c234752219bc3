//! The messaging handlers (seed 000): sends under the window rules, conversations and context,
//! external events, actions (reply, draft, handoff), channels and templates, Meta's webhook,
//! and the Agent tool API. Each validates its request, calls the `Messaging` use cases with a
//! journal, and answers in the envelope.

use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{field_error, typed, JsonBody, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_conversations::{
    Channel, ChannelProvider, ChannelSecrets, ConnectChannel, ConversationId, DeliveryState, InboundEvent, InboundRecorded, MessageError,
    MessageKind, MessagingError, RegisterTemplate, SendCommand, SendReceipt, SendRequest, SendTarget, StatusEvent, Template,
    TemplateCategory, TemplateRequest, TemplateStatus,
};
use atlas_kernel::{OrgId, PageRequest, PhoneNumber};
use atlas_runs::JournalEntry;
use atlas_scopes::{Principal, Scope};
use atlas_webhooks::EventType;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The handler of a messaging route, if `operation` is one.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "messages.send" => on(filter, send_message),
        "conversations.list" => on(filter, list_conversations),
        "conversations.messages" => on(filter, list_messages),
        "context.get" => on(filter, context),
        "events.ingest" => on(filter, ingest_event),
        "actions.execute" => on(filter, execute_action),
        "channels.create" => on(filter, create_channel),
        "channels.list" => on(filter, list_channels),
        "channels.webhook_verify" => on(filter, webhook_verify),
        "channels.webhook" => on(filter, webhook),
        "templates.create" => on(filter, create_template),
        "templates.list" => on(filter, list_templates),
        "tools.manifest" => on(filter, manifest),
        "tools.send_message" => on(filter, tool_send_message),
        "tools.send_message_to_phone" => on(filter, tool_send_to_phone),
        "tools.message_status" => on(filter, message_status),
        _ => return None,
    })
}

impl From<MessagingError> for ApiError {
    fn from(e: MessagingError) -> Self {
        // The domain decides what is a committed outcome; anything else is retryable (and so
        // never stored for replay).
        let business = e.is_business_outcome();
        let mut err = ApiError::from_messaging(e);
        err.retryable |= !business;
        err
    }
}

impl ApiError {
    fn from_messaging(e: MessagingError) -> Self {
        match e {
            MessagingError::Refused(refusal) => {
                let code = match refusal.code() {
                    "WINDOW_CLOSED" => ErrorCode::WindowClosed,
                    "TEMPLATE_NOT_FOUND" => ErrorCode::TemplateNotFound,
                    _ => ErrorCode::ValidationError,
                };
                let mut err = if code == ErrorCode::ValidationError {
                    match &refusal {
                        atlas_conversations::SendRefusal::Invalid { field, message } => ApiError::field(field, message.clone()),
                        other => ApiError::new(code, other.to_string()),
                    }
                } else {
                    ApiError::new(code, refusal.to_string())
                };
                if let Some(hint) = refusal.hint() {
                    err = err.hint(hint);
                }
                err
            }
            MessagingError::Invalid { field, message } => ApiError::field(field, message),
            MessagingError::NotFound => ApiError::not_found("resource"),
            MessagingError::NoChannel => ApiError::field("channel_id", "the organization has no channel to send through")
                .hint("connect one with POST /v1/atlas/channels"),
            MessagingError::Duplicate(what) => ApiError::new(ErrorCode::Conflict, format!("this {what} already exists")),
            other => ApiError::internal(other),
        }
    }
}

fn now(state: &AppState) -> OffsetDateTime {
    state.clock.now()
}

/// An event for webhook subscribers, as a journal entry carries it into the outbox.
fn outbox_event(org_id: OrgId, event_type: EventType, at: OffsetDateTime, data: Value, resource_id: String) -> atlas_runs::OutboxEvent {
    atlas_webhooks::Event::new(org_id, event_type, at, data, Some(resource_id), 1).outbox()
}

/// `atlas.event.received` for a newly recorded inbound message.
fn event_received(org_id: OrgId, recorded: &InboundRecorded, at: OffsetDateTime) -> atlas_runs::OutboxEvent {
    let data = json!({
        "event_type": "message.received",
        "conversation_id": recorded.conversation.id,
        "customer": recorded.customer,
        "channel_id": recorded.conversation.channel_id,
        "message": recorded.message,
    });
    outbox_event(org_id, EventType::EVENT_RECEIVED, at, data, recorded.message.id.to_string())
}

/// `atlas.action.executed` for an action, with what it did.
fn action_executed(
    org_id: OrgId,
    action: &str,
    conversation: ConversationId,
    result: Value,
    run: &Value,
    at: OffsetDateTime,
) -> atlas_runs::OutboxEvent {
    let data = json!({"action_type": action, "conversation_id": conversation, "result": result, "run": run});
    outbox_event(org_id, EventType::ACTION_EXECUTED, at, data, conversation.to_string())
}

// ---------------------------------------------------------------- sends

/// What a send asks for, as the seed's bodies spell it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendFields {
    #[serde(default)]
    text: Option<String>,
    #[serde(default, alias = "templateId")]
    template_id: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    parameters: Option<Vec<String>>,
}

impl SendFields {
    fn request(self) -> Result<SendRequest, ApiError> {
        let category = self
            .category
            .as_deref()
            .map(|c| {
                TemplateCategory::parse(c).ok_or_else(|| {
                    ApiError::field("category", "must be utility, marketing or authentication (transactional means utility)")
                })
            })
            .transpose()?;
        let template = match self.template_id {
            None => {
                if category.is_some() || self.parameters.is_some() || self.language.is_some() {
                    return Err(ApiError::field("template_id", "category, language and parameters go with template_id"));
                }
                None
            }
            Some(template_id) => {
                Some(TemplateRequest { template_id, category, language: self.language, parameters: self.parameters.unwrap_or_default() })
            }
        };
        Ok(SendRequest { text: self.text, template })
    }
}

/// Pulls the send fields out of a body that also carries other fields.
fn send_fields(raw: &Value, others: &[&str]) -> Result<SendRequest, ApiError> {
    let mut fields = raw.as_object().cloned().unwrap_or_default();
    for key in others.iter().chain(["idempotency_key"].iter()) {
        fields.remove(*key);
    }
    typed::<SendFields>(&Value::Object(fields))?.request()
}

fn phone(raw: &Value, field: &str) -> Result<PhoneNumber, ApiError> {
    match raw.get(field) {
        Some(Value::String(s)) => PhoneNumber::parse(s).map_err(|e| ApiError::field(field, e.to_string())),
        Some(_) => Err(ApiError::field(field, "must be a string such as +14155552671")),
        None => Err(ApiError::field(field, "is required")),
    }
}

fn id_field<T: std::str::FromStr>(raw: &Value, field: &str, required: bool) -> Result<Option<T>, ApiError> {
    match raw.get(field) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(ApiError::field(field, "is required")),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| ApiError::field(field, "is not an id of the right kind")),
        Some(_) => Err(ApiError::field(field, "must be a string id")),
    }
}

/// Runs one send: idempotency, the use case with a pending run, the answer rendered by `render`.
/// `operation` names the route; `run_operation`, when given, the run more precisely.
async fn run_send(
    state: &AppState,
    caller: &Principal,
    headers: &HeaderMap,
    raw: &Value,
    (operation, run_operation): (&'static str, Option<&str>),
    command: SendCommand,
    render: &(dyn Fn(&SendReceipt, &Value) -> Value + Send + Sync),
) -> Response {
    let mut mutation = match Mutation::begin(state, spec(operation), caller, headers, raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    if let Some(op) = run_operation {
        mutation.set_operation(op);
    }
    mutation.set_pending();
    let status = StatusCode::from_u16(spec(operation).success).unwrap_or(StatusCode::ACCEPTED);
    let run = mutation.run_summary();
    let at = state.clock.now();
    let journal = |receipt: &SendReceipt| {
        let data = render(receipt, &run);
        let mut entry = mutation.entry(None, None, status, &data, Some(receipt.message_id.to_string()), None);
        if run_operation == Some("actions.reply") {
            let result = json!({"message_id": receipt.message_id, "delivery_state": receipt.delivery_state});
            entry.events.push(action_executed(caller.org_id, "reply", receipt.conversation_id, result, &run, at));
        }
        entry
    };
    match state.messaging.send(caller.org_id, command, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// A send to `phone_number` (through `channel_id` or the default channel), from a body.
fn phone_command(raw: &Value) -> Result<SendCommand, ApiError> {
    let phone_number = phone(raw, "phone_number")?;
    let channel_id = id_field(raw, "channel_id", false)?;
    let request = send_fields(raw, &["phone_number", "channel_id"])?;
    Ok(SendCommand { target: SendTarget::Phone { phone_number, channel_id }, request })
}

async fn send_message(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<Value>) -> Response {
    let raw = body.raw;
    let command = match phone_command(&raw) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let render = |r: &SendReceipt, _run: &Value| {
        json!({
            "accepted": true,
            "delivery_state": r.delivery_state,
            "conversation_id": r.conversation_id,
            "customer_id": r.customer_id,
            "message_id": r.message_id,
            "outbox_id": r.outbox_id,
            "channel_id": r.channel_id,
            "kind": r.kind,
            "window_open": r.window_open,
        })
    };
    run_send(&state, &caller, &headers, &raw, ("messages.send", None), command, &render).await
}

async fn tool_send_message(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<Value>) -> Response {
    let raw = body.raw;
    let prepared = (|| {
        let conversation: ConversationId =
            id_field(&raw, "conversation_id", true)?.ok_or_else(|| ApiError::field("conversation_id", "is required"))?;
        let request = send_fields(&raw, &["conversation_id"])?;
        Ok::<_, ApiError>(SendCommand { target: SendTarget::Conversation(conversation), request })
    })();
    let command = match prepared {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let render = |r: &SendReceipt, _run: &Value| json!({"conversation_id": r.conversation_id, "queued": true, "window_open": r.window_open, "outbox_id": r.outbox_id, "message_id": r.message_id, "kind": r.kind});
    run_send(&state, &caller, &headers, &raw, ("tools.send_message", None), command, &render).await
}

async fn tool_send_to_phone(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<Value>) -> Response {
    let raw = body.raw;
    let command = match phone_command(&raw) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let render = |r: &SendReceipt, _run: &Value| {
        json!({
            "conversation_id": r.conversation_id, "queued": true, "window_open": r.window_open, "outbox_id": r.outbox_id,
            "message_id": r.message_id, "phone_number": r.phone_number, "kind": r.kind,
        })
    };
    run_send(&state, &caller, &headers, &raw, ("tools.send_message_to_phone", None), command, &render).await
}

async fn message_status(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let message = state.messaging.message_by_provider_id(caller.org_id, &id).await?;
    let state_name = message.delivery_state.map(|s| s.as_str()).unwrap_or("received");
    let updated_at = [message.failed_at, message.read_at, message.delivered_at, message.sent_at]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(message.created_at);
    Ok(Envelope::ok(json!({
        "status": state_name,
        "updated_at": updated_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "provider_message_id": message.provider_message_id,
        "message_id": message.id,
        "conversation_id": message.conversation_id,
        "error": message.error,
    }))
    .into_response())
}

// ---------------------------------------------------------------- conversations

#[derive(Debug, Deserialize)]
struct PageQuery {
    limit: Option<u64>,
    cursor: Option<String>,
}

async fn list_conversations(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let now = now(&state);
    let conversations = state.messaging.conversations(caller.org_id, &page).await?.map(|c| c.view(now));
    Ok(Envelope::ok(json!({"conversations": conversations.items, "next_cursor": conversations.next_cursor})).into_response())
}

fn conversation_id(id: &str) -> Result<ConversationId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("conversation"))
}

async fn list_messages(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let id = conversation_id(&id)?;
    state.messaging.conversation(caller.org_id, id).await?;
    let messages = state.messaging.messages(caller.org_id, id, &page).await?;
    Ok(Envelope::ok(json!({"messages": messages.items, "next_cursor": messages.next_cursor})).into_response())
}

async fn context(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = conversation_id(&id)?;
    let conversation = state.messaging.conversation(caller.org_id, id).await?;
    let recent = state.messaging.messages(caller.org_id, id, &PageRequest { limit: 20, after: None }).await?;
    let view = conversation.view(now(&state));
    Ok(Envelope::ok(json!({
        "conversation": view,
        "customer": conversation.customer,
        "recent_messages": recent.items,
        "knowledge": [],
    }))
    .into_response())
}

// ---------------------------------------------------------------- events

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventCustomer {
    phone_number: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventMessage {
    #[serde(default)]
    text: Option<String>,
    /// The provider's id of the message, when the source has one (deduplicates).
    #[serde(default)]
    id: Option<String>,
    /// When the customer sent it (RFC 3339); defaults to now.
    #[serde(default)]
    timestamp: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    #[serde(default)]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    channel_id: Option<String>,
    customer: EventCustomer,
    event_type: String,
    message: EventMessage,
}

fn inbound_journal(
    mutation: &Mutation,
    org_id: OrgId,
    at: OffsetDateTime,
    status: StatusCode,
) -> impl Fn(&InboundRecorded) -> Option<JournalEntry> + Send + Sync + '_ {
    move |recorded: &InboundRecorded| {
        let data = json!({
            "accepted": true,
            "duplicate": recorded.duplicate,
            "conversation_id": recorded.conversation.id,
            "customer_id": recorded.customer.id,
            "message_id": recorded.message.id,
        });
        let mut entry = mutation.entry(None, None, status, &data, Some(recorded.message.id.to_string()), None);
        if !recorded.duplicate {
            entry.events.push(event_received(org_id, recorded, at));
        }
        Some(entry)
    }
}

async fn ingest_event(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<EventBody>) -> Response {
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
        Ok(InboundEvent {
            channel_id,
            from,
            profile_name: b.customer.name.clone(),
            provider_message_id: b.message.id.clone(),
            kind: MessageKind::Text,
            text: b.message.text.clone(),
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

// ---------------------------------------------------------------- actions

async fn execute_action(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<Value>) -> Response {
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
            let render = |r: &SendReceipt, run: &Value| {
                json!({"accepted": true, "action_type": "reply", "delivery_state": r.delivery_state, "conversation_id": r.conversation_id,
                       "message_id": r.message_id, "outbox_id": r.outbox_id, "window_open": r.window_open, "run": run})
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

fn prefix_fields(error: &mut ApiError, prefix: &str) {
    if let Some(Value::Array(fields)) = error.details.get_mut("fields") {
        for f in fields.iter_mut() {
            if let Some(name) = f.get("field").and_then(Value::as_str).map(str::to_owned) {
                f["field"] = json!(format!("{prefix}.{name}"));
            }
        }
    }
    error.message = format!("{prefix}.{}", error.message);
}

// ---------------------------------------------------------------- channels and templates

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelBody {
    #[serde(default)]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
    provider: String,
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

async fn create_channel(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<ChannelBody>,
) -> Response {
    let b = body.value;
    let provider = match b.provider.as_str() {
        "whatsapp" => ChannelProvider::Whatsapp,
        "sandbox" => ChannelProvider::Sandbox,
        _ => return ApiError::field("provider", "must be whatsapp or sandbox").into_response(),
    };
    let request = ConnectChannel {
        provider,
        name: b.name,
        phone_number_id: b.phone_number_id.unwrap_or_default(),
        display_phone_number: b.display_phone_number.unwrap_or_default(),
        verify_token: b.verify_token.unwrap_or_default(),
        secrets: ChannelSecrets { access_token: b.access_token.unwrap_or_default(), app_secret: b.app_secret.unwrap_or_default() },
    };
    let mutation = match Mutation::begin(&state, spec("channels.create"), &caller, &headers, &body.raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    let journal = |channel: &Channel| {
        let data = channel_view(channel);
        let location = format!("/v1/atlas/channels/{}", channel.id);
        mutation.entry(None, None, StatusCode::CREATED, &data, Some(channel.id.to_string()), Some(location))
    };
    match state.messaging.connect_channel(caller.org_id, request, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

fn channel_view(channel: &Channel) -> Value {
    let mut data = json!(channel);
    data["webhook_url"] = json!(format!("/v1/atlas/channels/{}/webhook", channel.id));
    data
}

async fn list_channels(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let channels = state.messaging.channels(caller.org_id, &page).await?.map(|c| channel_view(&c));
    Ok(Envelope::ok(json!({"channels": channels.items, "next_cursor": channels.next_cursor})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    #[serde(default)]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
    name: String,
    language: String,
    category: String,
    #[serde(default)]
    status: Option<String>,
    body: String,
}

async fn create_template(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<TemplateBody>,
) -> Response {
    let b = body.value;
    let prepared = (|| {
        let category = TemplateCategory::parse(&b.category)
            .ok_or_else(|| ApiError::field("category", "must be utility, marketing or authentication (transactional means utility)"))?;
        let status = match b.status.as_deref() {
            None => TemplateStatus::Approved,
            Some(s) => TemplateStatus::parse(s).ok_or_else(|| ApiError::field("status", "must be approved, pending or rejected"))?,
        };
        Ok::<_, ApiError>(RegisterTemplate { name: b.name.clone(), language: b.language.clone(), category, status, body: b.body.clone() })
    })();
    let request = match prepared {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mutation = match Mutation::begin(&state, spec("templates.create"), &caller, &headers, &body.raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    let journal = |template: &Template| {
        mutation.entry(
            None,
            None,
            StatusCode::CREATED,
            &json!(template),
            Some(template.id.to_string()),
            Some(format!("/v1/atlas/templates/{}", template.id)),
        )
    };
    match state.messaging.register_template(caller.org_id, request, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn list_templates(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let templates = state.messaging.templates(caller.org_id, &page).await?;
    Ok(Envelope::ok(json!({"templates": templates.items, "next_cursor": templates.next_cursor})).into_response())
}

// ---------------------------------------------------------------- Meta's webhook

#[derive(Debug, Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

async fn webhook_verify(State(state): State<AppState>, Path(id): Path<String>, QueryParams(q): QueryParams<Handshake>) -> Response {
    let Ok(id) = id.parse() else { return ApiError::not_found("channel").into_response() };
    let channel = match state.messaging.webhook_channel(id).await {
        Ok((channel, _)) => channel,
        Err(MessagingError::NotFound) => return ApiError::not_found("channel").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    match atlas_whatsapp::verify_handshake(q.mode.as_deref(), q.verify_token.as_deref(), q.challenge.as_deref(), &channel.verify_token) {
        Some(challenge) => (StatusCode::OK, challenge).into_response(),
        None => ApiError::new(ErrorCode::Forbidden, "the verify token does not match this channel's").into_response(),
    }
}

/// The journal entry of one webhook message: a system run, no idempotency outcome (Meta's
/// retries are deduplicated by the message id's unique constraint).
fn webhook_run(org_id: OrgId, operation: &str, resource: String, now: OffsetDateTime) -> JournalEntry {
    JournalEntry::by_system(org_id, operation, resource, crate::request_id::current(), now)
}

/// Applies provider statuses (Meta's webhook, the sandbox) to the organization's messages.
///
/// # Errors
/// The first store failure; statuses before it are applied.
pub async fn apply_statuses(state: &AppState, org_id: OrgId, statuses: &[atlas_whatsapp::StatusUpdate]) -> Result<(), ApiError> {
    for status in statuses {
        let delivery_state = match &status.status {
            atlas_whatsapp::DeliveryStatus::Sent => DeliveryState::Sent,
            atlas_whatsapp::DeliveryStatus::Delivered => DeliveryState::Delivered,
            atlas_whatsapp::DeliveryStatus::Read => DeliveryState::Read,
            atlas_whatsapp::DeliveryStatus::Failed => DeliveryState::Failed,
            atlas_whatsapp::DeliveryStatus::Other(_) => continue,
        };
        let error = status.error.as_ref().map(|e| {
            MessageError::new(
                e.code.map_or_else(|| "provider_error".to_owned(), |c| c.to_string()),
                e.message.clone().or_else(|| e.title.clone()).unwrap_or_else(|| "failed".into()),
            )
        });
        let event = StatusEvent { state: delivery_state, at: status.timestamp, error };
        state.messaging.apply_status(org_id, &status.wamid, &event).await?;
    }
    state.wake.webhooks.notify_one();
    Ok(())
}

async fn webhook(State(state): State<AppState>, Path(id): Path<String>, request: Request<Body>) -> Response {
    let Ok(id) = id.parse() else { return ApiError::not_found("channel").into_response() };
    let signature = request.headers().get(atlas_whatsapp::SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let raw = match axum::body::to_bytes(request.into_body(), atlas_whatsapp::MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return ApiError::new(ErrorCode::PayloadTooLarge, "Meta's webhook bodies are at most 3 MB").into_response(),
    };
    let (channel, secrets) = match state.messaging.webhook_channel(id).await {
        Ok(found) => found,
        Err(MessagingError::NotFound) => return ApiError::not_found("channel").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if !atlas_whatsapp::verify_signature(secrets.app_secret.as_bytes(), &raw, signature.as_deref()) {
        return ApiError::unauthorized("X-Hub-Signature-256 does not match this channel's app secret").into_response();
    }
    let batch = match atlas_whatsapp::parse_webhook(&raw) {
        Ok(batch) => batch,
        Err(e) => return ApiError::field("body", e.to_string()).into_response(),
    };
    let org_id = channel.org_id;
    for message in &batch.messages {
        let Ok(from) = PhoneNumber::parse(&format!("+{}", message.from)) else {
            tracing::warn!(from = %message.from, "webhook message from an unusable number skipped");
            continue;
        };
        let kind = if message.kind == "text" { MessageKind::Text } else { MessageKind::Media };
        let event = InboundEvent {
            channel_id: Some(channel.id),
            from,
            profile_name: message.profile_name.clone(),
            provider_message_id: Some(message.wamid.clone()),
            kind,
            text: message.text.clone(),
            timestamp: Some(message.timestamp),
        };
        let now = now(&state);
        let journal = |recorded: &InboundRecorded| {
            (!recorded.duplicate).then(|| {
                let mut entry = webhook_run(org_id, "webhook.message", recorded.message.id.to_string(), now);
                entry.events.push(event_received(org_id, recorded, now));
                entry
            })
        };
        if let Err(e) = state.messaging.ingest(org_id, event, &journal).await {
            return ApiError::from(e).into_response();
        }
    }
    if let Err(e) = apply_statuses(&state, org_id, &batch.statuses).await {
        return e.into_response();
    }
    state.wake.webhooks.notify_one();
    Envelope::ok(json!({"received": true, "messages": batch.messages.len(), "statuses": batch.statuses.len()})).into_response()
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
        "template_id": {"type": "string", "description": "An approved template's name or id; required outside the window"},
        "category": {"type": "string", "enum": ["utility", "marketing", "authentication"]},
        "language": {"type": "string", "description": "The template's language code, such as en_US"},
        "parameters": {"type": "array", "items": {"type": "string"}, "description": "Values for {{1}}, {{2}}, …"},
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
            json!({"name": "send_message", "description": "Send a WhatsApp message in an existing conversation. Text only works while the customer's 24-hour window is open; otherwise pass an approved template.",
            "parameters": send_parameters(json!({"conversation_id": {"type": "string"}}), "conversation_id")})
        },
    },
    Tool {
        scope: Scope::ActionsExecute,
        method: "POST",
        path: "/agent/v1/tools/send_message_to_phone",
        function: || {
            json!({"name": "send_message_to_phone", "description": "Send a WhatsApp message to any phone number, creating or reusing the customer and conversation.",
            "parameters": send_parameters(json!({"phone_number": {"type": "string", "description": "E.164, such as +14155552671"}}), "phone_number")})
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

async fn manifest(Caller(caller): Caller) -> Response {
    let tools: Vec<Value> = TOOLS
        .iter()
        .filter(|t| caller.has(t.scope))
        .map(|t| json!({"type": "function", "function": (t.function)(), "x-endpoint": {"method": t.method, "path": t.path}, "x-required-scopes": [t.scope.as_str()]}))
        .collect();
    Envelope::ok(json!({"tools": tools})).into_response()
}
