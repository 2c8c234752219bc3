//! The messaging handlers (seed 000), one file per resource under `messaging/`: sends
//! (`messages`), `conversations` (and context, read receipts), external `events`, `actions`
//! (reply, draft, handoff), `channels`, `templates`, Meta's webhook (`meta_webhook`) and the
//! Agent tool API (`agent_tools`). Each validates its request, calls the `Messaging` use cases
//! with a journal, and answers in the envelope. This root owns what they share: the route
//! dispatch, the one mapping of `MessagingError` to the envelope, the send flow (`run_send`)
//! with its typed content fields, and the events a journal carries.
//!
//! The HTTP layer reaches the WhatsApp adapter only through the domain's ports (the webhook
//! decoder and template source are wired into `Messaging` by the binary). Request bodies and
//! answers are typed structs deriving `utoipa::ToSchema`, named by each route's contract in
//! `routes.rs` (`.accepts::<T>()`, `.returns::<T>()`); their examples live in `examples`.

pub(crate) mod actions;
pub(crate) mod agent_tools;
pub(crate) mod channels;
pub(crate) mod conversations;
pub(crate) mod events;
pub(crate) mod examples;
pub(crate) mod messages;
pub(crate) mod meta_webhook;
pub(crate) mod templates;

use crate::error::{ApiError, ErrorCode};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_conversations::{
    ChannelId, ConversationId, InboundRecorded, Interactive, MessagingError, OutboundMedia, SendCommand, SendReceipt, SendRequest,
    TemplateButton, TemplateCategory, TemplateHeader, TemplateRequest,
};
use atlas_kernel::{OrgId, PhoneNumber};
use atlas_scopes::Principal;
use atlas_webhooks::EventType;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The handler of a messaging route, if `operation` is one.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "messages.send" => on(filter, messages::send_message),
        "conversations.list" => on(filter, conversations::list_conversations),
        "conversations.messages" => on(filter, conversations::list_messages),
        "conversations.read" => on(filter, conversations::mark_read),
        "context.get" => on(filter, conversations::context),
        "events.ingest" => on(filter, events::ingest_event),
        "actions.execute" => on(filter, actions::execute_action),
        "channels.create" => on(filter, channels::create_channel),
        "channels.list" => on(filter, channels::list_channels),
        "channels.get" => on(filter, channels::get_channel),
        "channels.update" => on(filter, channels::update_channel),
        "channels.delete" => on(filter, channels::delete_channel),
        "channels.templates_sync" => on(filter, templates::sync_templates),
        "channels.webhook_verify" => on(filter, meta_webhook::webhook_verify),
        "channels.webhook" => on(filter, meta_webhook::webhook),
        "templates.create" => on(filter, templates::create_template),
        "templates.list" => on(filter, templates::list_templates),
        "tools.manifest" => on(filter, agent_tools::manifest),
        "tools.send_message" => on(filter, agent_tools::tool_send_message),
        "tools.send_message_to_phone" => on(filter, agent_tools::tool_send_to_phone),
        "tools.message_status" => on(filter, agent_tools::message_status),
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
                let mut err = match &refusal {
                    atlas_conversations::SendRefusal::Invalid { field, message } => ApiError::field(field, message.clone()),
                    other => ApiError::new(code, other.to_string()),
                };
                if let Some(hint) = refusal.hint() {
                    err = err.hint(hint);
                }
                err
            }
            MessagingError::Invalid { field, message } => ApiError::field(&field, message),
            MessagingError::NotFound => ApiError::not_found("resource"),
            MessagingError::NoChannel => ApiError::field("channel_id", "the organization has no channel to send through")
                .hint("connect one with POST /v1/atlas/channels"),
            MessagingError::Duplicate(what) => ApiError::new(ErrorCode::Conflict, format!("this {what} already exists")),
            MessagingError::ChannelDisconnected(id) => ApiError::new(ErrorCode::Conflict, format!("channel {id} is disconnected"))
                .hint("send on a connected channel (channel_id), or connect the number again")
                .detail("channel_id", json!(id)),
            MessagingError::BadSignature => ApiError::unauthorized("X-Hub-Signature-256 does not match this channel's app secret"),
            MessagingError::HandedOff(id) => ApiError::new(ErrorCode::ConversationHandedOff, "the conversation is handed off to a person")
                .hint("a person releases it with POST /v1/atlas/conversations/{id}/release")
                .detail("conversation_id", json!(id)),
            MessagingError::DraftDecided(state) => {
                ApiError::new(ErrorCode::Conflict, format!("the draft is {} already; a draft is decided once", state.as_str()))
                    .detail("state", json!(state.as_str()))
            }
            MessagingError::HandshakeRefused => ApiError::new(ErrorCode::Forbidden, "the verify token does not match this channel's"),
            MessagingError::Provider(e) => ApiError::new(ErrorCode::ProviderUnavailable, format!("the WhatsApp Cloud API failed: {e}"))
                .detail("provider_code", json!(e.code)),
            other => ApiError::internal(other),
        }
    }
}

fn now(state: &AppState) -> OffsetDateTime {
    state.clock.now()
}

/// `?limit=&cursor=` of list routes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    limit: Option<u64>,
    cursor: Option<String>,
}

/// An event for webhook subscribers, as a journal entry carries it into the outbox.
fn outbox_event(org_id: OrgId, event_type: EventType, at: OffsetDateTime, data: Value, resource_id: String) -> atlas_runs::OutboxEvent {
    atlas_webhooks::Event::new(org_id, event_type, at, data, Some(resource_id), 1).outbox()
}

/// `atlas.event.received` for a newly recorded inbound message (its `message` carries `kind`
/// and `content`).
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

/// What a send carries, as the seed's bodies spell it: free-form `text`, `media` or
/// `interactive` (inside the window), and/or a template with its parameters.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendFields {
    /// Free-form text (inside the 24-hour window).
    #[serde(default)]
    text: Option<String>,
    /// An image, audio, video, document or sticker by media id or link (inside the window).
    #[serde(default)]
    media: Option<OutboundMedia>,
    /// Reply buttons or a list (inside the window).
    #[serde(default)]
    interactive: Option<Interactive>,
    /// An approved template's name (`hello_world`) or id (`tpl_…`).
    #[serde(default, alias = "templateId")]
    template_id: Option<String>,
    /// `utility`, `marketing` or `authentication` (`transactional` means utility).
    #[serde(default)]
    category: Option<String>,
    /// The template's language, such as `en_US`.
    #[serde(default)]
    language: Option<String>,
    /// Values for the template body's `{{1}}`, `{{2}}`…
    #[serde(default)]
    parameters: Option<Vec<String>>,
    /// The template header's parameter (text, or an image, document or video).
    #[serde(default)]
    header: Option<TemplateHeader>,
    /// Template button parameters (quick-reply payloads, URL suffixes).
    #[serde(default)]
    buttons: Option<Vec<TemplateButton>>,
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
                if category.is_some()
                    || self.parameters.is_some()
                    || self.language.is_some()
                    || self.header.is_some()
                    || self.buttons.is_some()
                {
                    return Err(ApiError::field("template_id", "category, language, parameters, header and buttons go with template_id"));
                }
                None
            }
            Some(template_id) => Some(TemplateRequest {
                template_id,
                category,
                language: self.language,
                parameters: self.parameters.unwrap_or_default(),
                header: self.header,
                buttons: self.buttons.unwrap_or_default(),
            }),
        };
        Ok(SendRequest { text: self.text, template, media: self.media, interactive: self.interactive })
    }
}

/// Declares a send body: its own fields, then the send fields every send body carries (spelled
/// out in each struct rather than flattened, because serde cannot refuse unknown fields through
/// `flatten`).
macro_rules! send_body {
    ($(#[$meta:meta])* pub struct $name:ident { $($own:tt)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($own)*
            #[serde(default)]
            text: Option<String>,
            #[serde(default)]
            media: Option<OutboundMedia>,
            #[serde(default)]
            interactive: Option<Interactive>,
            #[serde(default, alias = "templateId")]
            template_id: Option<String>,
            /// `utility`, `marketing` or `authentication` (`transactional` means utility).
            #[serde(default)]
            category: Option<String>,
            #[serde(default)]
            language: Option<String>,
            #[serde(default)]
            parameters: Option<Vec<String>>,
            #[serde(default)]
            header: Option<TemplateHeader>,
            #[serde(default)]
            buttons: Option<Vec<TemplateButton>>,
        }
    };
}

send_body! {
    /// `POST /v1/atlas/messages` and `POST /agent/v1/tools/send_message_to_phone`: a send to a
    /// phone number (the send fields, plus where to send). Parsed once, unknown fields refused.
    #[derive(Debug, Deserialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct PhoneSendBody {
        /// E.164, such as `+14155552671` (spaces, dots, dashes and brackets are ignored).
        #[schema(pattern = r"^\s*(\+|00)[ .()-]*[1-9]([ .()-]*[0-9]){7,14}[ .()-]*\s*$")]
        phone_number: String,
        /// The channel to send through; default: where the customer last wrote, else the
        /// organization's default channel.
        #[serde(default)]
        channel_id: Option<String>,
        #[serde(default)]
        #[schema(min_length = 1, max_length = 255)]
        #[allow(dead_code)] // read from the raw body by `Mutation::begin`
        idempotency_key: Option<String>,
    }
}

send_body! {
    /// `POST /agent/v1/tools/send_message`: a send in an existing conversation.
    #[derive(Debug, Deserialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ConversationSendBody {
        /// The conversation (`conv_…`); the send goes out on its channel.
        conversation_id: String,
        #[serde(default)]
        #[schema(min_length = 1, max_length = 255)]
        #[allow(dead_code)] // read from the raw body by `Mutation::begin`
        idempotency_key: Option<String>,
    }
}

/// Moves the send fields of a typed body into `SendFields`.
macro_rules! send_fields_of {
    ($body:expr) => {
        SendFields {
            text: $body.text,
            media: $body.media,
            interactive: $body.interactive,
            template_id: $body.template_id,
            category: $body.category,
            language: $body.language,
            parameters: $body.parameters,
            header: $body.header,
            buttons: $body.buttons,
        }
    };
}

/// A typed id from a string field, or a field-level VALIDATION_ERROR naming `field`.
fn parse_id<T: std::str::FromStr>(field: &str, value: &str) -> Result<T, ApiError> {
    value.parse().map_err(|_| ApiError::field(field, "is not an id of the right kind"))
}

impl PhoneSendBody {
    /// A send to `phone_number` (through `channel_id`, or where the customer last wrote, or
    /// the default channel).
    fn command(self) -> Result<SendCommand, ApiError> {
        let phone_number = PhoneNumber::parse(&self.phone_number).map_err(|e| ApiError::field("phone_number", e.to_string()))?;
        let channel_id: Option<ChannelId> = self.channel_id.as_deref().map(|c| parse_id("channel_id", c)).transpose()?;
        let request = send_fields_of!(self).request()?;
        Ok(SendCommand { target: atlas_conversations::SendTarget::Phone { phone_number, channel_id }, request })
    }
}

impl ConversationSendBody {
    /// A send in the conversation, on its own channel.
    fn command(self) -> Result<SendCommand, ApiError> {
        let conversation: ConversationId = parse_id("conversation_id", &self.conversation_id)?;
        let request = send_fields_of!(self).request()?;
        Ok(SendCommand { target: atlas_conversations::SendTarget::Conversation(conversation), request })
    }
}

/// Runs one send: idempotency, the use case with a pending run, the answer rendered by `render`.
/// `operation` names the route; `run_operation`, when given, the run more precisely.
async fn run_send<A: Serialize>(
    state: &AppState,
    caller: &Principal,
    headers: &HeaderMap,
    raw: &Value,
    (operation, run_operation): (&'static str, Option<&str>),
    command: SendCommand,
    render: &(dyn Fn(&SendReceipt, &Value) -> A + Send + Sync),
) -> Response {
    let mut mutation = match Mutation::begin_at_commit(state, spec(operation), caller, headers, raw).await {
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
        let data = serde_json::to_value(render(receipt, &run)).unwrap_or(Value::Null);
        let mut entry = mutation.entry(None, None, status, &data, Some(receipt.message_id.to_string()), None);
        if run_operation == Some("actions.reply") {
            let result =
                json!({"message_id": receipt.message_id, "delivery_state": receipt.delivery_state, "channel_id": receipt.channel_id});
            entry.events.push(action_executed(caller.org_id, "reply", receipt.conversation_id, result, &run, at));
        }
        entry
    };
    // The tool API is the agents' face: its sends stop at a handed-off conversation.
    let sent = if operation.starts_with("tools.") {
        state.messaging.send_as_agent(caller.org_id, command, &journal).await
    } else {
        state.messaging.send(caller.org_id, command, &journal).await
    };
    match sent {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

fn prefix_fields(error: &mut ApiError, prefix: &str) {
    if let Some(Value::Array(fields)) = error.details.get_mut("fields") {
        for f in fields.iter_mut() {
            if let Some(name) = f.get("field").and_then(Value::as_str).map(str::to_owned) {
                f["field"] = json!(if name == "body" { prefix.to_owned() } else { format!("{prefix}.{name}") });
            }
        }
    }
    error.message = match error.message.strip_prefix("body:") {
        Some(rest) => format!("{prefix}:{rest}"),
        None => format!("{prefix}.{}", error.message),
    };
}
