//! The messaging ports: [`ConversationStore`] (channels, templates, customers, conversations,
//! messages, drafts, pending statuses), [`Outbox`] (durable delivery work), [`MessagingProvider`]
//! (WhatsApp Cloud API or the sandbox) and [`SecretCipher`] (channel secrets at rest), with the
//! records they exchange and the port error [`ConversationError`].
//!
//! Atomicity: every mutating method commits its whole effect, and the call's `JournalEntry`
//! (the run and the idempotency outcome to replay) when it takes one, in **one transaction**.
//! When the journal depends on what the store found or created (ids of an upserted customer,
//! the default flag of a channel), the method takes a [`Journal`] (any closure
//! `Fn(&Outcome) -> JournalEntry + Send + Sync`) and calls it inside the transaction.
//!
//! Tenancy: every method that takes an `org_id` only ever sees that organization's rows; a row
//! of another organization is reported exactly as an absent one.

use crate::content::MessageContent;
use crate::delivery::StatusEvent;
use crate::model::{
    Channel, ChannelId, ChannelSecrets, Conversation, ConversationId, ConversationStatus, CustomerId, Draft, DraftId, DraftState, Message,
    MessageError, MessageId, MessageKind, NewChannel, OutboxId, SecretsUnreadable, Template, TemplateCategory, TemplateStatus,
};
use crate::window::OutboundContent;
use crate::Customer;
use async_trait::async_trait;
use atlas_kernel::{OrgId, Page, PageRequest, PhoneNumber, StoreError};
use atlas_runs::{JournalEntry, RunId};
use std::fmt;
use thiserror::Error;
use time::{Duration, OffsetDateTime};

pub use atlas_runs::Journal;

/// Failures of the messaging stores.
#[derive(Debug, Error)]
pub enum ConversationError {
    /// Absent, or belonging to another organization.
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the row: names what already exists (`channel`, `template`).
    #[error("{0} already exists")]
    Duplicate(&'static str),
    /// The row is not in a state that allows the call (an outbox row already finished, or
    /// claimed again at a later attempt).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The draft was decided already (approved or rejected): it is decided once.
    #[error("the draft is {} already", .0.as_str())]
    DraftDecided(DraftState),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An inbound message to record (from Meta's webhook, the sandbox, or `POST /v1/atlas/events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInbound {
    pub org_id: OrgId,
    pub channel_id: ChannelId,
    /// The customer (Meta's `from` / `wa_id`).
    pub from: PhoneNumber,
    /// The contact's profile name, when given: set on the customer (latest wins).
    pub profile_name: Option<String>,
    /// The id to give the message if it is new.
    pub message_id: MessageId,
    /// Meta's `wamid…`; unique per organization when present. `None` for external events
    /// (their duplicates are caught by the idempotency key instead).
    pub provider_message_id: Option<String>,
    pub kind: MessageKind,
    pub text: Option<String>,
    /// Media, location, contacts, a reply, a reaction… (`None` for plain text).
    pub content: Option<MessageContent>,
    /// The message's own timestamp (already clamped to now: see `effective_inbound_at`).
    pub timestamp: OffsetDateTime,
    /// When Atlas received it: the `created_at` of a customer or conversation created for it.
    pub received_at: OffsetDateTime,
}

/// What recording an inbound message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRecorded {
    /// The customer, created or found by (organization, phone number).
    pub customer: Customer,
    /// The conversation, created or found by (organization, channel, customer), after the bump.
    pub conversation: Conversation,
    /// The stored message (the earlier one for a duplicate).
    pub message: Message,
    /// The provider message id was already stored: nothing changed, and that is not an error.
    pub duplicate: bool,
}

/// An outbound message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutbound {
    pub org_id: OrgId,
    pub channel_id: ChannelId,
    pub to: PhoneNumber,
    pub message_id: MessageId,
    pub outbox_id: OutboxId,
    pub content: OutboundContent,
    pub queued_at: OffsetDateTime,
    /// After this instant the outbox fails the message instead of sending it.
    pub deadline: OffsetDateTime,
    /// The customer and conversation the send already found for (organization, channel,
    /// phone number): the store then skips their upserts. `None` creates or reuses them.
    pub known: Option<(CustomerId, ConversationId)>,
    /// The pending draft of this conversation that this send approves: the store marks it
    /// approved (with the message) in the send's transaction, or writes nothing at all when
    /// it is no longer pending (`DraftDecided`) or absent (`NotFound`).
    pub approves: Option<DraftId>,
}

/// Where a send goes, as the request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendLookup {
    /// An existing conversation.
    Conversation(ConversationId),
    /// A customer's number: on `channel_id`, or (without it) on the channel of the customer's
    /// latest conversation on a connected channel, else on the organization's default channel.
    Phone { phone_number: PhoneNumber, channel_id: Option<ChannelId> },
}

/// What deciding a send reads (see [`SendContexts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendContext {
    /// The conversation the send goes into, if it exists: the named one, the customer's on
    /// `channel_id`, or the customer's latest on a connected channel.
    pub conversation: Option<Conversation>,
    /// The channel read to route the send: the conversation's (a `Conversation` lookup), the
    /// named one (`channel_id`), or the organization's connected default when the customer has
    /// no conversation on a connected channel. `None` when there is none, and when the
    /// customer's latest conversation fixes the channel (it is connected).
    pub channel: Option<Channel>,
    /// The templates the send's template reference may mean (by name or id), newest first.
    pub templates: Vec<Template>,
}

/// Reads a send's context in one round trip: a store that can implements it, and
/// [`Messaging`](crate::Messaging) then uses it instead of reading the conversation, the channel
/// and the templates one by one (the reads it is checked against).
#[async_trait]
pub trait SendContexts: Send + Sync + fmt::Debug {
    /// The context of a send to `lookup` naming template `template` (if any).
    ///
    /// # Errors
    /// `Store` when the store fails.
    async fn send_context(&self, org_id: OrgId, lookup: &SendLookup, template: Option<&str>) -> Result<SendContext, ConversationError>;
}

/// The ids a queued send produced (the send's response needs them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub customer_id: CustomerId,
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub outbox_id: OutboxId,
}

/// What applying a provider status did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusApplied {
    /// The message is known: `message` is its state after the event; `changed` is false for a
    /// duplicate or stale event.
    Applied { message: Box<Message>, changed: bool },
    /// No message carries this provider id yet: the event is kept and applied when the id is
    /// recorded (`Outbox::complete`). Never dropped.
    Pending,
}

/// What a template sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplatesSynced {
    /// Templates now stored from the account (inserted or updated).
    pub upserted: usize,
    /// Templates of the channel that Meta no longer lists, now `deleted`.
    pub deleted: usize,
}

/// What queueing a read receipt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadQueued {
    pub conversation_id: ConversationId,
    /// The inbound message marked read.
    pub message_id: MessageId,
    pub provider_message_id: String,
    pub outbox_id: OutboxId,
    /// False when that message's receipt was already queued (nothing new).
    pub queued: bool,
}

/// The store of channels, templates, customers, conversations, messages and drafts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ConversationStore: Send + Sync + fmt::Debug {
    /// Connects a channel. `sealed_secrets` are the channel's secrets already encrypted by the
    /// caller (see [`SecretCipher`]); the store keeps them opaque. The store sets `is_default`
    /// to whether the organization had no channel before (decided inside the transaction), and
    /// commits `journal.entry(&stored channel)`.
    ///
    /// # Errors
    /// `Duplicate("channel")` when the organization already has a channel with this
    /// `phone_number_id`; `Store` when the backing store fails.
    #[allow(unused_parens)] // mockall re-parenthesizes the trait object in the mock
    async fn create_channel<'j>(
        &self,
        channel: &NewChannel,
        sealed_secrets: &[u8],
        journal: &'j (dyn Journal<Channel> + 'j),
    ) -> Result<Channel, ConversationError>;

    /// The organization's channels, newest first (creation time, then id). Never secrets.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn list_channels(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Channel>, ConversationError>;

    /// One channel of the organization.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn get_channel(&self, org_id: OrgId, id: ChannelId) -> Result<Option<Channel>, ConversationError>;

    /// The organization's default channel (the one sends by phone number use).
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn default_channel(&self, org_id: OrgId) -> Result<Option<Channel>, ConversationError>;

    /// A channel by id alone, with its sealed secrets: for Meta's webhook route (which carries
    /// no credential, only the channel id) and for the outbox worker.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn channel_with_secrets(&self, id: ChannelId) -> Result<Option<(Channel, Vec<u8>)>, ConversationError>;

    /// The organization's connected channel with Meta's `phone_number_id` (the routing of a
    /// webhook change by its `metadata.phone_number_id`).
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn channel_by_phone_number_id(&self, org_id: OrgId, phone_number_id: &str) -> Result<Option<Channel>, ConversationError>;

    /// Makes channel `id` the organization's default, in one transaction: the previous
    /// default stops being it (the partial unique index allows one), and
    /// `journal.entry(&channel)` commits with it.
    ///
    /// # Errors
    /// `NotFound` for a channel the organization lacks; `Conflict("channel disconnected")` for
    /// a disconnected one; `Store` when the store fails.
    #[allow(unused_parens)] // mockall re-parenthesizes the trait object in the mock
    async fn set_default_channel<'j>(
        &self,
        org_id: OrgId,
        id: ChannelId,
        journal: &'j (dyn Journal<Channel> + 'j),
    ) -> Result<Channel, ConversationError>;

    /// Disconnects channel `id` at `at`: it stops being the default (the most recently
    /// connected remaining channel becomes the default when it was), its conversations and
    /// messages stay. Disconnecting a disconnected channel changes nothing.
    ///
    /// # Errors
    /// `NotFound` for a channel the organization lacks; `Store` when the store fails.
    #[allow(unused_parens)] // mockall re-parenthesizes the trait object in the mock
    async fn disconnect_channel<'j>(
        &self,
        org_id: OrgId,
        id: ChannelId,
        at: OffsetDateTime,
        journal: &'j (dyn Journal<Channel> + 'j),
    ) -> Result<Channel, ConversationError>;

    /// Replaces the templates synced from channel `channel_id`'s account with `templates`,
    /// in one transaction: each is upserted by (organization, name, language) (name, language,
    /// category, status, body and components updated; the row's id kept), every other template
    /// of that channel not in the list becomes `deleted`; commits `journal.entry(&outcome)`.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    #[allow(unused_parens)] // mockall re-parenthesizes the trait object in the mock
    async fn sync_templates<'j>(
        &self,
        org_id: OrgId,
        channel_id: ChannelId,
        templates: &[Template],
        journal: &'j (dyn Journal<TemplatesSynced> + 'j),
    ) -> Result<TemplatesSynced, ConversationError>;

    /// Registers a template.
    ///
    /// # Errors
    /// `Duplicate("template")` when the organization has one with this (name, language);
    /// `Store` when the backing store fails.
    async fn create_template(&self, template: &Template, journal: &JournalEntry) -> Result<(), ConversationError>;

    /// The organization's templates, newest first.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn list_templates(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Template>, ConversationError>;

    /// The organization's templates a send's `template_id` may mean: those whose name is
    /// `reference` (every language and status) and the one whose id (`tpl_…`) is `reference`.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn find_templates(&self, org_id: OrgId, reference: &str) -> Result<Vec<Template>, ConversationError>;

    /// Records an inbound message, in one transaction:
    /// 1. upsert the customer by (organization, phone number); set its name to
    ///    `profile_name` when one is given;
    /// 2. upsert the conversation by (organization, channel, customer): a unique constraint
    ///    makes it one per triple even under concurrent inserts;
    /// 3. insert the message, unique by (organization, provider message id) when that id is
    ///    present: on a duplicate no row changes (not even the customer's name) and
    ///    `duplicate` is true; it is not an error, and the constraint decides, never a
    ///    read-then-write check;
    /// 4. for a new message, set `last_inbound_at = max(existing, timestamp)` and the status to
    ///    `status.after_inbound()` (a closed conversation reopens);
    /// 5. commit `journal.entry(&outcome)` when it returns one, duplicates included (the
    ///    Meta webhook may record none per message; `POST /events` records its run).
    ///
    /// # Errors
    /// `NotFound` when the channel is not the organization's; `Store` when the store fails.
    #[allow(unused_parens)] // mockall re-parenthesizes the trait object in the mock
    async fn record_inbound<'j>(
        &self,
        inbound: &NewInbound,
        journal: &'j (dyn Journal<InboundRecorded, Option<JournalEntry>> + 'j),
    ) -> Result<InboundRecorded, ConversationError>;

    /// Queues an outbound message, in one transaction: upsert the customer by (organization,
    /// phone) and the conversation by (organization, channel, customer) as `record_inbound`
    /// does (without touching `last_inbound_at`), insert the message as
    /// `Message::queued(..)` and its outbox row (attempt 0, due at `queued_at`, with
    /// `deadline`, linked to the journal entry's `run.id` so the worker's outcome finishes that run),
    /// and commit `journal.entry(&ids)`.
    ///
    /// # Errors
    /// `NotFound` when the channel is not the organization's; `Store` when the store fails.
    #[allow(unused_parens)] // mockall re-parenthesizes the trait object in the mock
    async fn enqueue_outbound<'j>(
        &self,
        outbound: &NewOutbound,
        journal: &'j (dyn Journal<Enqueued> + 'j),
    ) -> Result<Enqueued, ConversationError>;

    /// Applies a provider status to the organization's message with this provider id, with
    /// `DeliveryRecord::apply` (read-modify-write under a row lock, or an equivalent atomic
    /// update). When no message carries the id yet, keeps the event as pending (unique per
    /// (organization, provider id, state, at), so Meta's retries do not pile up) and returns
    /// `Pending`.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn apply_status(&self, org_id: OrgId, provider_message_id: &str, event: &StatusEvent)
        -> Result<StatusApplied, ConversationError>;

    /// Applies `statuses`, in order, exactly as that many `apply_status` calls would, in one
    /// transaction: all of them or none. Answers what each did, in order.
    ///
    /// # Errors
    /// `Store` when the backing store fails (nothing is applied).
    async fn apply_statuses(&self, org_id: OrgId, statuses: &[ProviderStatus]) -> Result<Vec<StatusApplied>, ConversationError>;

    /// The organization's message with this provider id.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn message_by_provider_id(&self, org_id: OrgId, provider_message_id: &str) -> Result<Option<Message>, ConversationError>;

    /// The organization's conversations, newest first (creation time, then id).
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn list_conversations(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Conversation>, ConversationError>;

    /// One conversation of the organization, with its customer.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn get_conversation(&self, org_id: OrgId, id: ConversationId) -> Result<Option<Conversation>, ConversationError>;

    /// The customer's conversation in the organization on a connected channel where they
    /// wrote last (`last_inbound_at`, newest first; then the newest conversation), if any: a
    /// send by phone number without `channel_id` goes out there.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn latest_conversation(&self, org_id: OrgId, phone_number: &PhoneNumber) -> Result<Option<Conversation>, ConversationError>;

    /// The conversation's newest inbound message that has a provider id (what a read receipt
    /// marks read).
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn latest_inbound(&self, org_id: OrgId, conversation_id: ConversationId) -> Result<Option<Message>, ConversationError>;

    /// Queues a read receipt for the inbound message `receipt.message_id`, in one transaction:
    /// its outbox row (content `Read`) unless that message already has one (then nothing is
    /// queued and `queued` is false), and `journal.entry(&outcome)`.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    #[allow(unused_parens)] // mockall re-parenthesizes the trait object in the mock
    async fn enqueue_read<'j>(
        &self,
        receipt: &NewOutbound,
        conversation_id: ConversationId,
        journal: &'j (dyn Journal<ReadQueued> + 'j),
    ) -> Result<ReadQueued, ConversationError>;

    /// The conversation of (organization, channel, customer phone number), if one exists.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn find_conversation(
        &self,
        org_id: OrgId,
        channel_id: ChannelId,
        phone_number: &PhoneNumber,
    ) -> Result<Option<Conversation>, ConversationError>;

    /// A conversation's messages, newest first (`created_at`, then id).
    ///
    /// # Errors
    /// `NotFound` when the organization has no such conversation; `Store` when the store fails.
    async fn list_messages(
        &self,
        org_id: OrgId,
        conversation_id: ConversationId,
        page: &PageRequest,
    ) -> Result<Page<Message>, ConversationError>;

    /// Sets a conversation's status (`handed_off` on a handoff) with the call's journal entry;
    /// setting the status it already has succeeds and changes nothing else.
    ///
    /// # Errors
    /// `NotFound` when the organization has no such conversation; `Store` when the store fails.
    async fn set_conversation_status(
        &self,
        org_id: OrgId,
        id: ConversationId,
        status: ConversationStatus,
        journal: &JournalEntry,
    ) -> Result<Conversation, ConversationError>;

    /// Stores a draft reply with the call's journal entry.
    ///
    /// # Errors
    /// `NotFound` when the organization has no such conversation; `Store` when the store fails.
    async fn save_draft(&self, draft: &Draft, journal: &JournalEntry) -> Result<(), ConversationError>;

    /// A conversation's drafts, newest first, only those in `state` when given.
    ///
    /// # Errors
    /// `NotFound` when the organization has no such conversation; `Store` when the store fails.
    async fn list_drafts(
        &self,
        org_id: OrgId,
        conversation_id: ConversationId,
        state: Option<DraftState>,
        page: &PageRequest,
    ) -> Result<Page<Draft>, ConversationError>;

    /// One draft of a conversation of the organization.
    async fn get_draft(&self, org_id: OrgId, conversation_id: ConversationId, id: DraftId) -> Result<Option<Draft>, ConversationError>;

    /// Rejects a pending draft with `reason` at `at`, with the call's journal entry, in one
    /// transaction; returns the draft as decided.
    ///
    /// # Errors
    /// `NotFound`; `DraftDecided` when it was decided already (nothing is written); `Store`.
    async fn reject_draft(
        &self,
        org_id: OrgId,
        conversation_id: ConversationId,
        id: DraftId,
        reason: &str,
        at: OffsetDateTime,
        journal: &JournalEntry,
    ) -> Result<Draft, ConversationError>;
}

/// One claimed unit of delivery work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: OutboxId,
    pub org_id: OrgId,
    pub channel_id: ChannelId,
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    /// The recipient.
    pub to: PhoneNumber,
    pub content: OutboundContent,
    /// This attempt's number, 1 for the first: `claim` counts it, so an attempt whose worker
    /// died counts too.
    pub attempt: u32,
    pub queued_at: OffsetDateTime,
    /// After this the message fails instead of being sent.
    pub deadline: OffsetDateTime,
    /// Until then the row is this worker's; afterwards `claim` hands it out again.
    pub lease_until: OffsetDateTime,
    /// The send's run, finished by `complete` or `fail`.
    pub run_id: Option<RunId>,
}

/// A provider's acceptance of one claimed row, waiting to be recorded (`Outbox::complete`'s
/// arguments, so many can be recorded together: `Outbox::complete_many`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub id: OutboxId,
    /// The attempt whose claim sent it: the lease token `complete` checks.
    pub attempt: u32,
    pub provider_message_id: String,
    /// When the provider accepted it.
    pub at: OffsetDateTime,
}

/// Durable delivery work: rows queued with their message, claimed by workers under a lease.
///
/// Crash semantics (at-least-once): a row whose worker died while the provider call was in
/// flight comes back after its lease and is sent again; the provider offers no idempotency key
/// for sends, so the customer may then receive the message twice. A row is never lost.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Outbox: Send + Sync + fmt::Debug {
    /// Claims up to `limit` rows that are due (`next_attempt_at <= now`) and not leased (or
    /// whose lease expired), without two workers ever holding one row (`FOR UPDATE SKIP
    /// LOCKED`), fairly: never more than `per_channel` rows of one channel leased at once (those
    /// already leased count), each organization's channels taking turns, every organization
    /// with due rows getting a turn before any gets a second; oldest first within a turn. Each
    /// claimed row gets `lease_until = now + lease` and `attempt + 1`, and its message advances
    /// to `sending`, in the claim's transaction.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn claim(&self, now: OffsetDateTime, limit: u32, lease: Duration, per_channel: u32)
        -> Result<Vec<OutboxItem>, ConversationError>;

    /// The earliest instant at which an unfinished row is (or becomes) claimable: its due time,
    /// or its lease's end when that is later; `None` when no row is unfinished. Channel caps
    /// are ignored (a row due now may still wait for its channel). Idle workers sleep until then
    /// instead of polling. One statement.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn next_due(&self) -> Result<Option<OffsetDateTime>, ConversationError>;

    /// Records the provider's acceptance, in one transaction: sets the message's provider id,
    /// applies `sent` at `at`, then every status kept pending for that provider id; finishes the
    /// row and marks its run `succeeded`. Returns the message after all that. Completing a
    /// finished row with the same provider id succeeds and changes nothing.
    ///
    /// Fenced like `retry`: it applies only while the caller still holds the row's lease, that
    /// is while the row is leased and its attempt is still `attempt` (the claim's); a worker
    /// whose lease lapsed and whose row another worker claimed changes nothing.
    ///
    /// # Errors
    /// `NotFound` for an unknown row; `Conflict` when the row already finished otherwise, or
    /// was released or claimed again (its attempt is no longer `attempt`).
    async fn complete(
        &self,
        id: OutboxId,
        attempt: u32,
        provider_message_id: &str,
        at: OffsetDateTime,
    ) -> Result<Message, ConversationError>;

    /// Records many acceptances: one result per completion, in order, each what `complete`
    /// would have returned had the completions been recorded one by one in this order (the same
    /// row twice: the first as `complete` would, the second against the row the first left). A
    /// store may write them together; this default records them one by one.
    async fn complete_many(&self, completions: &[Completion]) -> Vec<Result<Message, ConversationError>> {
        let mut results = Vec::with_capacity(completions.len());
        for c in completions {
            results.push(self.complete(c.id, c.attempt, &c.provider_message_id, c.at).await);
        }
        results
    }

    /// Schedules attempt `attempt + 1` at `next_at`, releasing the lease and keeping `error` as
    /// the row's last error (the message stays `sending`).
    ///
    /// # Errors
    /// `NotFound` for an unknown row; `Conflict` when the row finished or was claimed again
    /// (its attempt is no longer `attempt`): a stale worker changes nothing.
    async fn retry(&self, id: OutboxId, attempt: u32, next_at: OffsetDateTime, error: &MessageError) -> Result<(), ConversationError>;

    /// Gives up, in one transaction: applies `failed` with `error` at `at` to the message,
    /// finishes the row and marks its run `failed` with the error. Returns the message.
    /// Fenced like `complete`: only the holder of attempt `attempt`'s lease may fail the row.
    ///
    /// # Errors
    /// `NotFound` for an unknown row; `Conflict` when the row already finished, or was released
    /// or claimed again (its attempt is no longer `attempt`).
    async fn fail(&self, id: OutboxId, attempt: u32, error: &MessageError, at: OffsetDateTime) -> Result<Message, ConversationError>;

    /// Finishes a row that sends no message of its own (a read receipt), in one transaction:
    /// the row is finished (with `error` as its last error when given) and its run marked
    /// `succeeded`, or `failed` with the error. The message the row names is not touched.
    /// Fenced like `complete`: only the holder of attempt `attempt`'s lease may finish the row.
    ///
    /// # Errors
    /// `NotFound` for an unknown row; `Conflict` when the row already finished, or was released
    /// or claimed again (its attempt is no longer `attempt`).
    async fn acknowledge(
        &self,
        id: OutboxId,
        attempt: u32,
        error: Option<MessageError>,
        at: OffsetDateTime,
    ) -> Result<(), ConversationError>;

    /// Retention: removes up to `limit` finished rows (sent or failed) that finished before
    /// `before`; their messages and runs stay. Returns how many were removed.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn purge_finished(&self, before: OffsetDateTime, limit: u32) -> Result<u64, ConversationError>;

    /// Retention: removes up to `limit` statuses kept pending (their provider id was never
    /// recorded by a send) that arrived before `before`. Returns how many were removed.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn purge_pending_statuses(&self, before: OffsetDateTime, limit: u32) -> Result<u64, ConversationError>;
}

/// The provider accepted a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderAccepted {
    /// Meta's `wamid…` (or the sandbox's id): statuses will name it.
    pub provider_message_id: String,
}

/// Whether a provider failure is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderErrorKind {
    /// HTTP 5xx, timeouts, connection failures, rate limits (Graph 130429, 131056, 80007…).
    Retryable,
    /// The request itself is refused (131047 re-engagement, invalid recipient, template
    /// errors, bad credentials): retrying cannot help.
    Permanent,
}

/// A provider failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct ProviderError {
    pub kind: ProviderErrorKind,
    /// The provider's own code (Graph's `error.code`).
    pub code: Option<i64>,
    pub message: String,
    /// The provider's `Retry-After`, a lower bound on the next attempt.
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    /// A failure worth retrying.
    pub fn retryable(code: Option<i64>, message: impl Into<String>) -> Self {
        Self { kind: ProviderErrorKind::Retryable, code, message: message.into(), retry_after: None }
    }

    /// A failure retrying cannot fix.
    pub fn permanent(code: Option<i64>, message: impl Into<String>) -> Self {
        Self { kind: ProviderErrorKind::Permanent, code, message: message.into(), retry_after: None }
    }

    /// The message's `error`: the provider's code as text (`"131047"`), or `provider_error`.
    pub fn to_message_error(&self) -> MessageError {
        MessageError::new(self.code.map_or_else(|| "provider_error".to_owned(), |c| c.to_string()), self.message.clone())
    }
}

/// Sends messages through a provider.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MessagingProvider: Send + Sync + fmt::Debug {
    /// Sends `content` to `to` through `channel`, authenticated by `secrets`.
    ///
    /// # Errors
    /// A [`ProviderError`] classified `Retryable` or `Permanent`.
    async fn send(
        &self,
        channel: &Channel,
        secrets: &ChannelSecrets,
        to: &PhoneNumber,
        content: &OutboundContent,
    ) -> Result<ProviderAccepted, ProviderError>;

    /// Marks the customer's message `provider_message_id` read (the blue ticks they see).
    ///
    /// # Errors
    /// A [`ProviderError`] classified `Retryable` or `Permanent`.
    async fn mark_read(&self, channel: &Channel, secrets: &ChannelSecrets, provider_message_id: &str) -> Result<(), ProviderError>;
}

/// A template as the provider's account lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTemplate {
    pub name: String,
    pub language: String,
    pub category: TemplateCategory,
    pub status: TemplateStatus,
    /// The text of the `BODY` component (empty when it has none).
    pub body: String,
    /// The components exactly as the provider gave them.
    pub components: serde_json::Value,
}

/// Reads a WhatsApp Business Account's message templates (the Graph API's
/// `/{waba_id}/message_templates`, every page).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TemplateSource: Send + Sync + fmt::Debug {
    /// Every template of account `waba_id`, read with the channel's access token.
    ///
    /// # Errors
    /// A [`ProviderError`] (the account or token refused, or the provider unreachable).
    async fn templates(&self, secrets: &ChannelSecrets, waba_id: &str) -> Result<Vec<RemoteTemplate>, ProviderError>;
}

/// A delivery status the provider reported for one of our messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStatus {
    pub provider_message_id: String,
    pub event: StatusEvent,
}

/// A customer's message as the provider's webhook carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMessage {
    pub provider_message_id: String,
    /// The sender's WhatsApp id (digits, no `+`).
    pub from: String,
    pub profile_name: Option<String>,
    /// The message's own time.
    pub timestamp: time::OffsetDateTime,
    pub content: MessageContent,
}

/// One item of a webhook change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderItem {
    Message(Box<ProviderMessage>),
    Status(ProviderStatus),
    /// A status the domain does not track (`deleted`, `warning`…): counted, not applied.
    IgnoredStatus {
        provider_message_id: String,
        status: String,
    },
    /// An item that could not be read: `path` names it in the payload.
    Malformed {
        path: String,
        reason: String,
    },
}

/// One change of a webhook batch: the number it concerns and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderChange {
    /// Meta's `metadata.phone_number_id`: the channel the items belong to.
    pub phone_number_id: Option<String>,
    pub items: Vec<ProviderItem>,
}

/// Why a webhook body was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct UndecodableWebhook(pub String);

/// The provider's inbound webhook: handshake, signature and payload (Meta's, served by the
/// WhatsApp adapter), so the use case never sees the provider's wire format.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait WebhookDecoder: Send + Sync + fmt::Debug {
    /// The subscription handshake: the challenge to echo, or `None` to refuse.
    fn handshake(&self, mode: Option<String>, token: Option<String>, challenge: Option<String>, expected_token: &str) -> Option<String>;

    /// Whether `signature` signs `body` under `app_secret`.
    fn verify(&self, app_secret: &[u8], body: &[u8], signature: Option<String>) -> bool;

    /// Every change of the body, every item kept (unreadable items as `Malformed`).
    ///
    /// # Errors
    /// `UndecodableWebhook` when the body as a whole is not a webhook payload.
    fn decode(&self, body: &[u8]) -> Result<Vec<ProviderChange>, UndecodableWebhook>;
}

/// Encrypts channel secrets at rest (an AEAD under a key derived from `ATLAS_SECRET_KEY`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SecretCipher: Send + Sync + fmt::Debug {
    /// Encrypts `plaintext` (with a fresh nonce inside the result).
    fn seal(&self, plaintext: &[u8]) -> Vec<u8>;

    /// Decrypts what `seal` produced.
    ///
    /// # Errors
    /// `SecretsUnreadable` when the bytes were altered or sealed under another key.
    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretsUnreadable>;
}
