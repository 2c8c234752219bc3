//! The messaging use cases over the ports: [`Messaging`] (connect channels, register templates,
//! send under the window rules, ingest inbound messages and provider statuses, hand off, draft,
//! read) and [`Delivery`] (one outbox row through the provider, with retries), and the one
//! domain error the HTTP layer maps, [`MessagingError`].
//!
//! A refusal by a business rule (`WINDOW_CLOSED`, `TEMPLATE_NOT_FOUND`, `VALIDATION_ERROR`,
//! `NOT_FOUND`) commits nothing here: the caller records its failed run and replayable answer
//! with `RunStore::record`, as for any refused call.

use crate::content::MessageContent;
use crate::delivery::{DeliveryState, StatusEvent};
use crate::model::{
    check_template_body, Channel, ChannelId, ChannelProvider, ChannelSecrets, Conversation, ConversationId, ConversationStatus, CustomerId,
    DefaultRule, Draft, DraftId, DraftState, Message, MessageError, MessageId, MessageKind, NewChannel, OutboxId, SecretsUnreadable,
    Template, TemplateCategory, TemplateId, TemplateStatus,
};
use crate::ports::{
    Completion, ConversationError, ConversationStore, Enqueued, InboundRecorded, Journal, MessagingProvider, NewInbound, NewOutbound,
    Outbox, OutboxItem, ProviderAccepted, ProviderChange, ProviderError, ProviderErrorKind, ProviderItem, ProviderStatus, ReadQueued,
    SecretCipher, SendContext, SendContexts, SendLookup, StatusApplied, TemplateSource, TemplatesSynced, WebhookDecoder,
};
use crate::retry::{RetryDecision, RetryPolicy};
use crate::window::{decide_send, effective_inbound_at, window_open, SendRefusal, SendRequest, MAX_TEXT_CHARS};
use async_trait::async_trait;
use atlas_kernel::{Clock, OrgId, Page, PageRequest, PhoneNumber, StoreError};
use atlas_runs::JournalEntry;
use std::sync::Arc;
use thiserror::Error;
use time::OffsetDateTime;

/// Why a messaging use case refused or failed. The HTTP layer maps each variant once; the
/// envelope code each one means is [`MessagingError::code`].
#[derive(Debug, Error)]
pub enum MessagingError {
    /// The send is refused by the window or template rules (`WINDOW_CLOSED`,
    /// `TEMPLATE_NOT_FOUND`, or `VALIDATION_ERROR` for a malformed send): see `SendRefusal::code`.
    #[error(transparent)]
    Refused(#[from] SendRefusal),
    /// A field is malformed (`VALIDATION_ERROR`, `details.fields[]` names `field`).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The send names (or its conversation is on) a disconnected channel (`CONFLICT`, 409).
    #[error("channel {0} is disconnected")]
    ChannelDisconnected(ChannelId),
    /// A webhook whose signature does not match the channel's app secret (`UNAUTHORIZED`).
    #[error("the webhook signature does not match the channel's app secret")]
    BadSignature,
    /// A webhook handshake with the wrong verify token (`FORBIDDEN`).
    #[error("the verify token does not match the channel's")]
    HandshakeRefused,
    /// The provider refused or failed a call that needed an answer now (`PROVIDER_UNAVAILABLE`).
    #[error("the provider failed: {0}")]
    Provider(ProviderError),
    /// The conversation (or channel, message) is absent or another organization's (`NOT_FOUND`).
    #[error("not found")]
    NotFound,
    /// A send by phone number, or an inbound event, needs a channel and the organization has
    /// none (`VALIDATION_ERROR` on `channel_id`, hint: connect one with `POST /v1/atlas/channels`).
    #[error("the organization has no channel connected")]
    NoChannel,
    /// A unique rule refused the new row: `channel` (same `phone_number_id`) or `template` (same
    /// name and language) (`VALIDATION_ERROR` on that resource's key field).
    #[error("{0} already exists")]
    Duplicate(&'static str),
    /// An outbox row changed under a worker (`INTERNAL_ERROR`; only workers see it).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The channel's stored secrets do not decrypt: `ATLAS_SECRET_KEY` changed (`INTERNAL_ERROR`).
    #[error(transparent)]
    Secrets(#[from] SecretsUnreadable),
    /// An agent tried to send in a conversation a person owns (`CONVERSATION_HANDED_OFF`, 409),
    /// until it is released.
    #[error("the conversation is handed off to a person; agents may not send in it until it is released")]
    HandedOff(ConversationId),
    /// The draft was approved or rejected already (`CONFLICT`, 409): a draft is decided once.
    #[error("the draft is {} already; a draft is decided once", .0.as_str())]
    DraftDecided(DraftState),
    /// The store failed (`INTERNAL_ERROR`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MessagingError {
    /// The envelope error code this error means.
    pub fn code(&self) -> &'static str {
        match self {
            MessagingError::Refused(refusal) => refusal.code(),
            MessagingError::Invalid { .. } | MessagingError::NoChannel | MessagingError::Duplicate(_) => "VALIDATION_ERROR",
            MessagingError::NotFound => "NOT_FOUND",
            MessagingError::ChannelDisconnected(_) | MessagingError::DraftDecided(_) => "CONFLICT",
            MessagingError::HandedOff(_) => "CONVERSATION_HANDED_OFF",
            MessagingError::BadSignature => "UNAUTHORIZED",
            MessagingError::HandshakeRefused => "FORBIDDEN",
            MessagingError::Provider(_) => "PROVIDER_UNAVAILABLE",
            MessagingError::Conflict(_) | MessagingError::Secrets(_) | MessagingError::Store(_) => "INTERNAL_ERROR",
        }
    }

    /// Whether this is a business outcome (a 4xx whose run and answer are recorded and
    /// replayed), as opposed to an infrastructure failure that stores nothing.
    pub fn is_business_outcome(&self) -> bool {
        !matches!(self, MessagingError::Conflict(_) | MessagingError::Secrets(_) | MessagingError::Store(_) | MessagingError::Provider(_))
    }
}

impl From<ConversationError> for MessagingError {
    fn from(e: ConversationError) -> Self {
        match e {
            ConversationError::NotFound => MessagingError::NotFound,
            ConversationError::Duplicate(what) => MessagingError::Duplicate(what),
            ConversationError::Conflict("channel disconnected") => MessagingError::Invalid {
                field: "channel_id".into(),
                message: "the channel is disconnected; only a connected channel can be the default".into(),
            },
            ConversationError::Conflict(what) => MessagingError::Conflict(what),
            ConversationError::DraftDecided(state) => MessagingError::DraftDecided(state),
            ConversationError::Store(s) => MessagingError::Store(s),
        }
    }
}

/// `POST /v1/atlas/channels`.
#[derive(Debug, Clone)]
pub struct ConnectChannel {
    pub provider: ChannelProvider,
    pub name: String,
    pub phone_number_id: String,
    pub display_phone_number: String,
    pub verify_token: String,
    pub secrets: ChannelSecrets,
    /// The WhatsApp Business Account id (needed to sync templates).
    pub waba_id: Option<String>,
    /// `Some(false)` keeps the first real number from becoming the default; `Some(true)` makes
    /// this channel the default; `None`: the first real number replaces the sandbox as default.
    pub is_default: Option<bool>,
}

/// `POST /v1/atlas/templates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterTemplate {
    pub name: String,
    pub language: String,
    pub category: TemplateCategory,
    pub status: TemplateStatus,
    pub body: String,
}

/// Whom a send goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTarget {
    /// A phone number, through `channel_id` or the organization's default channel; the customer
    /// and conversation are created or reused (`POST /v1/atlas/messages`,
    /// `send_message_to_phone`).
    Phone { phone_number: PhoneNumber, channel_id: Option<ChannelId> },
    /// An existing conversation, through its own channel (`actions` `reply`, `send_message`).
    Conversation(ConversationId),
}

/// A send: to whom, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendCommand {
    pub target: SendTarget,
    pub request: SendRequest,
}

/// What a queued send reports (every send response is built from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    pub customer_id: CustomerId,
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub outbox_id: OutboxId,
    pub channel_id: ChannelId,
    pub phone_number: PhoneNumber,
    /// Always `queued`: the provider is called by the outbox worker.
    pub delivery_state: DeliveryState,
    /// Whether the window was open when the send was decided.
    pub window_open: bool,
    /// `text` or `template`: what the decision chose.
    pub kind: MessageKind,
}

/// Who sends: an agent may not send in a conversation handed off to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    Person,
    Agent,
}

/// An approved draft: the draft as decided, the text sent (a person's edit, or as drafted) and
/// the queued send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub draft: Draft,
    pub text: String,
    pub receipt: SendReceipt,
}

/// An inbound message as a driving adapter hands it over (Meta webhook, sandbox, `POST /events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEvent {
    /// The channel it came through; `None` (external events) means the default channel.
    pub channel_id: Option<ChannelId>,
    pub from: PhoneNumber,
    pub profile_name: Option<String>,
    pub provider_message_id: Option<String>,
    pub kind: MessageKind,
    pub text: Option<String>,
    /// What a message other than plain text carries (media, location, a reply…).
    pub content: Option<MessageContent>,
    /// The message's own timestamp; `None` means now. A future one counts as now.
    pub timestamp: Option<OffsetDateTime>,
}

/// What one webhook POST did: counts, and the items skipped with why (the driving adapter logs
/// them and counts the unrouted changes in a metric).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookReport {
    /// Messages newly stored.
    pub messages: usize,
    /// Messages already stored (Meta's retries).
    pub duplicates: usize,
    /// Statuses applied or kept pending.
    pub statuses: usize,
    /// `phone_number_id`s of changes for numbers the organization has not connected (skipped).
    pub unrouted: Vec<String>,
    /// Items that could not be stored for a permanent reason, with the reason (skipped).
    pub skipped: Vec<String>,
}

/// The messaging use cases.
#[derive(Debug, Clone)]
pub struct Messaging {
    store: Arc<dyn ConversationStore>,
    cipher: Arc<dyn SecretCipher>,
    clock: Arc<dyn Clock>,
    policy: RetryPolicy,
    template_source: Option<Arc<dyn TemplateSource>>,
    webhook: Option<Arc<dyn WebhookDecoder>>,
    contexts: Option<Arc<dyn SendContexts>>,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> MessagingError {
    MessagingError::Invalid { field: field.into(), message: message.into() }
}

fn bounded(field: &'static str, value: &str, max: usize) -> Result<String, MessagingError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, "must not be blank"));
    }
    if value.chars().count() > max {
        return Err(invalid(field, format!("at most {max} characters")));
    }
    Ok(value.to_owned())
}

impl Messaging {
    /// The use cases over `store`, sealing channel secrets with `cipher`, telling time by
    /// `clock`, with the default [`RetryPolicy`] (its `max_age` sets each send's deadline).
    pub fn new(store: Arc<dyn ConversationStore>, cipher: Arc<dyn SecretCipher>, clock: Arc<dyn Clock>) -> Self {
        Self { store, cipher, clock, policy: RetryPolicy::default(), template_source: None, webhook: None, contexts: None }
    }

    /// The same use cases reading a send's context from `contexts` in one round trip.
    #[must_use]
    pub fn with_send_contexts(mut self, contexts: Arc<dyn SendContexts>) -> Self {
        self.contexts = Some(contexts);
        self
    }

    /// A send's context read one port call at a time: the reference [`SendContexts`]
    /// implementations are checked against, and the way when the store has none.
    ///
    /// # Errors
    /// `Store`.
    pub async fn read_send_context(
        &self,
        org_id: OrgId,
        lookup: &SendLookup,
        template: Option<&str>,
    ) -> Result<SendContext, MessagingError> {
        let (conversation, channel) = match lookup {
            SendLookup::Conversation(id) => {
                let conversation = self.store.get_conversation(org_id, *id).await?;
                let channel = match &conversation {
                    Some(c) => self.store.get_channel(org_id, c.channel_id).await?,
                    None => None,
                };
                (conversation, channel)
            }
            SendLookup::Phone { phone_number, channel_id: Some(channel_id) } => match self.store.get_channel(org_id, *channel_id).await? {
                Some(channel) => (self.store.find_conversation(org_id, channel.id, phone_number).await?, Some(channel)),
                None => (None, None),
            },
            SendLookup::Phone { phone_number, channel_id: None } => match self.store.latest_conversation(org_id, phone_number).await? {
                Some(conversation) => (Some(conversation), None),
                None => (None, self.store.default_channel(org_id).await?),
            },
        };
        let templates = match template {
            Some(reference) => self.store.find_templates(org_id, reference).await?,
            None => Vec::new(),
        };
        Ok(SendContext { conversation, channel, templates })
    }

    /// The same use cases reading accounts' templates from `source` (template sync).
    #[must_use]
    pub fn with_template_source(mut self, source: Arc<dyn TemplateSource>) -> Self {
        self.template_source = Some(source);
        self
    }

    /// The same use cases reading the provider's webhooks with `decoder`.
    #[must_use]
    pub fn with_webhook_decoder(mut self, decoder: Arc<dyn WebhookDecoder>) -> Self {
        self.webhook = Some(decoder);
        self
    }

    /// The same use cases with another retry policy.
    #[must_use]
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Connects a channel; its secrets are sealed before they reach the store. The first
    /// channel of an organization becomes its default.
    ///
    /// # Errors
    /// `Invalid` for a blank or oversized field (a WhatsApp channel needs a numeric
    /// `phone_number_id`, an `access_token`, an `app_secret` and a `verify_token`);
    /// `Duplicate("channel")` for a `phone_number_id` already connected.
    pub async fn connect_channel(
        &self,
        org_id: OrgId,
        request: ConnectChannel,
        journal: &dyn Journal<Channel>,
    ) -> Result<Channel, MessagingError> {
        let whatsapp = request.provider == ChannelProvider::Whatsapp;
        let name = bounded("name", &request.name, 100)?;
        let phone_number_id = bounded("phone_number_id", &request.phone_number_id, 64)?;
        if whatsapp && !phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("phone_number_id", "Meta's phone number id is numeric"));
        }
        let display_phone_number = bounded("display_phone_number", &request.display_phone_number, 32)?;
        let verify_token = request.verify_token.trim().to_owned();
        if whatsapp {
            bounded("verify_token", &verify_token, 256)?;
            bounded("access_token", &request.secrets.access_token, 4096)?;
            bounded("app_secret", &request.secrets.app_secret, 256)?;
        }
        let waba_id = match request.waba_id.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
            Some(w) if !w.bytes().all(|b| b.is_ascii_digit()) || w.len() > 64 => {
                return Err(invalid("waba_id", "Meta's WhatsApp Business Account id is numeric"))
            }
            other => other.map(str::to_owned),
        };
        let default = match (request.is_default, request.provider) {
            (Some(true), _) => DefaultRule::Make,
            (Some(false), _) => DefaultRule::Never,
            (None, ChannelProvider::Sandbox) => DefaultRule::IfNone,
            (None, ChannelProvider::Whatsapp) => DefaultRule::IfNoneOrSandbox,
        };
        let id = ChannelId::generate();
        let now = self.clock.now();
        // Every WhatsApp Business Account comes with Meta's `hello_world`; so does the sandbox.
        let templates = if request.provider == ChannelProvider::Sandbox {
            vec![Template::hello_world(TemplateId::generate(), org_id, id, now)]
        } else {
            Vec::new()
        };
        let channel = NewChannel {
            id,
            org_id,
            provider: request.provider,
            name,
            phone_number_id,
            display_phone_number,
            verify_token,
            waba_id,
            default,
            created_at: now,
            templates,
        };
        let sealed = self.cipher.seal(&request.secrets.to_plaintext());
        Ok(self.store.create_channel(&channel, &sealed, journal).await?)
    }

    /// The organization's channels, newest first, without secrets.
    ///
    /// # Errors
    /// `Store` when the store fails.
    pub async fn channels(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Channel>, MessagingError> {
        Ok(self.store.list_channels(org_id, page).await?)
    }

    /// One channel of the organization.
    ///
    /// # Errors
    /// `NotFound` when the organization has no such channel.
    pub async fn channel(&self, org_id: OrgId, id: ChannelId) -> Result<Channel, MessagingError> {
        self.store.get_channel(org_id, id).await?.ok_or(MessagingError::NotFound)
    }

    /// A channel and its decrypted secrets, by id alone: for Meta's webhook route (the
    /// handshake's `verify_token`, the `X-Hub-Signature-256` app secret).
    ///
    /// # Errors
    /// `NotFound` for an unknown channel; `Secrets` when its secrets do not decrypt.
    pub async fn webhook_channel(&self, id: ChannelId) -> Result<(Channel, ChannelSecrets), MessagingError> {
        let (channel, sealed) = self.store.channel_with_secrets(id).await?.ok_or(MessagingError::NotFound)?;
        let secrets = ChannelSecrets::from_plaintext(&self.cipher.open(&sealed)?)?;
        Ok((channel, secrets))
    }

    /// Makes a connected channel the organization's default (`PATCH {"is_default": true}`).
    ///
    /// # Errors
    /// `NotFound` for a channel the organization lacks; `Invalid` (`channel_id`) for a
    /// disconnected one.
    pub async fn make_default(&self, org_id: OrgId, id: ChannelId, journal: &dyn Journal<Channel>) -> Result<Channel, MessagingError> {
        Ok(self.store.set_default_channel(org_id, id, journal).await?)
    }

    /// Disconnects a channel (`DELETE`): sends on it are refused from now on; its
    /// conversations stay readable.
    ///
    /// # Errors
    /// `NotFound` for a channel the organization lacks.
    pub async fn disconnect(&self, org_id: OrgId, id: ChannelId, journal: &dyn Journal<Channel>) -> Result<Channel, MessagingError> {
        Ok(self.store.disconnect_channel(org_id, id, self.clock.now(), journal).await?)
    }

    /// Imports the templates of the channel's WhatsApp Business Account (every page of the
    /// Graph API's listing): each is upserted; the channel's templates Meta no longer lists
    /// become `deleted`.
    ///
    /// # Errors
    /// `NotFound` for an unknown channel; `Invalid` (`waba_id`) for a channel without an
    /// account id or a sandbox channel; `Provider` when the Graph API fails.
    pub async fn sync_templates(
        &self,
        org_id: OrgId,
        id: ChannelId,
        journal: &dyn Journal<TemplatesSynced>,
    ) -> Result<TemplatesSynced, MessagingError> {
        let channel = self.channel(org_id, id).await?;
        if !channel.is_active() {
            return Err(MessagingError::ChannelDisconnected(id));
        }
        let Some(waba_id) = channel.waba_id.clone().filter(|_| channel.provider == ChannelProvider::Whatsapp) else {
            return Err(invalid("waba_id", "the channel has no WhatsApp Business Account id: connect it with `waba_id`"));
        };
        let Some(source) = &self.template_source else {
            return Err(MessagingError::Provider(ProviderError::permanent(None, "no template source is configured")));
        };
        let (_, secrets) = self.webhook_channel(id).await?;
        let remote = source.templates(&secrets, &waba_id).await.map_err(MessagingError::Provider)?;
        let now = self.clock.now();
        let mut seen = std::collections::BTreeSet::new();
        let templates: Vec<Template> = remote
            .into_iter()
            .filter(|t| seen.insert((t.name.clone(), t.language.clone())))
            .map(|t| Template {
                id: TemplateId::generate(),
                org_id,
                name: t.name,
                language: t.language,
                category: t.category,
                status: t.status,
                body: t.body,
                components: Some(t.components),
                channel_id: Some(id),
                created_at: now,
            })
            .collect();
        Ok(self.store.sync_templates(org_id, id, &templates, journal).await?)
    }

    /// Registers a template. The name is Meta's (lower case letters, digits, `_`); the body's
    /// parameters must be `{{1}}` … `{{n}}` without gaps.
    ///
    /// # Errors
    /// `Invalid` for a malformed field; `Duplicate("template")` for a (name, language) the
    /// organization already has.
    pub async fn register_template(
        &self,
        org_id: OrgId,
        request: RegisterTemplate,
        journal: &dyn Journal<Template>,
    ) -> Result<Template, MessagingError> {
        let name = bounded("name", &request.name, 512)?;
        if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(invalid("name", "lower case letters, digits and `_` only"));
        }
        let language = bounded("language", &request.language, 15)?;
        if !language.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'-') {
            return Err(invalid("language", "a locale such as `en_US`"));
        }
        let body = bounded("body", &request.body, 1024)?;
        check_template_body(&body).map_err(|e| invalid("body", e.to_string()))?;
        let template = Template {
            id: TemplateId::generate(),
            org_id,
            name,
            language,
            category: request.category,
            status: request.status,
            body,
            components: None,
            channel_id: None,
            created_at: self.clock.now(),
        };
        self.store.create_template(&template, &journal.entry(&template)).await?;
        Ok(template)
    }

    /// The organization's templates, newest first.
    ///
    /// # Errors
    /// `Store` when the store fails.
    pub async fn templates(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Template>, MessagingError> {
        Ok(self.store.list_templates(org_id, page).await?)
    }

    /// Sends under the window rules: resolves the channel (the conversation's, the given
    /// `channel_id`, or the organization's default), reads the conversation's `last_inbound_at`,
    /// applies [`decide_send`] at the clock's now, and queues the message with its outbox row
    /// and the journal entry in one transaction. The provider is called later, by [`Delivery`].
    ///
    /// The window is read before the transaction: an inbound message arriving in the same
    /// instant may not be seen yet, which can only refuse text that would just have become
    /// allowed, never send text outside the window.
    ///
    /// # Errors
    /// `Refused` (window, template or request rules), `NotFound` for an unknown conversation,
    /// `Invalid` (`channel_id`) for an unknown channel, `NoChannel` when the organization has none.
    pub async fn send(
        &self,
        org_id: OrgId,
        command: SendCommand,
        journal: &dyn Journal<SendReceipt>,
    ) -> Result<SendReceipt, MessagingError> {
        self.queue(org_id, command, Sender::Person, None, journal).await
    }

    /// [`send`](Self::send) by `sender` (an agent is refused a conversation a person owns),
    /// approving the draft `approves` in the same transaction when given.
    async fn queue(
        &self,
        org_id: OrgId,
        command: SendCommand,
        sender: Sender,
        approves: Option<DraftId>,
        journal: &dyn Journal<SendReceipt>,
    ) -> Result<SendReceipt, MessagingError> {
        let reference = command.request.template.as_ref().map(|t| t.template_id.trim()).filter(|r| !r.is_empty());
        let lookup = match &command.target {
            SendTarget::Conversation(id) => SendLookup::Conversation(*id),
            SendTarget::Phone { phone_number, channel_id } => {
                SendLookup::Phone { phone_number: phone_number.clone(), channel_id: *channel_id }
            }
        };
        let context = match &self.contexts {
            Some(contexts) => contexts.send_context(org_id, &lookup, reference).await?,
            None => self.read_send_context(org_id, &lookup, reference).await?,
        };
        let SendContext { conversation, channel, templates } = context;
        if let Some(c) = conversation.as_ref().filter(|c| sender == Sender::Agent && c.status == ConversationStatus::HandedOff) {
            return Err(MessagingError::HandedOff(c.id));
        }
        let (channel_id, phone_number, conversation) = match command.target {
            SendTarget::Conversation(_) => {
                let conversation = conversation.ok_or(MessagingError::NotFound)?;
                if channel.is_some_and(|c| !c.is_active()) {
                    return Err(MessagingError::ChannelDisconnected(conversation.channel_id));
                }
                (conversation.channel_id, conversation.customer.phone_number.clone(), Some(conversation))
            }
            SendTarget::Phone { phone_number, channel_id: Some(_) } => {
                let channel = channel.ok_or_else(|| invalid("channel_id", "the organization has no such channel"))?;
                if !channel.is_active() {
                    return Err(MessagingError::ChannelDisconnected(channel.id));
                }
                (channel.id, phone_number, conversation)
            }
            // Where the customer last wrote (the window is theirs there), else the default.
            SendTarget::Phone { phone_number, channel_id: None } => match conversation {
                Some(conversation) => (conversation.channel_id, phone_number, Some(conversation)),
                None => {
                    let channel = channel.ok_or(MessagingError::NoChannel)?;
                    if !channel.is_active() {
                        return Err(MessagingError::ChannelDisconnected(channel.id));
                    }
                    (channel.id, phone_number, None)
                }
            },
        };
        let last_inbound_at = conversation.as_ref().and_then(|c| c.last_inbound_at);
        let known = conversation.as_ref().map(|c| (c.customer.id, c.id));
        let now = self.clock.now();
        let content = decide_send(&command.request, last_inbound_at, now, &templates)?;
        let kind = content.kind();
        let outbound = NewOutbound {
            org_id,
            channel_id,
            to: phone_number.clone(),
            message_id: MessageId::generate(),
            outbox_id: OutboxId::generate(),
            content,
            queued_at: now,
            deadline: self.policy.deadline(now),
            known,
            approves,
        };
        let open = window_open(last_inbound_at, now);
        let receipt = |e: &Enqueued| SendReceipt {
            customer_id: e.customer_id,
            conversation_id: e.conversation_id,
            message_id: e.message_id,
            outbox_id: e.outbox_id,
            channel_id,
            phone_number: phone_number.clone(),
            delivery_state: DeliveryState::Queued,
            window_open: open,
            kind,
        };
        let enqueued = self.store.enqueue_outbound(&outbound, &|e: &Enqueued| journal.entry(&receipt(e))).await?;
        Ok(receipt(&enqueued))
    }

    /// An agent's send (the tool API, MCP, a hosted agent's reply): refused with `HandedOff`
    /// while the conversation it would go to belongs to a person, then as [`send`](Self::send).
    ///
    /// # Errors
    /// `HandedOff`, and those of [`send`](Self::send).
    pub async fn send_as_agent(
        &self,
        org_id: OrgId,
        command: SendCommand,
        journal: &dyn Journal<SendReceipt>,
    ) -> Result<SendReceipt, MessagingError> {
        self.queue(org_id, command, Sender::Agent, None, journal).await
    }

    /// Hands a handed-off conversation back: its status becomes `open` and agents answer again.
    /// Releasing an open conversation changes nothing.
    ///
    /// # Errors
    /// `NotFound` when the organization has no such conversation.
    pub async fn release(&self, org_id: OrgId, id: ConversationId, journal: &JournalEntry) -> Result<Conversation, MessagingError> {
        self.set_status(org_id, id, ConversationStatus::Open, journal).await
    }

    async fn resolve_channel(&self, org_id: OrgId, channel_id: Option<ChannelId>) -> Result<Channel, MessagingError> {
        let channel = match channel_id {
            Some(id) => {
                self.store.get_channel(org_id, id).await?.ok_or_else(|| invalid("channel_id", "the organization has no such channel"))?
            }
            None => self.store.default_channel(org_id).await?.ok_or(MessagingError::NoChannel)?,
        };
        if !channel.is_active() {
            return Err(MessagingError::ChannelDisconnected(channel.id));
        }
        Ok(channel)
    }

    /// Marks the conversation's latest inbound message read at the provider, through the
    /// outbox (the customer sees blue ticks). Marking it again queues nothing new.
    ///
    /// # Errors
    /// `NotFound` for an unknown conversation; `Invalid` (`conversation_id`) when the customer
    /// sent nothing with a provider id; `ChannelDisconnected` when its channel is.
    pub async fn mark_read(
        &self,
        org_id: OrgId,
        conversation_id: ConversationId,
        journal: &dyn Journal<ReadQueued>,
    ) -> Result<ReadQueued, MessagingError> {
        let conversation = self.conversation(org_id, conversation_id).await?;
        let channel = self.store.get_channel(org_id, conversation.channel_id).await?.ok_or(MessagingError::NotFound)?;
        if !channel.is_active() {
            return Err(MessagingError::ChannelDisconnected(channel.id));
        }
        let message = self.store.latest_inbound(org_id, conversation_id).await?;
        let Some((message, provider_message_id)) = message.and_then(|m| m.provider_message_id.clone().map(|p| (m, p))) else {
            return Err(invalid("conversation_id", "the customer has sent no message to mark read"));
        };
        let now = self.clock.now();
        let receipt = NewOutbound {
            org_id,
            channel_id: channel.id,
            to: conversation.customer.phone_number.clone(),
            message_id: message.id,
            outbox_id: OutboxId::generate(),
            content: crate::OutboundContent::Read { provider_message_id },
            queued_at: now,
            deadline: self.policy.deadline(now),
            known: Some((conversation.customer.id, conversation.id)),
            approves: None,
        };
        Ok(self.store.enqueue_read(&receipt, conversation_id, journal).await?)
    }

    /// Records an inbound message: the customer and conversation are created or reused, the
    /// message stored once per provider id (a duplicate is reported, not refused), and the
    /// window extended from the message's own timestamp (never from arrival; a future
    /// timestamp counts as now).
    ///
    /// # Errors
    /// `Invalid` (`channel_id`) for an unknown channel; `NoChannel` when none is given and the
    /// organization has none; `Invalid` (`text`) for text over 4096 characters.
    pub async fn ingest(
        &self,
        org_id: OrgId,
        event: InboundEvent,
        journal: &dyn Journal<InboundRecorded, Option<JournalEntry>>,
    ) -> Result<InboundRecorded, MessagingError> {
        if event.text.as_deref().is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS) {
            return Err(invalid("text", format!("at most {MAX_TEXT_CHARS} characters")));
        }
        let channel = self.resolve_channel(org_id, event.channel_id).await?;
        let now = self.clock.now();
        let inbound = NewInbound {
            org_id,
            channel_id: channel.id,
            from: event.from,
            profile_name: event.profile_name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
            message_id: MessageId::generate(),
            provider_message_id: event.provider_message_id.filter(|id| !id.trim().is_empty()),
            kind: event.kind,
            text: event.text,
            content: event.content,
            timestamp: effective_inbound_at(event.timestamp, now),
            received_at: now,
        };
        Ok(self.store.record_inbound(&inbound, journal).await?)
    }

    /// Applies provider statuses (Meta's webhook, the sandbox's reporter) to the organization's
    /// messages, each kept pending when its id is not recorded yet, all in one transaction
    /// (`ConversationStore::apply_statuses`).
    ///
    /// # Errors
    /// A store failure; then none is applied (Meta retries the whole batch).
    pub async fn apply_statuses(&self, org_id: OrgId, statuses: &[ProviderStatus]) -> Result<usize, MessagingError> {
        if statuses.is_empty() {
            return Ok(0);
        }
        self.store.apply_statuses(org_id, statuses).await?;
        Ok(statuses.len())
    }

    /// Meta's subscription handshake for channel `id`: the challenge to echo.
    ///
    /// # Errors
    /// `NotFound` for an unknown or disconnected channel; `HandshakeRefused` for a wrong token.
    pub async fn webhook_handshake(
        &self,
        id: ChannelId,
        mode: Option<String>,
        token: Option<String>,
        challenge: Option<String>,
    ) -> Result<String, MessagingError> {
        let decoder = self.webhook.as_ref().ok_or(MessagingError::NotFound)?;
        let (channel, _) = self.webhook_channel(id).await?;
        if !channel.is_active() {
            return Err(MessagingError::NotFound);
        }
        decoder.handshake(mode, token, challenge, &channel.verify_token).ok_or(MessagingError::HandshakeRefused)
    }

    /// Receives one webhook POST on channel `id`'s URL: checks `signature` over the raw `body`
    /// with that channel's app secret, then routes each change by its phone number id to the
    /// organization's channel with that number and processes every item: messages are
    /// recorded (duplicates absorbed), statuses applied. A change for a number the
    /// organization has not connected is skipped (reported in `unrouted`); an item that cannot
    /// be stored for a permanent reason is skipped (reported in `skipped`); the rest of the
    /// batch is processed either way. `journal` gives each recorded message's entry.
    ///
    /// # Errors
    /// `NotFound` for an unknown or disconnected channel; `BadSignature`; `Invalid` (`body`)
    /// for a body that is no webhook at all; `Store` (transient: the caller answers 5xx and
    /// the provider retries the whole batch, whose duplicates are absorbed).
    pub async fn receive_webhook(
        &self,
        id: ChannelId,
        signature: Option<String>,
        body: &[u8],
        journal: &dyn Journal<InboundRecorded, Option<JournalEntry>>,
    ) -> Result<WebhookReport, MessagingError> {
        let decoder = self.webhook.as_ref().ok_or(MessagingError::NotFound)?;
        let (channel, secrets) = self.webhook_channel(id).await?;
        if !channel.is_active() {
            return Err(MessagingError::NotFound);
        }
        if !decoder.verify(secrets.app_secret.as_bytes(), body, signature) {
            return Err(MessagingError::BadSignature);
        }
        let changes = decoder.decode(body).map_err(|e| invalid("body", e.0))?;
        let org_id = channel.org_id;
        let mut report = WebhookReport::default();
        let mut routes: std::collections::HashMap<String, Option<Channel>> = std::collections::HashMap::new();
        for ProviderChange { phone_number_id, items } in changes {
            let Some(number) = phone_number_id else {
                report.skipped.extend(items.iter().map(|_| "a change without metadata.phone_number_id".to_owned()));
                continue;
            };
            let target = match routes.get(&number) {
                Some(found) => found.clone(),
                None => {
                    let found = if number == channel.phone_number_id {
                        Some(channel.clone())
                    } else {
                        self.store.channel_by_phone_number_id(org_id, &number).await?
                    };
                    routes.insert(number.clone(), found.clone());
                    found
                }
            };
            let Some(target) = target else {
                report.unrouted.push(number);
                continue;
            };
            let mut statuses = Vec::new();
            for item in items {
                match item {
                    ProviderItem::Message(message) => match self.receive_message(org_id, target.id, *message, journal).await {
                        Ok(recorded) if recorded.duplicate => report.duplicates += 1,
                        Ok(_) => report.messages += 1,
                        Err(MessagingError::Store(e)) => return Err(MessagingError::Store(e)),
                        Err(e) => report.skipped.push(format!("message: {e}")),
                    },
                    ProviderItem::Status(status) => statuses.push(status),
                    ProviderItem::IgnoredStatus { provider_message_id, status } => {
                        report.skipped.push(format!("status `{status}` of {provider_message_id} is not tracked"));
                    }
                    ProviderItem::Malformed { path, reason } => report.skipped.push(format!("{path}: {reason}")),
                }
            }
            report.statuses += self.apply_statuses(org_id, &statuses).await?;
        }
        Ok(report)
    }

    async fn receive_message(
        &self,
        org_id: OrgId,
        channel_id: ChannelId,
        message: crate::ports::ProviderMessage,
        journal: &dyn Journal<InboundRecorded, Option<JournalEntry>>,
    ) -> Result<InboundRecorded, MessagingError> {
        let from = PhoneNumber::parse(&format!("+{}", message.from.trim_start_matches('+')))
            .map_err(|e| invalid("from", format!("{}: {e}", message.from)))?;
        let kind = message.content.kind();
        let text = message.content.text();
        let content = match message.content {
            MessageContent::Text { .. } => None,
            other => Some(other),
        };
        let event = InboundEvent {
            channel_id: Some(channel_id),
            from,
            profile_name: message.profile_name,
            provider_message_id: Some(message.provider_message_id),
            kind,
            text,
            content,
            timestamp: Some(message.timestamp),
        };
        self.ingest(org_id, event, journal).await
    }

    /// Applies a provider status (`sent`, `delivered`, `read`, `failed`) to the organization's
    /// message with that provider id; kept pending when the id is not recorded yet.
    ///
    /// # Errors
    /// `Store` when the store fails.
    pub async fn apply_status(
        &self,
        org_id: OrgId,
        provider_message_id: &str,
        event: &StatusEvent,
    ) -> Result<StatusApplied, MessagingError> {
        Ok(self.store.apply_status(org_id, provider_message_id, event).await?)
    }

    /// The organization's message with this provider id (the agent API's status lookup).
    ///
    /// # Errors
    /// `NotFound` when there is none.
    pub async fn message_by_provider_id(&self, org_id: OrgId, provider_message_id: &str) -> Result<Message, MessagingError> {
        self.store.message_by_provider_id(org_id, provider_message_id).await?.ok_or(MessagingError::NotFound)
    }

    /// The organization's conversations, newest first.
    ///
    /// # Errors
    /// `Store` when the store fails.
    pub async fn conversations(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Conversation>, MessagingError> {
        Ok(self.store.list_conversations(org_id, page).await?)
    }

    /// One conversation of the organization.
    ///
    /// # Errors
    /// `NotFound` when there is none.
    pub async fn conversation(&self, org_id: OrgId, id: ConversationId) -> Result<Conversation, MessagingError> {
        self.store.get_conversation(org_id, id).await?.ok_or(MessagingError::NotFound)
    }

    /// A conversation's messages, newest first.
    ///
    /// # Errors
    /// `NotFound` when the organization has no such conversation.
    pub async fn messages(&self, org_id: OrgId, id: ConversationId, page: &PageRequest) -> Result<Page<Message>, MessagingError> {
        Ok(self.store.list_messages(org_id, id, page).await?)
    }

    /// Hands a conversation off to people: its status becomes `handed_off` (automation stops;
    /// sends are still allowed).
    ///
    /// # Errors
    /// `NotFound` when the organization has no such conversation.
    pub async fn handoff(&self, org_id: OrgId, id: ConversationId, journal: &JournalEntry) -> Result<Conversation, MessagingError> {
        self.set_status(org_id, id, ConversationStatus::HandedOff, journal).await
    }

    /// Sets a conversation's status.
    ///
    /// # Errors
    /// `NotFound` when the organization has no such conversation.
    pub async fn set_status(
        &self,
        org_id: OrgId,
        id: ConversationId,
        status: ConversationStatus,
        journal: &JournalEntry,
    ) -> Result<Conversation, MessagingError> {
        Ok(self.store.set_conversation_status(org_id, id, status, journal).await?)
    }

    /// Stores a draft reply (never sent, never counted for the window).
    ///
    /// # Errors
    /// `Invalid` (`text`) for blank or oversized text; `NotFound` for an unknown conversation.
    pub async fn draft(
        &self,
        org_id: OrgId,
        conversation_id: ConversationId,
        text: &str,
        journal: &dyn Journal<Draft>,
    ) -> Result<Draft, MessagingError> {
        if text.trim().is_empty() {
            return Err(invalid("text", "must not be blank"));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(invalid("text", format!("at most {MAX_TEXT_CHARS} characters")));
        }
        let draft = Draft::pending(org_id, conversation_id, text.to_owned(), self.clock.now());
        self.store.save_draft(&draft, &journal.entry(&draft)).await?;
        Ok(draft)
    }

    /// A conversation's drafts, newest first, only those in `state` when given.
    ///
    /// # Errors
    /// `NotFound` when the organization has no such conversation.
    pub async fn drafts(
        &self,
        org_id: OrgId,
        conversation_id: ConversationId,
        state: Option<DraftState>,
        page: &PageRequest,
    ) -> Result<Page<Draft>, MessagingError> {
        Ok(self.store.list_drafts(org_id, conversation_id, state, page).await?)
    }

    /// One draft of a conversation.
    ///
    /// # Errors
    /// `NotFound` when the organization has no such conversation or draft.
    pub async fn get_draft(&self, org_id: OrgId, conversation_id: ConversationId, id: DraftId) -> Result<Draft, MessagingError> {
        self.store.get_draft(org_id, conversation_id, id).await?.ok_or(MessagingError::NotFound)
    }

    /// A person approves a pending draft: it is sent (as `text` when given, else as drafted)
    /// under the window rules, and the draft becomes `approved` with the queued message, in
    /// one transaction (the draft keeps the text as drafted; the message has the text sent). However many approvals race, one sends; a person's send is not stopped
    /// by a handoff.
    ///
    /// # Errors
    /// `NotFound`; `DraftDecided` when it was decided already; `Invalid` (`text`); those of
    /// [`send`](Self::send) (a closed window refuses it and the draft stays pending).
    pub async fn approve_draft(
        &self,
        org_id: OrgId,
        conversation_id: ConversationId,
        id: DraftId,
        text: Option<&str>,
        journal: &dyn Journal<Approval>,
    ) -> Result<Approval, MessagingError> {
        let draft = self.get_draft(org_id, conversation_id, id).await?;
        if draft.state != DraftState::Pending {
            return Err(MessagingError::DraftDecided(draft.state));
        }
        let text = text.map(str::trim).filter(|t| !t.is_empty()).map_or_else(|| draft.text.clone(), str::to_owned);
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(invalid("text", format!("at most {MAX_TEXT_CHARS} characters")));
        }
        let request = SendRequest { text: Some(text.clone()), template: None, media: None, interactive: None };
        let command = SendCommand { target: SendTarget::Conversation(conversation_id), request };
        let decided_at = self.clock.now();
        let approval = |receipt: &SendReceipt| {
            let mut draft = draft.clone();
            draft.state = DraftState::Approved;
            draft.message_id = Some(receipt.message_id);
            draft.decided_at = Some(decided_at);
            Approval { draft, text: text.clone(), receipt: receipt.clone() }
        };
        let receipt = self.queue(org_id, command, Sender::Person, Some(id), &|r: &SendReceipt| journal.entry(&approval(r))).await?;
        Ok(approval(&receipt))
    }

    /// A person rejects a pending draft with a reason; it is never sent.
    ///
    /// # Errors
    /// `Invalid` (`reason`: 1 to 2000 characters); `NotFound`; `DraftDecided`.
    pub async fn reject_draft(
        &self,
        org_id: OrgId,
        conversation_id: ConversationId,
        id: DraftId,
        reason: &str,
        journal: &dyn Journal<Draft>,
    ) -> Result<Draft, MessagingError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 2000 {
            return Err(invalid("reason", "1 to 2000 characters"));
        }
        let mut draft = self.get_draft(org_id, conversation_id, id).await?;
        if draft.state != DraftState::Pending {
            return Err(MessagingError::DraftDecided(draft.state));
        }
        let at = self.clock.now();
        draft.state = DraftState::Rejected;
        draft.reason = Some(reason.to_owned());
        draft.decided_at = Some(at);
        Ok(self.store.reject_draft(org_id, conversation_id, id, reason, at, &journal.entry(&draft)).await?)
    }
}

/// What delivering one outbox row did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The provider accepted it: the message, now `sent` (or further, from pending statuses).
    Sent(Message),
    /// A retryable failure: attempt `attempt + 1` is scheduled at `at`.
    Retrying { at: OffsetDateTime, error: MessageError },
    /// A permanent failure, or retries exhausted: the message, now `failed`.
    Failed(Message),
    /// A read receipt finished: accepted (`error` is `None`) or given up.
    Receipt { error: Option<MessageError> },
}

/// What [`Delivery::attempt`] left to do for one row.
// Made and moved once per delivery: boxing the finished outcome would allocate for each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum DeliveryStep {
    /// Nothing: the outcome is recorded (or recording it failed).
    Finished(Result<DeliveryOutcome, MessagingError>),
    /// The provider accepted the send; its acceptance is still to be recorded.
    Accepted(Completion),
}

/// Delivers outbox rows through the provider (one step; the polling loop, its throughput cap
/// per channel and its jitter source belong to the runtime that drives it).
#[derive(Debug, Clone)]
pub struct Delivery {
    store: Arc<dyn ConversationStore>,
    outbox: Arc<dyn Outbox>,
    provider: Arc<dyn MessagingProvider>,
    cipher: Arc<dyn SecretCipher>,
    clock: Arc<dyn Clock>,
    policy: RetryPolicy,
}

impl Delivery {
    /// The delivery step over these ports.
    pub fn new(
        store: Arc<dyn ConversationStore>,
        outbox: Arc<dyn Outbox>,
        provider: Arc<dyn MessagingProvider>,
        cipher: Arc<dyn SecretCipher>,
        clock: Arc<dyn Clock>,
        policy: RetryPolicy,
    ) -> Self {
        Self { store, outbox, provider, cipher, clock, policy }
    }

    /// Claims up to `limit` due rows for this worker, under the policy's lease, with at most
    /// `per_channel` rows of one channel leased at once (see `Outbox::claim`).
    ///
    /// # Errors
    /// `Store` when the store fails.
    pub async fn claim(&self, limit: u32, per_channel: u32) -> Result<Vec<OutboxItem>, MessagingError> {
        Ok(self.outbox.claim(self.clock.now(), limit, self.policy.lease, per_channel).await?)
    }

    /// How long until an unfinished row is (or becomes) claimable, by the clock (zero when one
    /// is due now); `None` when no row is unfinished (see `Outbox::next_due`).
    ///
    /// # Errors
    /// `Store` when the store fails.
    pub async fn next_due_in(&self) -> Result<Option<std::time::Duration>, MessagingError> {
        let due = self.outbox.next_due().await?;
        Ok(due.map(|at| (at - self.clock.now()).try_into().unwrap_or(std::time::Duration::ZERO)))
    }

    /// Delivers one claimed row: past its deadline it fails (`deadline_exceeded`) unsent; a
    /// missing channel fails it (`channel_not_found`); otherwise the provider is called and
    /// its answer recorded: accepted → `complete`; permanent error → `fail` with the provider's
    /// code (no automatic resend); retryable error → `retry` at the policy's next time, or
    /// `fail` when that would pass the deadline or the attempt limit. Secrets that do not
    /// decrypt are retried (an operator may restore the key) until the deadline.
    /// `jitter` in `[0, 1)` comes from the caller. The same as [`Delivery::attempt`] followed,
    /// for an accepted send, by [`Delivery::complete`] of its completion alone.
    ///
    /// # Errors
    /// `Conflict` when the row changed under this worker (its lease lapsed and another worker
    /// claimed it); `Store` when the store fails.
    pub async fn deliver(&self, item: &OutboxItem, jitter: f64) -> Result<DeliveryOutcome, MessagingError> {
        match self.attempt(item, jitter).await {
            DeliveryStep::Finished(outcome) => outcome,
            DeliveryStep::Accepted(c) => {
                Ok(DeliveryOutcome::Sent(self.outbox.complete(c.id, c.attempt, &c.provider_message_id, c.at).await?))
            }
        }
    }

    /// Everything [`Delivery::deliver`] does except recording an acceptance: a send the
    /// provider accepted comes back as its [`Completion`], for the caller to record (alone or
    /// with others: [`Delivery::complete`]); every other outcome is recorded here.
    pub async fn attempt(&self, item: &OutboxItem, jitter: f64) -> DeliveryStep {
        let now = self.clock.now();
        if now >= item.deadline {
            let error = MessageError::new("deadline_exceeded", "the message could not be sent before its deadline");
            return DeliveryStep::Finished(self.fail(item, error).await);
        }
        let channel = match self.store.channel_with_secrets(item.channel_id).await {
            Ok(found) => found.filter(|(c, _)| c.org_id == item.org_id),
            Err(e) => return DeliveryStep::Finished(Err(e.into())),
        };
        let Some((channel, sealed)) = channel else {
            let error = MessageError::new("channel_not_found", "the message's channel no longer exists");
            return DeliveryStep::Finished(self.fail(item, error).await);
        };
        if !channel.is_active() {
            let error = MessageError::new("channel_disconnected", "the message's channel was disconnected");
            return DeliveryStep::Finished(self.fail(item, error).await);
        }
        let secrets = self.cipher.open(&sealed).and_then(|plain| ChannelSecrets::from_plaintext(&plain));
        if let crate::OutboundContent::Read { provider_message_id } = &item.content {
            return DeliveryStep::Finished(self.deliver_receipt(item, &channel, secrets, provider_message_id, jitter).await);
        }
        let result = match secrets {
            Ok(secrets) => self.provider.send(&channel, &secrets, &item.to, &item.content).await,
            Err(e) => Err(ProviderError::retryable(None, e.to_string())),
        };
        match result {
            Ok(ProviderAccepted { provider_message_id }) => {
                DeliveryStep::Accepted(Completion { id: item.id, attempt: item.attempt, provider_message_id, at: self.clock.now() })
            }
            Err(e) => DeliveryStep::Finished(self.refused(item, e, jitter).await),
        }
    }

    /// Records the provider's refusal of a send: a permanent one fails the row; a retryable one
    /// schedules the next attempt, or fails the row when that would pass the deadline or the
    /// attempt limit.
    async fn refused(&self, item: &OutboxItem, e: ProviderError, jitter: f64) -> Result<DeliveryOutcome, MessagingError> {
        if e.kind == ProviderErrorKind::Permanent {
            return self.fail(item, e.to_message_error()).await;
        }
        let failed_at = self.clock.now();
        let error = e.to_message_error();
        match self.policy.next_attempt(item.attempt, failed_at, item.deadline, jitter, e.retry_after) {
            RetryDecision::RetryAt(at) => {
                self.outbox.retry(item.id, item.attempt, at, &error).await?;
                Ok(DeliveryOutcome::Retrying { at, error })
            }
            RetryDecision::GiveUp(why) => {
                let error = MessageError::new(error.code, format!("{} (gave up: {})", error.message, why.code()));
                self.fail(item, error).await
            }
        }
    }

    /// Records the acceptances `completions` together (`Outbox::complete_many`): one outcome
    /// per completion, in order, each what [`Delivery::deliver`] would have returned for it
    /// alone (`Sent` with the message, or the error of its `complete`).
    pub async fn complete(&self, completions: &[Completion]) -> Vec<Result<DeliveryOutcome, MessagingError>> {
        self.outbox
            .complete_many(completions)
            .await
            .into_iter()
            .map(|recorded| recorded.map(DeliveryOutcome::Sent).map_err(MessagingError::from))
            .collect()
    }

    async fn fail(&self, item: &OutboxItem, error: MessageError) -> Result<DeliveryOutcome, MessagingError> {
        if matches!(item.content, crate::OutboundContent::Read { .. }) {
            self.outbox.acknowledge(item.id, item.attempt, Some(error.clone()), self.clock.now()).await?;
            return Ok(DeliveryOutcome::Receipt { error: Some(error) });
        }
        Ok(DeliveryOutcome::Failed(self.outbox.fail(item.id, item.attempt, &error, self.clock.now()).await?))
    }

    /// A read receipt: the provider marks the message read; the row finishes (retried like a
    /// send on a retryable failure).
    async fn deliver_receipt(
        &self,
        item: &OutboxItem,
        channel: &Channel,
        secrets: Result<ChannelSecrets, SecretsUnreadable>,
        provider_message_id: &str,
        jitter: f64,
    ) -> Result<DeliveryOutcome, MessagingError> {
        let result = match secrets {
            Ok(secrets) => self.provider.mark_read(channel, &secrets, provider_message_id).await,
            Err(e) => Err(ProviderError::retryable(None, e.to_string())),
        };
        match result {
            Ok(()) => {
                self.outbox.acknowledge(item.id, item.attempt, None, self.clock.now()).await?;
                Ok(DeliveryOutcome::Receipt { error: None })
            }
            Err(e) if e.kind == ProviderErrorKind::Permanent => self.fail(item, e.to_message_error()).await,
            Err(e) => {
                let error = e.to_message_error();
                match self.policy.next_attempt(item.attempt, self.clock.now(), item.deadline, jitter, e.retry_after) {
                    RetryDecision::RetryAt(at) => {
                        self.outbox.retry(item.id, item.attempt, at, &error).await?;
                        Ok(DeliveryOutcome::Retrying { at, error })
                    }
                    RetryDecision::GiveUp(_) => self.fail(item, error).await,
                }
            }
        }
    }
}

/// A provider that dispatches on the channel's kind: WhatsApp channels to `whatsapp`,
/// sandbox channels to `sandbox`.
#[derive(Debug, Clone)]
pub struct ProviderByKind {
    pub whatsapp: Arc<dyn MessagingProvider>,
    pub sandbox: Arc<dyn MessagingProvider>,
}

#[async_trait]
impl MessagingProvider for ProviderByKind {
    async fn send(
        &self,
        channel: &Channel,
        secrets: &ChannelSecrets,
        to: &PhoneNumber,
        content: &crate::OutboundContent,
    ) -> Result<ProviderAccepted, ProviderError> {
        match channel.provider {
            ChannelProvider::Whatsapp => self.whatsapp.send(channel, secrets, to, content).await,
            ChannelProvider::Sandbox => self.sandbox.send(channel, secrets, to, content).await,
        }
    }

    async fn mark_read(&self, channel: &Channel, secrets: &ChannelSecrets, provider_message_id: &str) -> Result<(), ProviderError> {
        match channel.provider {
            ChannelProvider::Whatsapp => self.whatsapp.mark_read(channel, secrets, provider_message_id).await,
            ChannelProvider::Sandbox => self.sandbox.mark_read(channel, secrets, provider_message_id).await,
        }
    }
}

#[cfg(test)]
mod tests;
