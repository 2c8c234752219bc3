//! The behavioural suite every `ConversationStore` and `Outbox` must pass: channels (the first
//! is the default, a duplicate `phone_number_id` is refused), templates, inbound messages
//! (customer and conversation upserted once under concurrency, a repeated provider id changes
//! nothing, the window moves to the latest message's own time), queued sends, provider statuses
//! (out of order, concurrent, or before their provider id is known), the outbox (claims, leases,
//! retries, completion, failure and the send's run), newest-first lists with cursors,
//! conversation status, drafts, and tenant isolation on every read. It speaks only the ports.
//!
//! Each check works in organizations of its own, so the checks may share one store, in any
//! order. The outbox is shared by every organization: a check claims by draining every due row
//! and keeps the rows of its own organization, so rows other checks left queued do not disturb
//! it. Times are fixed instants at microsecond precision (the SQL store's).
//!
//! Call [`suite`] with the ports, all usually backed by one store.

use atlas_conversations::{
    Channel, ChannelId, ChannelProvider, Completion, Conversation, ConversationError, ConversationId, ConversationStatus,
    ConversationStore, DefaultRule, DeliveryRecord, DeliveryState, Direction, Draft, DraftId, DraftState, Enqueued, InboundRecorded,
    Message, MessageError, MessageId, MessageKind, MessageTemplate, NewChannel, NewInbound, NewOutbound, OutboundContent, Outbox, OutboxId,
    OutboxItem, SendContexts, SendLookup, StatusApplied, StatusEvent, Template, TemplateCategory, TemplateId, TemplateStatus,
};
use atlas_kernel::{Cursor, OrgId, Page, PageRequest, PhoneNumber};
use atlas_runs::{JournalEntry, Run, RunId, RunStatus, RunStore};
use atlas_scopes::{Actor, KeyId};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// The messaging ports under test (usually one store behind all three).
#[derive(Debug, Clone)]
pub struct MessagingPorts {
    pub store: Arc<dyn ConversationStore>,
    pub outbox: Arc<dyn Outbox>,
    pub runs: Arc<dyn RunStore>,
}

/// Runs every check of the suite against `ports`.
pub async fn suite(ports: &MessagingPorts) {
    the_first_channel_of_an_organization_is_its_default(ports).await;
    concurrent_first_channels_elect_exactly_one_default(ports).await;
    a_duplicate_phone_number_id_is_a_duplicate_channel(ports).await;
    templates_are_found_by_name_and_by_id(ports).await;
    a_duplicate_template_name_and_language_is_refused(ports).await;
    an_inbound_message_creates_its_customer_and_conversation(ports).await;
    a_repeated_provider_message_id_is_a_duplicate_that_changes_nothing(ports).await;
    concurrent_inbound_messages_from_a_new_customer_make_one_customer_and_one_conversation(ports).await;
    last_inbound_at_is_the_latest_message_timestamp_whatever_the_arrival_order(ports).await;
    an_outbound_send_queues_its_message_and_outbox_row_with_its_run(ports).await;
    racing_inbound_and_outbound_messages_share_one_conversation(ports).await;
    out_of_order_statuses_end_at_the_highest_state(ports).await;
    concurrent_statuses_for_one_message_lose_nothing(ports).await;
    a_status_before_its_provider_id_is_pending_and_applied_by_complete(ports).await;
    statuses_racing_the_completion_of_their_send_are_never_lost(ports).await;
    a_batch_of_statuses_applies_as_one_by_one(ports).await;
    each_due_row_is_claimed_by_exactly_one_of_several_concurrent_claimers(ports).await;
    a_claimed_row_is_not_claimed_again_until_its_lease_ends(ports).await;
    claims_cap_each_channel_and_let_every_organization_take_a_turn(ports).await;
    a_claim_takes_up_to_its_limit_of_one_channel_within_the_cap(ports).await;
    the_next_due_instant_is_that_of_the_earliest_unfinished_row(ports).await;
    a_retry_with_a_stale_attempt_is_a_conflict(ports).await;
    complete_records_the_provider_id_and_a_repeated_complete_changes_nothing(ports).await;
    completions_recorded_together_are_each_recorded_as_alone(ports).await;
    fail_marks_the_message_failed_with_the_code_and_the_run_failed(ports).await;
    a_completion_or_failure_after_the_lease_was_taken_over_changes_nothing(ports).await;
    conversations_and_messages_page_newest_first_with_cursors(ports).await;
    setting_a_conversation_status_commits_with_its_run(ports).await;
    drafts_are_stored_and_listed_newest_first(ports).await;
    a_draft_is_decided_once_and_its_approval_commits_with_the_send(ports).await;
    another_organization_sees_nothing(ports).await;
    connecting_follows_the_default_rules_and_one_default_remains(ports).await;
    the_default_moves_and_a_disconnected_channel_hands_it_on(ports).await;
    the_latest_conversation_is_where_the_customer_last_wrote(ports).await;
    a_template_sync_upserts_and_marks_only_its_channels_missing_templates_deleted(ports).await;
    rich_content_round_trips_and_a_read_receipt_is_queued_once(ports).await;
    retention_removes_finished_rows_and_stale_pending_statuses_only(ports).await;
}

// ---- fixtures -----------------------------------------------------------------------------

/// The lease every claim of the suite takes.
const LEASE: Duration = Duration::seconds(60);
/// A per-channel cap no check reaches, for the checks that are not about fairness.
const UNCAPPED: u32 = 100_000;

/// A fixed instant at microsecond precision; every time of the suite is an offset from it.
fn t0() -> OffsetDateTime {
    time::macros::datetime!(2026-03-02 09:00:00.123456 UTC)
}

/// `t0` plus `n` seconds.
fn at(n: i64) -> OffsetDateTime {
    t0() + Duration::seconds(n)
}

/// A journal entry for a call of `org_id` doing `operation`, its run in `status`.
pub fn journal(org_id: OrgId, operation: &str, status: RunStatus) -> JournalEntry {
    JournalEntry {
        run: Run {
            id: RunId::generate(),
            org_id,
            actor: Actor::ApiKey(KeyId::generate()),
            operation: operation.into(),
            status,
            request_id: format!("req_{}", uuid::Uuid::new_v4().simple()),
            idempotency_key: None,
            resource_id: None,
            error: None,
            created_at: t0(),
            updated_at: t0(),
        },
        idempotency: None,
        events: Vec::new(),
    }
}

/// The `n`th test phone number (`+1415555nnnn`).
fn phone(n: u32) -> PhoneNumber {
    PhoneNumber::parse(&format!("+1415555{n:04}")).expect("a valid test phone number")
}

/// A provider message id no other check uses.
fn wamid(label: &str) -> String {
    format!("wamid.{label}.{}", uuid::Uuid::new_v4().simple())
}

fn new_channel(org_id: OrgId, phone_number_id: &str, created_at: OffsetDateTime) -> NewChannel {
    NewChannel {
        id: ChannelId::generate(),
        org_id,
        provider: ChannelProvider::Whatsapp,
        name: format!("Support {phone_number_id}"),
        phone_number_id: phone_number_id.into(),
        display_phone_number: "+1 415 555 0000".into(),
        verify_token: format!("verify-{phone_number_id}"),
        waba_id: None,
        default: DefaultRule::IfNone,
        created_at,
        templates: Vec::new(),
    }
}

/// The sealed secrets the suite stores for a channel: opaque bytes, not UTF-8.
fn sealed(channel: &NewChannel) -> Vec<u8> {
    let mut bytes = vec![0x00, 0xff, 0x10];
    bytes.extend_from_slice(channel.id.as_uuid().as_bytes());
    bytes
}

async fn try_connect(ports: &MessagingPorts, channel: &NewChannel, entry: &JournalEntry) -> Result<Channel, ConversationError> {
    ports.store.create_channel(channel, &sealed(channel), &|_: &Channel| entry.clone()).await
}

/// Connects a channel of `org_id`.
async fn connect(ports: &MessagingPorts, org_id: OrgId, phone_number_id: &str, created_at: OffsetDateTime) -> Channel {
    let channel = new_channel(org_id, phone_number_id, created_at);
    try_connect(ports, &channel, &journal(org_id, "channels.create", RunStatus::Succeeded))
        .await
        .unwrap_or_else(|e| panic!("connecting channel {phone_number_id} failed: {e:?}"))
}

/// An organization with one channel.
async fn organization_with_channel(ports: &MessagingPorts) -> (OrgId, Channel) {
    let org_id = OrgId::generate();
    let channel = connect(ports, org_id, "100200300", t0()).await;
    (org_id, channel)
}

/// An inbound text from `from` sent at `timestamp` (and received then too).
fn inbound(
    org_id: OrgId,
    channel_id: ChannelId,
    from: &PhoneNumber,
    provider_message_id: Option<String>,
    text: &str,
    timestamp: OffsetDateTime,
) -> NewInbound {
    NewInbound {
        org_id,
        channel_id,
        from: from.clone(),
        profile_name: None,
        message_id: MessageId::generate(),
        provider_message_id,
        kind: MessageKind::Text,
        content: None,
        text: Some(text.into()),
        timestamp,
        received_at: timestamp,
    }
}

async fn try_record(ports: &MessagingPorts, message: &NewInbound) -> Result<InboundRecorded, ConversationError> {
    ports.store.record_inbound(message, &|_: &InboundRecorded| -> Option<JournalEntry> { None }).await
}

/// Records an inbound message without a journal entry (as the Meta webhook may).
async fn record(ports: &MessagingPorts, message: &NewInbound) -> InboundRecorded {
    try_record(ports, message).await.unwrap_or_else(|e| panic!("recording an inbound message failed: {e:?}"))
}

/// A text send to `to`, queued at `queued_at`, with a deadline a day later.
fn text_send(org_id: OrgId, channel_id: ChannelId, to: &PhoneNumber, body: &str, queued_at: OffsetDateTime) -> NewOutbound {
    NewOutbound {
        org_id,
        channel_id,
        to: to.clone(),
        message_id: MessageId::generate(),
        outbox_id: OutboxId::generate(),
        content: OutboundContent::Text { body: body.into() },
        queued_at,
        deadline: queued_at + Duration::days(1),
        known: None,
        approves: None,
    }
}

async fn try_enqueue(ports: &MessagingPorts, send: &NewOutbound, entry: &JournalEntry) -> Result<Enqueued, ConversationError> {
    ports.store.enqueue_outbound(send, &|_: &Enqueued| entry.clone()).await
}

/// Queues `send` with a pending `messages.send` run; returns the ids and the run's id.
async fn enqueue(ports: &MessagingPorts, send: &NewOutbound) -> (Enqueued, RunId) {
    let entry = journal(send.org_id, "messages.send", RunStatus::Pending);
    let enqueued = try_enqueue(ports, send, &entry).await.unwrap_or_else(|e| panic!("queueing a send failed: {e:?}"));
    (enqueued, entry.run.id)
}

/// Claims every due row at `now` (the whole outbox, in batches) and returns those of `org_id`.
async fn claim_own(ports: &MessagingPorts, org_id: OrgId, now: OffsetDateTime) -> Vec<OutboxItem> {
    claim_of(ports, &[org_id], now).await
}

/// Claims every due row at `now` (the whole outbox, in batches) and returns those of `orgs`.
async fn claim_of(ports: &MessagingPorts, orgs: &[OrgId], now: OffsetDateTime) -> Vec<OutboxItem> {
    let mut own = Vec::new();
    loop {
        let batch = ports.outbox.claim(now, 50, LEASE, UNCAPPED).await.unwrap_or_else(|e| panic!("claiming failed: {e:?}"));
        if batch.is_empty() {
            return own;
        }
        own.extend(batch.into_iter().filter(|item| orgs.contains(&item.org_id)));
    }
}

/// Claims the one due row of `org_id` at `now`.
async fn claim_one(ports: &MessagingPorts, org_id: OrgId, now: OffsetDateTime) -> OutboxItem {
    let mut items = claim_own(ports, org_id, now).await;
    assert_eq!(items.len(), 1, "exactly the organization's one due row is claimed: {items:?}");
    items.pop().expect("one item")
}

/// Every page of a newest-first list fetched `limit` at a time.
async fn all_pages<T, F, Fut>(limit: u32, mut fetch: F) -> Vec<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Page<T>>,
{
    let mut pages = Vec::new();
    let mut request = PageRequest { limit, after: None };
    loop {
        let page = fetch(request).await;
        assert!(page.items.len() <= limit as usize, "a page holds at most its limit");
        pages.push(page.items);
        match page.next_cursor {
            Some(cursor) => request.after = Some(Cursor::decode(&cursor).expect("the store's cursor decodes")),
            None => return pages,
        }
        assert!(pages.len() < 100, "pagination terminates");
    }
}

async fn messages_of(ports: &MessagingPorts, org_id: OrgId, conversation_id: ConversationId) -> Vec<Message> {
    ports
        .store
        .list_messages(org_id, conversation_id, &PageRequest { limit: 200, after: None })
        .await
        .unwrap_or_else(|e| panic!("listing messages failed: {e:?}"))
        .items
}

/// One message of a conversation, read back through `list_messages`.
async fn message_in(ports: &MessagingPorts, org_id: OrgId, conversation_id: ConversationId, id: MessageId) -> Message {
    messages_of(ports, org_id, conversation_id)
        .await
        .into_iter()
        .find(|m| m.id == id)
        .unwrap_or_else(|| panic!("message {id} is listed in its conversation"))
}

async fn run(ports: &MessagingPorts, org_id: OrgId, id: RunId) -> Option<Run> {
    ports.runs.get(org_id, id).await.unwrap_or_else(|e| panic!("reading run {id} failed: {e:?}"))
}

async fn conversation(ports: &MessagingPorts, org_id: OrgId, id: ConversationId) -> Conversation {
    ports
        .store
        .get_conversation(org_id, id)
        .await
        .unwrap_or_else(|e| panic!("reading conversation {id} failed: {e:?}"))
        .unwrap_or_else(|| panic!("conversation {id} exists"))
}

async fn conversations_of(ports: &MessagingPorts, org_id: OrgId) -> Vec<Conversation> {
    ports
        .store
        .list_conversations(org_id, &PageRequest { limit: 200, after: None })
        .await
        .unwrap_or_else(|e| panic!("listing conversations failed: {e:?}"))
        .items
}

/// A queued, claimed and completed send of a new organization: its organization, the message
/// after `complete` at `at(1)`, and the provider id.
async fn a_sent_message(ports: &MessagingPorts, label: &str) -> (OrgId, Message, String) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let send = text_send(org_id, channel.id, &phone(1), "Your order shipped", t0());
    enqueue(ports, &send).await;
    let item = claim_one(ports, org_id, t0()).await;
    let provider_message_id = wamid(label);
    let message = ports
        .outbox
        .complete(item.id, item.attempt, &provider_message_id, at(1))
        .await
        .unwrap_or_else(|e| panic!("completing the send failed: {e:?}"));
    (org_id, message, provider_message_id)
}

async fn apply(ports: &MessagingPorts, org_id: OrgId, provider_message_id: &str, event: &StatusEvent) -> StatusApplied {
    ports.store.apply_status(org_id, provider_message_id, event).await.unwrap_or_else(|e| panic!("applying {event:?} failed: {e:?}"))
}

/// The message and change flag of an `Applied` outcome.
fn applied(outcome: StatusApplied) -> (Message, bool) {
    match outcome {
        StatusApplied::Applied { message, changed } => (*message, changed),
        StatusApplied::Pending => panic!("a status for a known provider id is applied, not kept pending"),
    }
}

// ---- channels -----------------------------------------------------------------------------

/// An organization's first channel is its default and later ones are not; channels read back as
/// stored (listed newest first, never with secrets), `channel_with_secrets` returns the sealed
/// bytes untouched, and the journal entry commits with the channel.
pub async fn the_first_channel_of_an_organization_is_its_default(ports: &MessagingPorts) {
    let org_id = OrgId::generate();
    let first = new_channel(org_id, "555000111", at(0));
    let entry = journal(org_id, "channels.create", RunStatus::Succeeded);
    let created = try_connect(ports, &first, &entry).await.expect("connecting the first channel");
    assert_eq!(created, first.clone().into_channel(true), "the organization's first channel is its default");
    assert!(run(ports, org_id, entry.run.id).await.is_some(), "the channel's run committed with it");

    let second = connect(ports, org_id, "555000222", at(1)).await;
    assert!(!second.is_default, "a later channel is not the default");
    let store = &ports.store;
    assert_eq!(store.default_channel(org_id).await.expect("default_channel"), Some(created.clone()), "the default is the first channel");
    assert_eq!(store.get_channel(org_id, second.id).await.expect("get_channel"), Some(second.clone()), "a channel reads back as stored");
    let listed = store.list_channels(org_id, &PageRequest::default()).await.expect("list_channels");
    assert_eq!(listed.items, vec![second.clone(), created.clone()], "channels are listed newest first");
    assert_eq!(listed.next_cursor, None, "a short list has no next page");
    let pages = all_pages(1, |page| async move { store.list_channels(org_id, &page).await.expect("list_channels") }).await;
    assert_eq!(pages, vec![vec![second], vec![created.clone()]], "channels page one at a time with a cursor");
    assert_eq!(
        store.channel_with_secrets(created.id).await.expect("channel_with_secrets"),
        Some((created, sealed(&first))),
        "the sealed secrets come back byte for byte"
    );
    assert_eq!(
        store.channel_with_secrets(ChannelId::generate()).await.expect("channel_with_secrets"),
        None,
        "an unknown channel is absent"
    );
}

/// Ten channels connected at once to a new organization: exactly one of them is the default.
pub async fn concurrent_first_channels_elect_exactly_one_default(ports: &MessagingPorts) {
    let org_id = OrgId::generate();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let ports = ports.clone();
            tokio::spawn(async move { connect(&ports, org_id, &format!("77700{i}"), at(i)).await })
        })
        .collect();
    let mut channels = Vec::new();
    for task in tasks {
        channels.push(task.await.expect("the task ran"));
    }
    let defaults: Vec<_> = channels.iter().filter(|c| c.is_default).collect();
    assert_eq!(defaults.len(), 1, "of concurrent first channels exactly one is the default: {channels:?}");
    assert_eq!(
        ports.store.default_channel(org_id).await.expect("default_channel").map(|c| c.id),
        Some(defaults[0].id),
        "the default channel is the one reported as default"
    );
}

/// A second channel with a `phone_number_id` the organization already has is
/// `Duplicate("channel")` and commits nothing; another organization may connect the same number.
pub async fn a_duplicate_phone_number_id_is_a_duplicate_channel(ports: &MessagingPorts) {
    let org_id = OrgId::generate();
    connect(ports, org_id, "123456789", at(0)).await;
    let entry = journal(org_id, "channels.create", RunStatus::Succeeded);
    let result = try_connect(ports, &new_channel(org_id, "123456789", at(1)), &entry).await;
    assert!(
        matches!(result, Err(ConversationError::Duplicate("channel"))),
        "a repeated phone_number_id is a duplicate channel: {result:?}"
    );
    assert_eq!(run(ports, org_id, entry.run.id).await, None, "the refused channel committed no run");
    let listed = ports.store.list_channels(org_id, &PageRequest::default()).await.expect("list_channels");
    assert_eq!(listed.items.len(), 1, "the refused channel is not stored");

    let other = connect(ports, OrgId::generate(), "123456789", at(2)).await;
    assert!(other.is_default, "another organization connects the same number, as its own first channel");
}

// ---- templates ----------------------------------------------------------------------------

fn template(org_id: OrgId, name: &str, language: &str, created_at: OffsetDateTime) -> Template {
    Template {
        id: TemplateId::generate(),
        org_id,
        name: name.into(),
        language: language.into(),
        category: TemplateCategory::Utility,
        status: TemplateStatus::Approved,
        body: "Hello {{1}}, your order {{2}} shipped".into(),
        components: None,
        channel_id: None,
        created_at,
    }
}

async fn register(ports: &MessagingPorts, template: &Template) {
    let entry = journal(template.org_id, "templates.create", RunStatus::Succeeded);
    ports.store.create_template(template, &entry).await.unwrap_or_else(|e| panic!("registering {} failed: {e:?}", template.name));
    assert!(run(ports, template.org_id, entry.run.id).await.is_some(), "the template's run committed with it");
}

/// `find_templates` finds every language of a name and a template by its `tpl_…` id; lists are
/// newest first.
pub async fn templates_are_found_by_name_and_by_id(ports: &MessagingPorts) {
    let org_id = OrgId::generate();
    let english = template(org_id, "order_shipped", "en_US", at(0));
    let portuguese = Template { status: TemplateStatus::Pending, ..template(org_id, "order_shipped", "pt_BR", at(1)) };
    let other = Template { category: TemplateCategory::Marketing, ..template(org_id, "spring_sale", "en_US", at(2)) };
    for t in [&english, &portuguese, &other] {
        register(ports, t).await;
    }
    let store = &ports.store;
    let mut by_name = store.find_templates(org_id, "order_shipped").await.expect("find_templates");
    by_name.sort_by(|a, b| a.language.cmp(&b.language));
    assert_eq!(by_name, vec![english.clone(), portuguese.clone()], "a name finds every language and status");
    assert_eq!(
        store.find_templates(org_id, &other.id.to_string()).await.expect("find_templates"),
        vec![other.clone()],
        "a template is found by its id"
    );
    assert_eq!(
        store.find_templates(org_id, "no_such_template").await.expect("find_templates"),
        Vec::new(),
        "an unknown name finds nothing"
    );
    assert_eq!(
        store.find_templates(org_id, &TemplateId::generate().to_string()).await.expect("find_templates"),
        Vec::new(),
        "an unknown id finds nothing"
    );
    let pages = all_pages(2, |page| async move { store.list_templates(org_id, &page).await.expect("list_templates") }).await;
    assert_eq!(pages, vec![vec![other, portuguese], vec![english]], "templates are listed newest first with a cursor");
}

/// A second template with an existing (name, language) is `Duplicate("template")`; another
/// organization may register the same one.
pub async fn a_duplicate_template_name_and_language_is_refused(ports: &MessagingPorts) {
    let org_id = OrgId::generate();
    register(ports, &template(org_id, "hello_world", "en_US", at(0))).await;
    let entry = journal(org_id, "templates.create", RunStatus::Succeeded);
    let result = ports.store.create_template(&template(org_id, "hello_world", "en_US", at(1)), &entry).await;
    assert!(matches!(result, Err(ConversationError::Duplicate("template"))), "a repeated name and language is a duplicate: {result:?}");
    assert_eq!(run(ports, org_id, entry.run.id).await, None, "the refused template committed no run");
    assert_eq!(ports.store.find_templates(org_id, "hello_world").await.expect("find_templates").len(), 1, "it is not stored");
    register(ports, &template(OrgId::generate(), "hello_world", "en_US", at(2))).await;
}

// ---- inbound ------------------------------------------------------------------------------

/// An inbound message creates its customer (with the profile name) and conversation (open,
/// `last_inbound_at` the message's own time), stores the message, and commits the journal
/// entry when there is one; later messages reuse both, a later profile name replaces the
/// earlier, and a message without one keeps it.
pub async fn an_inbound_message_creates_its_customer_and_conversation(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let customer = phone(10);
    let pid = wamid("first");
    let first =
        NewInbound { profile_name: Some("Ana".into()), ..inbound(org_id, channel.id, &customer, Some(pid.clone()), "hola", at(10)) };
    let entry = journal(org_id, "events.create", RunStatus::Succeeded);
    let recorded =
        ports.store.record_inbound(&first, &|_: &InboundRecorded| Some(entry.clone())).await.expect("recording the first inbound message");
    assert!(!recorded.duplicate, "a new provider id is not a duplicate");
    assert_eq!(recorded.customer.org_id, org_id);
    assert_eq!(recorded.customer.phone_number, customer, "the customer is the sender");
    assert_eq!(recorded.customer.name.as_deref(), Some("Ana"), "the customer takes the profile name");
    assert_eq!(recorded.customer.created_at, at(10), "the customer was created when the message was received");
    let conv = &recorded.conversation;
    assert_eq!((conv.org_id, conv.channel_id, conv.customer.clone()), (org_id, channel.id, recorded.customer.clone()));
    assert_eq!(conv.status, ConversationStatus::Open, "a new conversation is open");
    assert_eq!(conv.last_inbound_at, Some(at(10)), "the window opens from the message's own timestamp");
    assert_eq!(
        recorded.message,
        Message::inbound(first.message_id, org_id, conv.id, MessageKind::Text, Some("hola".into()), None, Some(pid.clone()), at(10)),
        "the stored message is the inbound message"
    );
    assert!(run(ports, org_id, entry.run.id).await.is_some(), "the journal entry committed with the message");
    assert_eq!(conversation(ports, org_id, conv.id).await, *conv, "the conversation reads back as recorded");
    assert_eq!(
        ports.store.find_conversation(org_id, channel.id, &customer).await.expect("find_conversation"),
        Some(conv.clone()),
        "the conversation is found by channel and phone number"
    );
    assert_eq!(
        ports.store.message_by_provider_id(org_id, &pid).await.expect("message_by_provider_id"),
        Some(recorded.message.clone()),
        "the message is found by its provider id"
    );
    assert_eq!(messages_of(ports, org_id, conv.id).await, vec![recorded.message.clone()], "the message is listed");

    let nameless = record(ports, &inbound(org_id, channel.id, &customer, Some(wamid("second")), "¿hay alguien?", at(20))).await;
    assert_eq!(nameless.customer, recorded.customer, "a later message reuses the customer and keeps its name");
    assert_eq!(nameless.conversation.id, conv.id, "a later message reuses the conversation");
    assert_eq!(nameless.conversation.last_inbound_at, Some(at(20)), "a later message moves the window");
    let renamed = NewInbound { profile_name: Some("Ana María".into()), ..inbound(org_id, channel.id, &customer, None, "soy yo", at(30)) };
    let renamed = record(ports, &renamed).await;
    assert_eq!(renamed.customer.name.as_deref(), Some("Ana María"), "the latest profile name wins");
    assert_eq!(renamed.customer.id, recorded.customer.id, "the customer is still the same");
    assert_eq!(conversations_of(ports, org_id).await.len(), 1, "one customer on one channel has one conversation");
}

/// The same provider message id recorded again (a Meta retry, even with another text, time and
/// profile name) is reported as a duplicate with the stored message and changes no row; the
/// journal entry the caller gives for it still commits.
pub async fn a_repeated_provider_message_id_is_a_duplicate_that_changes_nothing(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let pid = wamid("retried");
    let first =
        NewInbound { profile_name: Some("Ana".into()), ..inbound(org_id, channel.id, &phone(11), Some(pid.clone()), "hola", at(0)) };
    let original = record(ports, &first).await;
    let retry = NewInbound {
        profile_name: Some("Someone else".into()),
        ..inbound(org_id, channel.id, &phone(11), Some(pid.clone()), "hola (edited)", at(3600))
    };
    let entry = journal(org_id, "events.create", RunStatus::Succeeded);
    let mut seen_duplicate = std::sync::atomic::AtomicBool::new(false);
    let duplicate = ports
        .store
        .record_inbound(&retry, &|outcome: &InboundRecorded| {
            seen_duplicate.store(outcome.duplicate, std::sync::atomic::Ordering::SeqCst);
            Some(entry.clone())
        })
        .await
        .expect("recording the retry");
    assert!(*seen_duplicate.get_mut(), "the journal is asked for the duplicate's entry, knowing it is one");
    assert!(duplicate.duplicate, "the repeated provider id is reported as a duplicate");
    assert_eq!(duplicate.message, original.message, "the duplicate reports the stored message");
    assert_eq!(duplicate.conversation, original.conversation, "the conversation did not change (window, status)");
    assert_eq!(duplicate.customer, original.customer, "the customer did not change (name)");
    assert!(run(ports, org_id, entry.run.id).await.is_some(), "the duplicate's journal entry commits (the call is still recorded)");
    assert_eq!(conversation(ports, org_id, original.conversation.id).await, original.conversation, "nothing changed in the store");
    assert_eq!(messages_of(ports, org_id, original.conversation.id).await, vec![original.message.clone()], "the message is stored once");

    // The same id in another channel of the organization is still the same message.
    let second_channel = connect(ports, org_id, "999888777", at(1)).await;
    let elsewhere = record(ports, &inbound(org_id, second_channel.id, &phone(12), Some(pid.clone()), "hola", at(5))).await;
    assert!(elsewhere.duplicate, "the provider id is unique across the organization's channels");
    assert_eq!(
        ports.store.find_conversation(org_id, second_channel.id, &phone(12)).await.expect("find_conversation"),
        None,
        "a duplicate creates no customer or conversation"
    );
    // …but another organization's message with that id is its own.
    let (other_org, other_channel) = organization_with_channel(ports).await;
    let theirs = record(ports, &inbound(other_org, other_channel.id, &phone(11), Some(pid), "hola", at(0))).await;
    assert!(!theirs.duplicate, "provider ids are unique per organization, not across organizations");
}

/// Twenty inbound messages from one new customer recorded at once: every one is stored, in one
/// customer's one conversation, whose window is the latest of their timestamps.
pub async fn concurrent_inbound_messages_from_a_new_customer_make_one_customer_and_one_conversation(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let ports = ports.clone();
            let message = inbound(org_id, channel.id, &phone(20), Some(wamid("burst")), &format!("message {i}"), at(100 + (i * 7) % 20));
            tokio::spawn(async move { record(&ports, &message).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("the task ran"));
    }
    let customers: HashSet<_> = outcomes.iter().map(|o| o.customer.id).collect();
    let conversations: HashSet<_> = outcomes.iter().map(|o| o.conversation.id).collect();
    assert_eq!(customers.len(), 1, "concurrent first messages make exactly one customer");
    assert_eq!(conversations.len(), 1, "concurrent first messages make exactly one conversation");
    assert!(outcomes.iter().all(|o| !o.duplicate), "distinct provider ids are never duplicates");
    assert_eq!(conversations_of(ports, org_id).await.len(), 1, "the organization has one conversation");
    let conv = conversation(ports, org_id, outcomes[0].conversation.id).await;
    assert_eq!(messages_of(ports, org_id, conv.id).await.len(), 20, "every message is stored");
    assert_eq!(conv.last_inbound_at, Some(at(119)), "the window is the latest message timestamp");
}

/// `last_inbound_at` is the latest inbound message's own timestamp, whatever order the
/// messages arrive in (Meta retries old ones for days); outbound messages never move it.
pub async fn last_inbound_at_is_the_latest_message_timestamp_whatever_the_arrival_order(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let customer = phone(30);
    let mut expected = None;
    for (n, timestamp) in [at(7200), at(0), at(3600), at(7199)].into_iter().enumerate() {
        let outcome = record(ports, &inbound(org_id, channel.id, &customer, Some(wamid("ordered")), &format!("#{n}"), timestamp)).await;
        expected = expected.max(Some(timestamp));
        assert_eq!(outcome.conversation.last_inbound_at, expected, "after message #{n} the window is the latest timestamp so far");
    }
    enqueue(ports, &text_send(org_id, channel.id, &customer, "reply", at(9000))).await;
    let conv = ports.store.find_conversation(org_id, channel.id, &customer).await.expect("find_conversation").expect("the conversation");
    assert_eq!(conv.last_inbound_at, Some(at(7200)), "an outbound message does not move the window");
}

// ---- outbound -----------------------------------------------------------------------------

/// A send queues its message (`queued`, text or template as given) and an outbox row in one
/// transaction with its run: the ids are the ones asked for, the customer and conversation are
/// created without opening the window, and the claimed row carries everything the worker needs.
pub async fn an_outbound_send_queues_its_message_and_outbox_row_with_its_run(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let customer = phone(40);
    let send = NewOutbound {
        content: OutboundContent::Template {
            template_id: TemplateId::generate(),
            name: "order_shipped".into(),
            language: "en_US".into(),
            category: TemplateCategory::Utility,
            parameters: vec!["Ana".into(), "#1234".into()],
            header: None,
            buttons: Vec::new(),
        },
        ..text_send(org_id, channel.id, &customer, "", at(0))
    };
    let (enqueued, run_id) = enqueue(ports, &send).await;
    assert_eq!((enqueued.message_id, enqueued.outbox_id), (send.message_id, send.outbox_id), "the send's ids are the ones given");
    let conv = conversation(ports, org_id, enqueued.conversation_id).await;
    assert_eq!(
        (conv.customer.id, conv.customer.phone_number.clone()),
        (enqueued.customer_id, customer.clone()),
        "the customer was created"
    );
    assert_eq!(conv.channel_id, channel.id);
    assert_eq!(conv.last_inbound_at, None, "a send does not open the window");
    let queued = Message::queued(send.message_id, org_id, conv.id, &send.content, at(0));
    assert_eq!(message_in(ports, org_id, conv.id, send.message_id).await, queued, "the message is queued");
    assert_eq!(
        queued.template,
        Some(MessageTemplate {
            name: "order_shipped".into(),
            language: "en_US".into(),
            category: TemplateCategory::Utility,
            parameters: vec!["Ana".into(), "#1234".into()],
        }),
        "the template is kept on the message"
    );
    let stored_run = run(ports, org_id, run_id).await.expect("the send's run committed with the message");
    assert_eq!(stored_run.status, RunStatus::Pending, "the send's run stays pending until the provider answers");

    assert_eq!(claim_own(ports, org_id, at(-1)).await, Vec::new(), "a row is not claimed before it is due");
    let item = claim_one(ports, org_id, at(5)).await;
    assert_eq!(
        item,
        OutboxItem {
            id: send.outbox_id,
            org_id,
            channel_id: channel.id,
            conversation_id: conv.id,
            message_id: send.message_id,
            to: customer,
            content: send.content.clone(),
            attempt: 1,
            queued_at: at(0),
            deadline: send.deadline,
            lease_until: at(5) + LEASE,
            run_id: Some(run_id),
        },
        "the claimed row carries the send"
    );
    let sending = message_in(ports, org_id, conv.id, send.message_id).await;
    assert_eq!(sending.delivery_state, Some(DeliveryState::Sending), "a claimed row's message is sending");

    let (other, _) = enqueue(ports, &text_send(org_id, channel.id, &phone(40), "and another", at(1))).await;
    assert_eq!(other.conversation_id, conv.id, "a second send reuses the conversation");
    assert_eq!(other.customer_id, enqueued.customer_id, "a second send reuses the customer");
}

/// Ten inbound messages and ten sends for one new customer, all at once: one customer, one
/// conversation.
pub async fn racing_inbound_and_outbound_messages_share_one_conversation(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let customer = phone(50);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let ports = ports.clone();
            let customer = customer.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    let message = inbound(org_id, channel.id, &customer, Some(wamid("race")), "hi", at(i));
                    let outcome = record(&ports, &message).await;
                    (outcome.customer.id, outcome.conversation.id)
                } else {
                    let (enqueued, _) = enqueue(&ports, &text_send(org_id, channel.id, &customer, "hello", at(i))).await;
                    (enqueued.customer_id, enqueued.conversation_id)
                }
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.expect("the task ran"));
    }
    assert_eq!(ids.len(), 1, "racing inbound and outbound messages share one customer and one conversation: {ids:?}");
    let conversations = conversations_of(ports, org_id).await;
    assert_eq!(conversations.len(), 1, "the organization has one conversation");
    assert_eq!(messages_of(ports, org_id, conversations[0].id).await.len(), 20, "every message is stored");
}

// ---- statuses -----------------------------------------------------------------------------

/// Provider statuses arriving out of order and repeated leave the message at the highest state
/// with the earliest time per state; a duplicate or stale status reports `changed: false`.
pub async fn out_of_order_statuses_end_at_the_highest_state(ports: &MessagingPorts) {
    let (org_id, sent, pid) = a_sent_message(ports, "ordered").await;
    assert_eq!((sent.delivery_state, sent.sent_at), (Some(DeliveryState::Sent), Some(at(1))), "a completed send is sent");

    let (message, changed) = applied(apply(ports, org_id, &pid, &StatusEvent::new(DeliveryState::Read, at(40))).await);
    assert!(changed, "read after sent changes the message");
    assert_eq!(message.delivery_state, Some(DeliveryState::Read));
    assert_eq!((message.delivered_at, message.read_at), (Some(at(40)), Some(at(40))), "read implies delivered");

    let (message, changed) = applied(apply(ports, org_id, &pid, &StatusEvent::new(DeliveryState::Delivered, at(30))).await);
    assert!(changed, "a late delivered with an earlier time corrects delivered_at");
    assert_eq!((message.delivery_state, message.delivered_at), (Some(DeliveryState::Read), Some(at(30))), "the state stays read");

    for event in [
        StatusEvent::new(DeliveryState::Delivered, at(35)),
        StatusEvent::new(DeliveryState::Sent, at(20)),
        StatusEvent::new(DeliveryState::Read, at(40)),
    ] {
        let (after, changed) = applied(apply(ports, org_id, &pid, &event).await);
        assert!(!changed, "a stale or repeated {event:?} changes nothing");
        assert_eq!(after, message, "a stale or repeated status leaves the message as it was");
    }
    assert_eq!(
        ports.store.message_by_provider_id(org_id, &pid).await.expect("message_by_provider_id"),
        Some(message.clone()),
        "the stored message is the one reported"
    );
    let expected = sent
        .delivery()
        .expect("an outbound record")
        .applied_all(&[StatusEvent::new(DeliveryState::Read, at(40)), StatusEvent::new(DeliveryState::Delivered, at(30))]);
    assert_eq!(message.delivery(), Some(expected), "the record is the merge of every status");
}

/// Twelve statuses for one message applied at once (repeats included): the stored record is
/// the merge of all of them, as if applied one by one (no lost update).
pub async fn concurrent_statuses_for_one_message_lose_nothing(ports: &MessagingPorts) {
    let (org_id, sent, pid) = a_sent_message(ports, "concurrent").await;
    let events: Vec<StatusEvent> = (0..12)
        .map(|i| match i % 4 {
            0 => StatusEvent::new(DeliveryState::Delivered, at(20 + i)),
            1 => StatusEvent::new(DeliveryState::Read, at(30 + i)),
            2 => StatusEvent::new(DeliveryState::Sent, at(i)),
            _ => StatusEvent::failed(at(50 + i), MessageError::new(format!("1310{i}"), "undeliverable")),
        })
        .collect();
    let tasks: Vec<_> = events
        .iter()
        .cloned()
        .map(|event| {
            let (ports, pid) = (ports.clone(), pid.clone());
            tokio::spawn(async move { apply(&ports, org_id, &pid, &event).await })
        })
        .collect();
    for task in tasks {
        applied(task.await.expect("the task ran"));
    }
    let stored = ports.store.message_by_provider_id(org_id, &pid).await.expect("message_by_provider_id").expect("the message");
    let expected: DeliveryRecord = sent.delivery().expect("an outbound record").applied_all(&events);
    assert_eq!(stored.delivery(), Some(expected), "concurrent statuses merge as if applied one by one");
    assert_eq!(stored.delivery_state, Some(DeliveryState::Failed), "a failed status wins");
}

/// A status for a provider id no message carries yet is kept (`Pending`, never dropped; a
/// repeat does not pile up) and applied by `complete` when the send records that id.
pub async fn a_status_before_its_provider_id_is_pending_and_applied_by_complete(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let (enqueued, _) = enqueue(ports, &text_send(org_id, channel.id, &phone(60), "fast receipt", at(0))).await;
    let item = claim_one(ports, org_id, at(0)).await;
    let pid = wamid("early");
    let delivered = StatusEvent::new(DeliveryState::Delivered, at(3));
    let read = StatusEvent::new(DeliveryState::Read, at(4));
    for event in [&delivered, &delivered, &read] {
        assert_eq!(apply(ports, org_id, &pid, event).await, StatusApplied::Pending, "a status for an unknown provider id is pending");
    }
    assert_eq!(ports.store.message_by_provider_id(org_id, &pid).await.expect("message_by_provider_id"), None, "no message has the id yet");

    let message = ports.outbox.complete(item.id, item.attempt, &pid, at(2)).await.expect("complete");
    assert_eq!(message.id, enqueued.message_id);
    assert_eq!(message.provider_message_id.as_deref(), Some(pid.as_str()));
    assert_eq!(message.delivery_state, Some(DeliveryState::Read), "the pending statuses were applied on completion");
    assert_eq!((message.sent_at, message.delivered_at, message.read_at), (Some(at(2)), Some(at(3)), Some(at(4))));
    assert_eq!(message_in(ports, org_id, enqueued.conversation_id, message.id).await, message, "the completed message is stored");
    let (after, changed) = applied(apply(ports, org_id, &pid, &delivered).await);
    assert!(!changed, "a repeat of an applied pending status changes nothing");
    assert_eq!(after, message);

    // A pending status of another organization never reaches this one's message.
    let (other_org, other_channel) = organization_with_channel(ports).await;
    let failed = StatusEvent::failed(at(5), MessageError::new("131047", "Re-engagement message"));
    assert_eq!(apply(ports, other_org, &pid, &failed).await, StatusApplied::Pending, "another organization's status is its own");
    enqueue(ports, &text_send(other_org, other_channel.id, &phone(60), "theirs", at(0))).await;
    let theirs = claim_one(ports, other_org, at(0)).await;
    let their_message = ports.outbox.complete(theirs.id, theirs.attempt, &pid, at(2)).await.expect("complete");
    assert_eq!(their_message.delivery_state, Some(DeliveryState::Failed), "their pending failure applies to their message");
    assert_eq!(their_message.error, failed.error, "with its error");
    assert_eq!(
        ports.store.message_by_provider_id(org_id, &pid).await.expect("message_by_provider_id"),
        Some(message),
        "this organization's message is untouched"
    );
}

/// Statuses racing the completion that records their provider id (Meta's receipt can beat the
/// worker's commit): in every round each status ends up applied, none is lost between
/// "no message has this id yet" and the completion.
pub async fn statuses_racing_the_completion_of_their_send_are_never_lost(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    for round in 0..10 {
        let (enqueued, _) = enqueue(ports, &text_send(org_id, channel.id, &phone(130), &format!("race {round}"), at(0))).await;
        let item = claim_own(ports, org_id, at(0)).await.into_iter().find(|i| i.id == enqueued.outbox_id).expect("the row is claimed");
        let pid = wamid("racing");
        let events = [StatusEvent::new(DeliveryState::Delivered, at(3)), StatusEvent::new(DeliveryState::Read, at(4))];
        let statuses: Vec<_> = events
            .iter()
            .cloned()
            .map(|event| {
                let (ports, pid) = (ports.clone(), pid.clone());
                tokio::spawn(async move { apply(&ports, org_id, &pid, &event).await })
            })
            .collect();
        let completion = {
            let (outbox, pid) = (ports.outbox.clone(), pid.clone());
            tokio::spawn(async move { outbox.complete(item.id, item.attempt, &pid, at(2)).await })
        };
        completion.await.expect("the task ran").unwrap_or_else(|e| panic!("complete failed: {e:?}"));
        for status in statuses {
            status.await.expect("the task ran");
        }
        let stored = ports.store.message_by_provider_id(org_id, &pid).await.expect("message_by_provider_id").expect("the message");
        assert_eq!(
            (stored.delivery_state, stored.sent_at, stored.delivered_at, stored.read_at),
            (Some(DeliveryState::Read), Some(at(2)), Some(at(3)), Some(at(4))),
            "round {round}: every status racing the completion is applied"
        );
    }
}

/// `apply_statuses` applies a batch (two messages, repeats, statuses of an unknown provider id,
/// out of order) exactly as one `apply_status` per status would: the same outcome for each, in
/// order, and the same stored records; the unknown id's statuses are kept pending (once) and
/// applied by the completion that records it.
pub async fn a_batch_of_statuses_applies_as_one_by_one(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let mut sent = Vec::new();
    for (n, label) in [(150, "batch-a"), (151, "batch-b")] {
        let (enqueued, _) = enqueue(ports, &text_send(org_id, channel.id, &phone(n), label, at(0))).await;
        let item = claim_own(ports, org_id, at(0)).await.into_iter().find(|i| i.id == enqueued.outbox_id).expect("the row is claimed");
        let pid = wamid(label);
        sent.push((ports.outbox.complete(item.id, item.attempt, &pid, at(1)).await.expect("complete"), pid));
    }
    let ((first, first_pid), (second, second_pid)) = (sent[0].clone(), sent[1].clone());
    let unknown_pid = wamid("batch-unknown");
    let status = |pid: &str, event: StatusEvent| atlas_conversations::ProviderStatus { provider_message_id: pid.to_owned(), event };
    let batch = vec![
        status(&first_pid, StatusEvent::new(DeliveryState::Read, at(40))),
        status(&second_pid, StatusEvent::new(DeliveryState::Delivered, at(20))),
        status(&unknown_pid, StatusEvent::new(DeliveryState::Delivered, at(3))),
        status(&first_pid, StatusEvent::new(DeliveryState::Delivered, at(30))),
        status(&first_pid, StatusEvent::new(DeliveryState::Delivered, at(35))),
        status(&unknown_pid, StatusEvent::new(DeliveryState::Delivered, at(3))),
        status(&second_pid, StatusEvent::failed(at(50), MessageError::new("131026", "undeliverable"))),
    ];
    let outcomes = ports.store.apply_statuses(org_id, &batch).await.unwrap_or_else(|e| panic!("applying a batch failed: {e:?}"));
    assert_eq!(outcomes.len(), batch.len(), "one outcome per status");
    let changes: Vec<Option<bool>> = outcomes
        .iter()
        .map(|o| match o {
            StatusApplied::Applied { changed, .. } => Some(*changed),
            StatusApplied::Pending => None,
        })
        .collect();
    assert_eq!(
        changes,
        vec![Some(true), Some(true), None, Some(true), Some(false), None, Some(true)],
        "each status did what it alone does"
    );
    let events_of = |pid: &str| batch.iter().filter(|s| s.provider_message_id == pid).map(|s| s.event.clone()).collect::<Vec<_>>();
    let stored_first = ports.store.message_by_provider_id(org_id, &first_pid).await.expect("read").expect("the first message");
    let stored_second = ports.store.message_by_provider_id(org_id, &second_pid).await.expect("read").expect("the second message");
    assert_eq!(stored_first.delivery(), Some(first.delivery().expect("a record").applied_all(&events_of(&first_pid))));
    assert_eq!(stored_second.delivery(), Some(second.delivery().expect("a record").applied_all(&events_of(&second_pid))));
    assert_eq!(stored_second.delivery_state, Some(DeliveryState::Failed));
    let StatusApplied::Applied { message: last, .. } = &outcomes[6] else { panic!("the last status applied") };
    assert_eq!(**last, stored_second, "an outcome carries the message as that status left it");
    assert!(ports.store.apply_statuses(org_id, &[]).await.expect("an empty batch").is_empty());

    let (pending_send, _) = enqueue(ports, &text_send(org_id, channel.id, &phone(152), "third", at(0))).await;
    let item = claim_own(ports, org_id, at(0)).await.into_iter().find(|i| i.id == pending_send.outbox_id).expect("the row is claimed");
    let third = ports.outbox.complete(item.id, item.attempt, &unknown_pid, at(2)).await.expect("complete");
    assert_eq!((third.delivery_state, third.delivered_at), (Some(DeliveryState::Delivered), Some(at(3))), "the pending status applied");
}

// ---- outbox -------------------------------------------------------------------------------

/// Thirty due rows and six claimers claiming in small batches at once: every row is claimed,
/// each by exactly one claimer, at attempt 1.
pub async fn each_due_row_is_claimed_by_exactly_one_of_several_concurrent_claimers(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let mut expected = BTreeSet::new();
    for i in 0..30 {
        let send = text_send(org_id, channel.id, &phone(70 + i), &format!("#{i}"), at(i64::from(i)));
        expected.insert(send.outbox_id);
        enqueue(ports, &send).await;
    }
    let now = at(100);
    let outbox = ports.outbox.clone();
    let claimed = crate::claim_concurrently(6, move || {
        let outbox = outbox.clone();
        async move {
            let batch = outbox.claim(now, 4, LEASE, UNCAPPED).await.unwrap_or_else(|e| panic!("claiming failed: {e:?}"));
            (!batch.is_empty()).then(|| batch.into_iter().filter(|item| item.org_id == org_id).collect::<Vec<_>>())
        }
    })
    .await;
    let ids: Vec<OutboxId> = claimed.iter().map(|item| item.id).collect();
    let distinct: BTreeSet<OutboxId> = ids.iter().copied().collect();
    assert_eq!(ids.len(), distinct.len(), "no row is claimed twice");
    assert_eq!(distinct, expected, "every due row is claimed");
    assert!(claimed.iter().all(|item| item.attempt == 1), "each claim is the row's first attempt");
    assert_eq!(claim_own(ports, org_id, now).await, Vec::new(), "leased rows are not claimed again");
}

/// One claim takes as many of one channel's due rows as its limit asks, oldest first, in one
/// call, and never more than the channel's cap counting the rows already leased.
pub async fn a_claim_takes_up_to_its_limit_of_one_channel_within_the_cap(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let now = at(100);
    // Rows other checks left due are leased first, so the claims below see this channel's alone.
    claim_of(ports, &[], now).await;
    let mut sends = Vec::new();
    for n in 0..6 {
        let send = text_send(org_id, channel.id, &phone(400 + n), &format!("L{n}"), at(i64::from(n)));
        enqueue(ports, &send).await;
        sends.push(send.outbox_id);
    }
    let claim =
        |limit: u32| async move { ports.outbox.claim(now, limit, LEASE, 4).await.unwrap_or_else(|e| panic!("claiming failed: {e:?}")) };
    let own = |items: Vec<OutboxItem>| items.into_iter().filter(|item| item.org_id == org_id).map(|item| item.id).collect::<Vec<_>>();
    assert_eq!(own(claim(3).await), sends[..3].to_vec(), "a claim of three takes the channel's three oldest rows at once");
    assert_eq!(own(claim(3).await), sends[3..4].to_vec(), "the next takes one: three are leased and the cap is four");
    assert_eq!(own(claim(3).await), Vec::new(), "and then none until a lease ends");
}

/// Fair claims: within an organization its channels take turns (every channel's first row
/// before any channel's second), an organization with nothing in flight goes before one that
/// holds rows already, however much older the busy one's backlog is, and a claim never leases
/// more than `per_channel` rows of one channel at once (rows already leased count until their
/// lease lapses).
pub async fn claims_cap_each_channel_and_let_every_organization_take_a_turn(ports: &MessagingPorts) {
    let busy = OrgId::generate();
    let first = connect(ports, busy, "100200301", t0()).await;
    let second = connect(ports, busy, "100200302", t0()).await;
    let quiet = OrgId::generate();
    let quiet_channel = connect(ports, quiet, "100200303", t0()).await;
    // Six rows on the busy organization's first channel, then two on its second, then the
    // quiet organization's one row, the newest of all.
    let mut ids = BTreeMap::new();
    for n in 0..6 {
        let send = text_send(busy, first.id, &phone(300 + n), &format!("A{n}"), at(i64::from(n)));
        ids.insert(send.outbox_id, format!("A{n}"));
        enqueue(ports, &send).await;
    }
    for n in 0..2 {
        let send = text_send(busy, second.id, &phone(310 + n), &format!("B{n}"), at(10 + i64::from(n)));
        ids.insert(send.outbox_id, format!("B{n}"));
        enqueue(ports, &send).await;
    }
    let send = text_send(quiet, quiet_channel.id, &phone(320), "Q0", at(20));
    ids.insert(send.outbox_id, "Q0".to_owned());
    enqueue(ports, &send).await;

    // One row per claim, every lease held: oldest-first alone would hand out A0…A5 first.
    let now = at(100);
    let mut order = Vec::new();
    loop {
        let claimed = ports.outbox.claim(now, 1, LEASE, UNCAPPED).await.unwrap_or_else(|e| panic!("claiming failed: {e:?}"));
        if claimed.is_empty() {
            break;
        }
        order.extend(claimed.iter().filter_map(|item| ids.get(&item.id).cloned()));
    }
    assert_eq!(
        order,
        ["A0", "Q0", "B0", "A1", "B1", "A2", "A3", "A4", "A5"],
        "the quiet organization's row waits for one busy row, and the busy organization's channels alternate"
    );

    // Every lease lapsed: with a cap of 2 per channel the busy organization gets two rows of
    // each channel, then nothing until those leases lapse too.
    let capped = |now: OffsetDateTime| async move {
        let mut own = Vec::new();
        loop {
            let claimed = ports.outbox.claim(now, 1, LEASE, 2).await.unwrap_or_else(|e| panic!("claiming failed: {e:?}"));
            if claimed.is_empty() {
                return own;
            }
            own.extend(claimed.into_iter().filter(|item| item.org_id == busy).map(|item| item.channel_id));
        }
    };
    let later = now + LEASE;
    let mut per_channel = capped(later).await;
    per_channel.sort();
    let mut expected = vec![first.id, first.id, second.id, second.id];
    expected.sort();
    assert_eq!(per_channel, expected, "at most 2 rows of each channel are leased at once");
    assert_eq!(capped(later + Duration::seconds(1)).await, Vec::new(), "with 2 leased, a channel gets nothing more");
    assert_eq!(capped(later + LEASE).await.len(), 4, "once their leases lapse they count no more");
}

/// A claimed row is not handed out again while its lease runs; once it lapses the row is
/// claimed again, at the next attempt, with a new lease (the worker that held it died).
pub async fn a_claimed_row_is_not_claimed_again_until_its_lease_ends(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let send = text_send(org_id, channel.id, &phone(80), "lease", at(0));
    enqueue(ports, &send).await;
    let first = claim_one(ports, org_id, at(10)).await;
    assert_eq!((first.id, first.attempt, first.lease_until), (send.outbox_id, 1, at(10) + LEASE));
    assert_eq!(claim_own(ports, org_id, at(10) + LEASE / 2).await, Vec::new(), "a leased row is not claimed again");
    assert_eq!(claim_own(ports, org_id, at(10) + LEASE - Duration::microseconds(1)).await, Vec::new(), "nor just before its lease ends");
    let again = claim_one(ports, org_id, at(10) + LEASE).await;
    assert_eq!((again.id, again.attempt), (send.outbox_id, 2), "after the lease the row is claimed again, at the next attempt");
    assert_eq!(again.lease_until, at(10) + LEASE * 2, "with a new lease");
}

/// `next_due` is the earliest instant an unfinished row is or becomes claimable: a queued
/// row's due time, a leased row's lease end, and a finished row no longer counts. (The row of
/// this check is due long before every other check's, so it is the earliest.)
pub async fn the_next_due_instant_is_that_of_the_earliest_unfinished_row(ports: &MessagingPorts) {
    let early = time::macros::datetime!(2001-01-01 00:00:00 UTC);
    let next_due = || async { ports.outbox.next_due().await.unwrap_or_else(|e| panic!("next_due failed: {e:?}")) };
    let (org_id, channel) = organization_with_channel(ports).await;
    enqueue(ports, &text_send(org_id, channel.id, &phone(140), "early", early)).await;
    assert_eq!(next_due().await, Some(early), "a queued row is due at its time");
    let claimed_at = early + Duration::seconds(5);
    let item = claim_one(ports, org_id, claimed_at).await;
    assert_eq!(next_due().await, Some(claimed_at + LEASE), "a leased row becomes claimable when its lease ends");
    ports.outbox.complete(item.id, item.attempt, &wamid("early"), claimed_at).await.expect("complete");
    assert!(next_due().await.is_none_or(|due| due > claimed_at + LEASE), "a finished row no longer counts");
}

/// `retry` reschedules the row (lease released, last error kept, message still sending) only
/// for the attempt that holds it: a stale attempt, a finished row and an unknown row are
/// refused and change nothing.
pub async fn a_retry_with_a_stale_attempt_is_a_conflict(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let send = text_send(org_id, channel.id, &phone(81), "retry", at(0));
    let (enqueued, _) = enqueue(ports, &send).await;
    let first = claim_one(ports, org_id, at(0)).await;
    let error = MessageError::new("130429", "rate limited");
    ports.outbox.retry(first.id, first.attempt, at(600), &error).await.expect("retrying the held attempt");
    let message = message_in(ports, org_id, enqueued.conversation_id, send.message_id).await;
    assert_eq!(message.delivery_state, Some(DeliveryState::Sending), "a message between attempts stays sending");
    assert_eq!(message.error, None, "a retried error is the row's, not the message's");
    assert_eq!(claim_own(ports, org_id, at(300)).await, Vec::new(), "a retried row is not due before its next attempt");
    let second = claim_one(ports, org_id, at(600)).await;
    assert_eq!(second.attempt, 2, "the retry is the second attempt");

    let stale = ports.outbox.retry(first.id, first.attempt, at(610), &error).await;
    assert!(matches!(stale, Err(ConversationError::Conflict(_))), "a stale worker's retry is a conflict: {stale:?}");
    assert_eq!(claim_own(ports, org_id, at(630)).await, Vec::new(), "the stale retry released nothing: the row is still leased");
    let unknown = ports.outbox.retry(OutboxId::generate(), 1, at(700), &error).await;
    assert!(matches!(unknown, Err(ConversationError::NotFound)), "an unknown row is not found: {unknown:?}");

    ports.outbox.complete(second.id, second.attempt, &wamid("retried"), at(601)).await.expect("complete");
    let finished = ports.outbox.retry(second.id, second.attempt, at(800), &error).await;
    assert!(matches!(finished, Err(ConversationError::Conflict(_))), "a finished row cannot be retried: {finished:?}");
}

/// `complete` and `fail` are fenced like `retry`: a worker whose lease lapsed and whose row
/// another worker claimed again changes nothing (the message, its run and the row stay as the
/// new holder has them), and neither may the attempt that released its row with a retry; the
/// holder of the current attempt completes it.
pub async fn a_completion_or_failure_after_the_lease_was_taken_over_changes_nothing(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let send = text_send(org_id, channel.id, &phone(84), "fenced", at(0));
    let (enqueued, _) = enqueue(ports, &send).await;
    let stale = claim_one(ports, org_id, at(0)).await;
    let current = claim_one(ports, org_id, at(0) + LEASE).await;
    assert_eq!((current.id, current.attempt), (stale.id, stale.attempt + 1), "the lapsed lease was taken over");
    let before = message_in(ports, org_id, enqueued.conversation_id, send.message_id).await;

    let late = ports.outbox.complete(stale.id, stale.attempt, &wamid("stale"), at(1) + LEASE).await;
    assert!(matches!(late, Err(ConversationError::Conflict(_))), "a completion after the takeover is a conflict: {late:?}");
    let error = MessageError::new("131047", "late refusal");
    let late = ports.outbox.fail(stale.id, stale.attempt, &error, at(1) + LEASE).await;
    assert!(matches!(late, Err(ConversationError::Conflict(_))), "a failure after the takeover is a conflict: {late:?}");
    assert_eq!(message_in(ports, org_id, enqueued.conversation_id, send.message_id).await, before, "the stale worker changed nothing");
    assert_eq!(claim_own(ports, org_id, at(2) + LEASE).await, Vec::new(), "the row is still leased to its new holder");

    let holder_id = wamid("current");
    let message = ports.outbox.complete(current.id, current.attempt, &holder_id, at(3) + LEASE).await.expect("the holder completes");
    assert_eq!(message.provider_message_id.as_deref(), Some(holder_id.as_str()), "the holder's send is the one recorded");

    // A retry releases the row: the attempt that released it no longer holds it.
    let send = text_send(org_id, channel.id, &phone(85), "released", at(0));
    enqueue(ports, &send).await;
    let released = claim_one(ports, org_id, at(0)).await;
    ports.outbox.retry(released.id, released.attempt, at(600), &error).await.expect("retrying the held attempt");
    let late = ports.outbox.complete(released.id, released.attempt, &wamid("released"), at(5)).await;
    assert!(matches!(late, Err(ConversationError::Conflict(_))), "a completion after a retry released the row is a conflict: {late:?}");
    let late = ports.outbox.fail(released.id, released.attempt, &error, at(5)).await;
    assert!(matches!(late, Err(ConversationError::Conflict(_))), "a failure after a retry released the row is a conflict: {late:?}");
    let again = claim_one(ports, org_id, at(600)).await;
    assert_eq!((again.id, again.attempt), (released.id, released.attempt + 1), "the released row is claimed at its next attempt");
}

/// `complete` records the provider id, applies `sent`, finishes the row (never claimed again)
/// and the run (`succeeded`); completing again with the same id returns the same message and
/// changes nothing; another id, or `fail`, is a conflict; an unknown row is not found.
pub async fn complete_records_the_provider_id_and_a_repeated_complete_changes_nothing(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let send = text_send(org_id, channel.id, &phone(82), "complete", at(0));
    let (enqueued, run_id) = enqueue(ports, &send).await;
    let item = claim_one(ports, org_id, at(0)).await;
    let pid = wamid("completed");
    let message = ports.outbox.complete(item.id, item.attempt, &pid, at(2)).await.expect("complete");
    let mut expected = Message::queued(send.message_id, org_id, enqueued.conversation_id, &send.content, at(0));
    expected.provider_message_id = Some(pid.clone());
    expected.delivery_state = Some(DeliveryState::Sent);
    expected.sent_at = Some(at(2));
    assert_eq!(message, expected, "the completed message is sent with its provider id");
    assert_eq!(message_in(ports, org_id, enqueued.conversation_id, message.id).await, message, "the message is stored so");
    let finished = run(ports, org_id, run_id).await.expect("the send's run");
    assert_eq!((finished.status, finished.updated_at), (RunStatus::Succeeded, at(2)), "the send's run succeeded");

    let again = ports.outbox.complete(item.id, item.attempt, &pid, at(9)).await.expect("completing again with the same id");
    assert_eq!(again, message, "a repeated completion returns the message unchanged");
    assert_eq!(message_in(ports, org_id, enqueued.conversation_id, message.id).await, message, "and changes nothing");
    let other = ports.outbox.complete(item.id, item.attempt, &wamid("other"), at(9)).await;
    assert!(matches!(other, Err(ConversationError::Conflict(_))), "completing with another id is a conflict: {other:?}");
    let fail = ports.outbox.fail(item.id, item.attempt, &MessageError::new("131047", "late"), at(9)).await;
    assert!(matches!(fail, Err(ConversationError::Conflict(_))), "failing a completed row is a conflict: {fail:?}");
    let unknown = ports.outbox.complete(OutboxId::generate(), 1, &wamid("unknown"), at(9)).await;
    assert!(matches!(unknown, Err(ConversationError::NotFound)), "an unknown row is not found: {unknown:?}");
    assert_eq!(claim_own(ports, org_id, at(86_400)).await, Vec::new(), "a finished row is never claimed again");
}

/// `complete_many` records each completion as `complete` alone would have, in order:
/// completions of held rows in two organizations and three channels are recorded (provider id,
/// `sent` at their own instant, row finished, run `succeeded` at that instant); one whose
/// provider id has a pending status gets it applied; a stale worker's completion of a row taken
/// over is a conflict while the holder's, later in the same call, completes; the holder's
/// completion before a stale one finishes the row, so the stale one (another provider id) is a
/// conflict; completing a finished row again with its own id returns its message unchanged; an
/// unknown row is not found.
pub async fn completions_recorded_together_are_each_recorded_as_alone(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let second_channel = connect(ports, org_id, &format!("pn-{}", uuid::Uuid::now_v7()), at(0)).await;
    let (other_org, other_channel) = organization_with_channel(ports).await;
    // Three rows claimed, then taken over when their leases lapsed (at `now`); one of them is
    // completed alone.
    let now = at(0) + LEASE;
    let (taken, taken_later, finished) = {
        let mut rows = Vec::new();
        for label in ["taken", "taken later", "finished"] {
            let send = text_send(org_id, channel.id, &phone(220 + u32::try_from(rows.len()).expect("small")), label, at(0));
            rows.push((send.message_id, enqueue(ports, &send).await.1));
        }
        let stale = claim_own(ports, org_id, at(0)).await;
        assert_eq!(stale.len(), 3, "the three rows are claimed: {stale:?}");
        let current = claim_own(ports, org_id, now).await;
        assert_eq!(current.len(), 3, "and claimed again once their leases lapsed: {current:?}");
        let find = |items: &[OutboxItem], id: MessageId| items.iter().find(|item| item.message_id == id).cloned().expect("claimed");
        let mut pairs = rows.into_iter().map(|(message_id, run_id)| (find(&stale, message_id), find(&current, message_id), run_id));
        (pairs.next().expect("taken"), pairs.next().expect("taken later"), pairs.next().expect("finished"))
    };
    let finished_pid = wamid("together-finished");
    let finished_message =
        ports.outbox.complete(finished.1.id, finished.1.attempt, &finished_pid, now).await.expect("completing alone first");

    // Sends in two organizations and three channels, and one whose provider id has a status
    // waiting, all claimed at `now` (the taken rows are still leased).
    let mut sends = Vec::new();
    for (i, (org, channel_id)) in
        [(org_id, channel.id), (org_id, channel.id), (org_id, second_channel.id), (other_org, other_channel.id)].into_iter().enumerate()
    {
        let send = text_send(org, channel_id, &phone(200 + u32::try_from(i).expect("small")), "together", now);
        let (enqueued, run_id) = enqueue(ports, &send).await;
        sends.push((send, enqueued, run_id));
    }
    let early = text_send(org_id, channel.id, &phone(210), "early receipt", now);
    let (early_enqueued, early_run) = enqueue(ports, &early).await;
    let early_pid = wamid("together-early");
    let delivered = StatusEvent::new(DeliveryState::Delivered, now + Duration::seconds(30));
    assert_eq!(apply(ports, org_id, &early_pid, &delivered).await, StatusApplied::Pending, "the status waits for its provider id");
    let claimed = claim_of(ports, &[org_id, other_org], now).await;
    assert_eq!(claimed.len(), sends.len() + 1, "the new sends are claimed, and only they: {claimed:?}");
    let item_of = |message_id: MessageId| claimed.iter().find(|item| item.message_id == message_id).cloned().expect("claimed");
    let after = |seconds: i64| now + Duration::seconds(seconds);

    let completion = |item: &OutboxItem, pid: &str, at: OffsetDateTime| Completion {
        id: item.id,
        attempt: item.attempt,
        provider_message_id: pid.to_owned(),
        at,
    };
    let pids: Vec<String> = (0..sends.len()).map(|i| wamid(&format!("together-{i}"))).collect();
    let sent_at = |i: usize| after(10 + i64::try_from(i).expect("small"));
    let mut completions: Vec<Completion> = sends
        .iter()
        .zip(&pids)
        .enumerate()
        .map(|(i, ((send, _, _), pid))| completion(&item_of(send.message_id), pid, sent_at(i)))
        .collect();
    completions.push(completion(&item_of(early.message_id), &early_pid, after(20)));
    let (holder_pid, later_holder_pid) = (wamid("together-holder"), wamid("together-later-holder"));
    completions.push(completion(&taken.0, &wamid("together-stale"), after(21)));
    completions.push(completion(&taken.1, &holder_pid, after(22)));
    completions.push(completion(&taken_later.1, &later_holder_pid, after(23)));
    completions.push(completion(&taken_later.0, &wamid("together-later-stale"), after(24)));
    completions.push(completion(&finished.1, &finished_pid, after(25)));
    completions.push(Completion { id: OutboxId::generate(), attempt: 1, provider_message_id: wamid("together-unknown"), at: after(26) });
    let results = ports.outbox.complete_many(&completions).await;
    assert_eq!(results.len(), completions.len(), "one result per completion");

    for (i, (send, enqueued, run_id)) in sends.iter().enumerate() {
        let mut expected = Message::queued(send.message_id, send.org_id, enqueued.conversation_id, &send.content, now);
        expected.provider_message_id = Some(pids[i].clone());
        expected.delivery_state = Some(DeliveryState::Sent);
        expected.sent_at = Some(sent_at(i));
        let message = results[i].as_ref().unwrap_or_else(|e| panic!("completion {i} is recorded: {e:?}"));
        assert_eq!(message, &expected, "completion {i}: the message is sent at its own instant with its provider id");
        assert_eq!(&message_in(ports, send.org_id, enqueued.conversation_id, message.id).await, message, "completion {i} is stored so");
        let finished = run(ports, send.org_id, *run_id).await.expect("the send's run");
        assert_eq!((finished.status, finished.updated_at), (RunStatus::Succeeded, sent_at(i)), "completion {i}: the run succeeded then");
    }
    let early_message = results[sends.len()].as_ref().expect("the completion with a waiting status is recorded");
    assert_eq!(early_message.provider_message_id.as_deref(), Some(early_pid.as_str()));
    assert_eq!(
        (early_message.delivery_state, early_message.sent_at, early_message.delivered_at),
        (Some(DeliveryState::Delivered), Some(after(20)), Some(after(30))),
        "the waiting status was applied on completion"
    );
    assert_eq!(&message_in(ports, org_id, early_enqueued.conversation_id, early_message.id).await, early_message);
    assert_eq!(run(ports, org_id, early_run).await.map(|r| r.status), Some(RunStatus::Succeeded));
    let (again, changed) = applied(apply(ports, org_id, &early_pid, &delivered).await);
    assert!(!changed, "the waiting status was consumed: applying it again changes nothing");
    assert_eq!(&again, early_message);

    let rest = &results[sends.len() + 1..];
    assert!(matches!(rest[0], Err(ConversationError::Conflict(_))), "the stale worker's completion is a conflict: {:?}", rest[0]);
    let holder = rest[1].as_ref().expect("the holder's completion, after the stale one, is recorded");
    assert_eq!(holder.provider_message_id, Some(holder_pid), "the holder's send is the one recorded");
    assert_eq!(holder.sent_at, Some(after(22)));
    assert_eq!(run(ports, org_id, taken.2).await.map(|r| r.status), Some(RunStatus::Succeeded));
    let later_holder = rest[2].as_ref().expect("the holder's completion, before the stale one, is recorded");
    assert_eq!(later_holder.provider_message_id.as_deref(), Some(later_holder_pid.as_str()));
    assert!(matches!(rest[3], Err(ConversationError::Conflict(_))), "the stale completion of a finished row is a conflict: {:?}", rest[3]);
    let stored = ports.store.message_by_provider_id(org_id, &later_holder_pid).await.expect("read");
    assert_eq!(stored.as_ref(), Some(later_holder), "the stale completion changed nothing");
    assert_eq!(rest[4].as_ref().ok(), Some(&finished_message), "completing a finished row again with its id returns it unchanged");
    assert!(matches!(rest[5], Err(ConversationError::NotFound)), "an unknown row is not found: {:?}", rest[5]);
    assert_eq!(claim_own(ports, org_id, at(86_400)).await, Vec::new(), "every recorded row is finished");
    assert_eq!(claim_own(ports, other_org, at(86_400)).await, Vec::new());
}

/// For statement budgets: `n` sends of a new organization's one channel, queued and claimed,
/// each with the provider's acceptance ready to record (`complete_many`).
pub async fn claimed_sends(ports: &MessagingPorts, n: usize) -> Vec<Completion> {
    let (org_id, channel) = organization_with_channel(ports).await;
    for i in 0..n {
        enqueue(ports, &text_send(org_id, channel.id, &phone(300 + u32::try_from(i).expect("small")), "budget", at(0))).await;
    }
    let items = claim_own(ports, org_id, at(0)).await;
    assert_eq!(items.len(), n, "every send claimed");
    items.iter().map(|item| Completion { id: item.id, attempt: item.attempt, provider_message_id: wamid("budget"), at: at(1) }).collect()
}

/// `fail` fails the message with the provider's code (`131047`), finishes the row and marks
/// the send's run failed with the error; a second `fail` or a `complete` is a conflict.
pub async fn fail_marks_the_message_failed_with_the_code_and_the_run_failed(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let send = text_send(org_id, channel.id, &phone(83), "fail", at(0));
    let (enqueued, run_id) = enqueue(ports, &send).await;
    let item = claim_one(ports, org_id, at(0)).await;
    let error = MessageError::new("131047", "Re-engagement message");
    let message = ports.outbox.fail(item.id, item.attempt, &error, at(3)).await.expect("fail");
    assert_eq!(message.delivery_state, Some(DeliveryState::Failed), "the message failed");
    assert_eq!((message.failed_at, message.error.clone()), (Some(at(3)), Some(error.clone())), "with the time and the provider's code");
    assert_eq!(message_in(ports, org_id, enqueued.conversation_id, message.id).await, message, "the failure is stored");
    let failed = run(ports, org_id, run_id).await.expect("the send's run");
    assert_eq!(failed.status, RunStatus::Failed, "the send's run failed");
    assert_eq!(failed.error.map(|e| (e.code, e.message)), Some((error.code.clone(), error.message.clone())), "with the error");

    let again = ports.outbox.fail(item.id, item.attempt, &error, at(4)).await;
    assert!(matches!(again, Err(ConversationError::Conflict(_))), "failing a finished row is a conflict: {again:?}");
    let complete = ports.outbox.complete(item.id, item.attempt, &wamid("late"), at(4)).await;
    assert!(matches!(complete, Err(ConversationError::Conflict(_))), "completing a failed row is a conflict: {complete:?}");
    let unknown = ports.outbox.fail(OutboxId::generate(), 1, &error, at(4)).await;
    assert!(matches!(unknown, Err(ConversationError::NotFound)), "an unknown row is not found: {unknown:?}");
    assert_eq!(claim_own(ports, org_id, at(86_400)).await, Vec::new(), "a failed row is never claimed again");
}

// ---- lists, status, drafts ----------------------------------------------------------------

/// Conversations and a conversation's messages are listed newest first (creation time, then
/// id) and page with cursors; messages of an unknown conversation are `NotFound`.
pub async fn conversations_and_messages_page_newest_first_with_cursors(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let mut conversations = Vec::new();
    for i in 0..5 {
        let outcome = record(ports, &inbound(org_id, channel.id, &phone(90 + i), None, "hi", at(i64::from(i) * 10))).await;
        conversations.push(outcome.conversation);
    }
    // A sixth conversation at the same instant as the last: the id breaks the tie.
    conversations.push(record(ports, &inbound(org_id, channel.id, &phone(99), None, "hi", at(40))).await.conversation);
    conversations.sort_by_key(|c| std::cmp::Reverse((c.created_at, c.id.as_uuid())));
    let store = &ports.store;
    let pages = all_pages(2, |page| async move { store.list_conversations(org_id, &page).await.expect("list_conversations") }).await;
    assert_eq!(
        pages,
        conversations.chunks(2).map(<[Conversation]>::to_vec).collect::<Vec<_>>(),
        "conversations page newest first, two at a time"
    );

    let conv = conversations[0].id;
    let customer = conversations[0].customer.phone_number.clone();
    let mut messages = messages_of(ports, org_id, conv).await;
    for i in 1..=4 {
        messages.push(record(ports, &inbound(org_id, channel.id, &customer, Some(wamid("page")), "more", at(100 + i))).await.message);
    }
    let (enqueued, _) = enqueue(ports, &text_send(org_id, channel.id, &customer, "reply", at(102))).await;
    messages.push(message_in(ports, org_id, conv, enqueued.message_id).await);
    messages.sort_by_key(|m| std::cmp::Reverse((m.created_at, m.id.as_uuid())));
    let pages = all_pages(2, |page| async move { store.list_messages(org_id, conv, &page).await.expect("list_messages") }).await;
    assert_eq!(pages.concat(), messages, "messages page newest first, inbound by their own time, outbound by queue time");
    assert_eq!(pages.len(), 3, "six messages make three pages of two");
    let unknown = store.list_messages(org_id, ConversationId::generate(), &PageRequest::default()).await;
    assert!(matches!(unknown, Err(ConversationError::NotFound)), "an unknown conversation's messages are not found: {unknown:?}");
}

/// Setting a conversation's status commits with its run; setting it again succeeds; a
/// handed-off conversation stays handed off when the customer writes, a closed one reopens; an
/// unknown conversation is `NotFound` and commits nothing.
pub async fn setting_a_conversation_status_commits_with_its_run(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let customer = phone(100);
    let conv = record(ports, &inbound(org_id, channel.id, &customer, None, "help", at(0))).await.conversation;
    let entry = journal(org_id, "actions.execute", RunStatus::Succeeded);
    let handed = ports.store.set_conversation_status(org_id, conv.id, ConversationStatus::HandedOff, &entry).await.expect("handoff");
    assert_eq!(handed, Conversation { status: ConversationStatus::HandedOff, ..conv.clone() }, "only the status changed");
    assert_eq!(conversation(ports, org_id, conv.id).await, handed, "the status is stored");
    assert!(run(ports, org_id, entry.run.id).await.is_some(), "the run committed with the status");
    let again = journal(org_id, "actions.execute", RunStatus::Succeeded);
    let same = ports.store.set_conversation_status(org_id, conv.id, ConversationStatus::HandedOff, &again).await.expect("again");
    assert_eq!(same, handed, "setting the same status changes nothing");
    assert!(run(ports, org_id, again.run.id).await.is_some(), "its run still commits");

    let after = record(ports, &inbound(org_id, channel.id, &customer, None, "hello?", at(10))).await;
    assert_eq!(after.conversation.status, ConversationStatus::HandedOff, "a handoff survives a new inbound message");
    let closed = journal(org_id, "conversations.close", RunStatus::Succeeded);
    ports.store.set_conversation_status(org_id, conv.id, ConversationStatus::Closed, &closed).await.expect("close");
    let reopened = record(ports, &inbound(org_id, channel.id, &customer, None, "one more thing", at(20))).await;
    assert_eq!(reopened.conversation.status, ConversationStatus::Open, "a closed conversation reopens on a new inbound message");

    let unknown = journal(org_id, "actions.execute", RunStatus::Succeeded);
    let result = ports.store.set_conversation_status(org_id, ConversationId::generate(), ConversationStatus::Closed, &unknown).await;
    assert!(matches!(result, Err(ConversationError::NotFound)), "an unknown conversation is not found: {result:?}");
    assert_eq!(run(ports, org_id, unknown.run.id).await, None, "a refused call commits no run");
}

/// Drafts are stored with their run and listed newest first with a cursor; they are not
/// messages; an unknown conversation is `NotFound`.
pub async fn drafts_are_stored_and_listed_newest_first(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let conv = record(ports, &inbound(org_id, channel.id, &phone(110), None, "price?", at(0))).await.conversation;
    let mut drafts = Vec::new();
    for i in 0..3 {
        let draft = Draft::pending(org_id, conv.id, format!("draft {i}"), at(10 + i));
        let entry = journal(org_id, "actions.execute", RunStatus::Succeeded);
        ports.store.save_draft(&draft, &entry).await.expect("save_draft");
        assert!(run(ports, org_id, entry.run.id).await.is_some(), "the draft's run committed with it");
        drafts.push(draft);
    }
    drafts.reverse();
    let store = &ports.store;
    let pages = all_pages(2, |page| async move { store.list_drafts(org_id, conv.id, None, &page).await.expect("list_drafts") }).await;
    assert_eq!(pages, vec![drafts[0..2].to_vec(), drafts[2..].to_vec()], "drafts are listed newest first");
    assert_eq!(messages_of(ports, org_id, conv.id).await.len(), 1, "drafts are not messages");

    let orphan = Draft::pending(org_id, ConversationId::generate(), "lost".into(), at(20));
    let entry = journal(org_id, "actions.execute", RunStatus::Succeeded);
    let result = store.save_draft(&orphan, &entry).await;
    assert!(matches!(result, Err(ConversationError::NotFound)), "a draft for an unknown conversation is refused: {result:?}");
    assert_eq!(run(ports, org_id, entry.run.id).await, None, "and commits no run");
    let listed = store.list_drafts(org_id, orphan.conversation_id, None, &PageRequest::default()).await;
    assert!(matches!(listed, Err(ConversationError::NotFound)), "an unknown conversation's drafts are not found: {listed:?}");
}

/// A send that approves a draft marks it approved with the message in the same transaction;
/// a draft is decided once: a second approval or a rejection of a decided draft writes
/// nothing (no message, no run), and an approval of another organization's draft is not found.
pub async fn a_draft_is_decided_once_and_its_approval_commits_with_the_send(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let customer = phone(111);
    let conv = record(ports, &inbound(org_id, channel.id, &customer, None, "open on sunday?", at(0))).await.conversation;
    let draft = Draft::pending(org_id, conv.id, "We open at 9.".into(), at(1));
    ports.store.save_draft(&draft, &journal(org_id, "actions.execute", RunStatus::Succeeded)).await.expect("save_draft");
    let other = Draft::pending(org_id, conv.id, "Closed on Sundays.".into(), at(2));
    ports.store.save_draft(&other, &journal(org_id, "actions.execute", RunStatus::Succeeded)).await.expect("save_draft");

    let approving = |org_id| NewOutbound {
        known: Some((conv.customer.id, conv.id)),
        approves: Some(draft.id),
        ..text_send(org_id, channel.id, &customer, "We open at 9.", at(3))
    };
    let send = approving(org_id);
    let entry = journal(org_id, "drafts.approve", RunStatus::Pending);
    try_enqueue(ports, &send, &entry).await.expect("the approval queues the message");
    let approved = ports.store.get_draft(org_id, conv.id, draft.id).await.expect("get_draft").expect("the draft");
    assert_eq!((approved.state, approved.message_id), (DraftState::Approved, Some(send.message_id)), "approved with its message");
    assert_eq!(approved.decided_at, Some(at(3)));

    let again = approving(org_id);
    let second = journal(org_id, "drafts.approve", RunStatus::Pending);
    let result = try_enqueue(ports, &again, &second).await;
    assert!(matches!(result, Err(ConversationError::DraftDecided(DraftState::Approved))), "approved once: {result:?}");
    assert_eq!(run(ports, org_id, second.run.id).await, None, "the refused approval commits no run");
    let texts = messages_of(ports, org_id, conv.id).await.iter().filter(|m| m.direction == Direction::Outbound).count();
    assert_eq!(texts, 1, "and queues no second message");
    let rejected = journal(org_id, "drafts.reject", RunStatus::Succeeded);
    let late = ports.store.reject_draft(org_id, conv.id, draft.id, "too late", at(4), &rejected).await;
    assert!(matches!(late, Err(ConversationError::DraftDecided(DraftState::Approved))), "a decided draft is not rejected: {late:?}");
    assert_eq!(run(ports, org_id, rejected.run.id).await, None);

    let entry = journal(org_id, "drafts.reject", RunStatus::Succeeded);
    let decided = ports.store.reject_draft(org_id, conv.id, other.id, "wrong hours", at(5), &entry).await.expect("reject_draft");
    assert_eq!((decided.state, decided.reason.as_deref(), decided.message_id), (DraftState::Rejected, Some("wrong hours"), None));
    assert!(run(ports, org_id, entry.run.id).await.is_some(), "the rejection's run committed with it");
    let approve_rejected = NewOutbound { approves: Some(other.id), ..approving(org_id) };
    let result = try_enqueue(ports, &approve_rejected, &journal(org_id, "drafts.approve", RunStatus::Pending)).await;
    assert!(matches!(result, Err(ConversationError::DraftDecided(DraftState::Rejected))), "a rejected draft is never sent: {result:?}");

    let store = &ports.store;
    let pending = store.list_drafts(org_id, conv.id, Some(DraftState::Pending), &PageRequest::default()).await.expect("list_drafts");
    assert!(pending.items.is_empty(), "no draft is pending any more");
    let all = store.list_drafts(org_id, conv.id, None, &PageRequest::default()).await.expect("list_drafts");
    assert_eq!(all.items.len(), 2);

    let intruder = OrgId::generate();
    assert_eq!(store.get_draft(intruder, conv.id, draft.id).await.expect("get_draft"), None, "another organization sees no draft");
    let result =
        store.reject_draft(intruder, conv.id, draft.id, "mine", at(6), &journal(intruder, "drafts.reject", RunStatus::Succeeded)).await;
    assert!(matches!(result, Err(ConversationError::NotFound)), "nor decides one: {result:?}");
}

// ---- tenancy ------------------------------------------------------------------------------

/// Another organization sees none of an organization's channels, templates, conversations,
/// messages or drafts, cannot write into its conversations or through its channels, and its
/// statuses never reach the organization's messages.
pub async fn another_organization_sees_nothing(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let shipped = template(org_id, "order_shipped", "en_US", at(0));
    register(ports, &shipped).await;
    let customer = phone(120);
    let pid = wamid("tenant");
    let inbound_outcome = record(ports, &inbound(org_id, channel.id, &customer, Some(pid.clone()), "hola", at(1))).await;
    let conv = inbound_outcome.conversation.clone();
    let draft = Draft::pending(org_id, conv.id, "draft".into(), at(2));
    ports.store.save_draft(&draft, &journal(org_id, "actions.execute", RunStatus::Succeeded)).await.expect("save_draft");

    let intruder = OrgId::generate();
    let store = &ports.store;
    let page = PageRequest::default();
    assert_eq!(store.list_channels(intruder, &page).await.expect("list_channels").items, Vec::new(), "no channels");
    assert_eq!(store.get_channel(intruder, channel.id).await.expect("get_channel"), None, "no channel by id");
    assert_eq!(store.default_channel(intruder).await.expect("default_channel"), None, "no default channel");
    assert_eq!(store.list_templates(intruder, &page).await.expect("list_templates").items, Vec::new(), "no templates");
    assert_eq!(store.find_templates(intruder, "order_shipped").await.expect("find_templates"), Vec::new(), "no template by name");
    assert_eq!(store.find_templates(intruder, &shipped.id.to_string()).await.expect("find_templates"), Vec::new(), "no template by id");
    assert_eq!(store.list_conversations(intruder, &page).await.expect("list_conversations").items, Vec::new(), "no conversations");
    assert_eq!(store.get_conversation(intruder, conv.id).await.expect("get_conversation"), None, "no conversation by id");
    assert_eq!(
        store.find_conversation(intruder, channel.id, &customer).await.expect("find_conversation"),
        None,
        "no conversation by phone"
    );
    assert_eq!(store.message_by_provider_id(intruder, &pid).await.expect("message_by_provider_id"), None, "no message by provider id");
    let messages = store.list_messages(intruder, conv.id, &page).await;
    assert!(matches!(messages, Err(ConversationError::NotFound)), "no messages: {messages:?}");
    let drafts = store.list_drafts(intruder, conv.id, None, &page).await;
    assert!(matches!(drafts, Err(ConversationError::NotFound)), "no drafts: {drafts:?}");

    let entry = journal(intruder, "actions.execute", RunStatus::Succeeded);
    let status = store.set_conversation_status(intruder, conv.id, ConversationStatus::Closed, &entry).await;
    assert!(matches!(status, Err(ConversationError::NotFound)), "no status change: {status:?}");
    let foreign_draft = Draft { org_id: intruder, id: DraftId::generate(), ..draft.clone() };
    let saved = store.save_draft(&foreign_draft, &entry).await;
    assert!(matches!(saved, Err(ConversationError::NotFound)), "no draft into its conversation: {saved:?}");
    let inbound_result = try_record(ports, &inbound(intruder, channel.id, &customer, Some(wamid("intruder")), "hi", at(3))).await;
    assert!(matches!(inbound_result, Err(ConversationError::NotFound)), "no inbound message through its channel: {inbound_result:?}");
    let send = text_send(intruder, channel.id, &customer, "hi", at(3));
    let sent = try_enqueue(ports, &send, &entry).await;
    assert!(matches!(sent, Err(ConversationError::NotFound)), "no send through its channel: {sent:?}");
    assert_eq!(run(ports, intruder, entry.run.id).await, None, "the refused calls committed nothing");
    assert_eq!(
        apply(ports, intruder, &pid, &StatusEvent::new(DeliveryState::Read, at(4))).await,
        StatusApplied::Pending,
        "a status under another organization does not find the message"
    );

    assert_eq!(conversation(ports, org_id, conv.id).await, conv, "the organization's conversation is untouched");
    assert_eq!(messages_of(ports, org_id, conv.id).await, vec![inbound_outcome.message], "its messages are untouched");
    let own_drafts = store.list_drafts(org_id, conv.id, None, &page).await.expect("list_drafts").items;
    assert_eq!(own_drafts, vec![draft], "its drafts are untouched");
    assert_eq!(store.list_channels(org_id, &page).await.expect("list_channels").items, vec![channel], "its channels are untouched");
}

// ---- routing, defaults, template sync, rich content ----------------------------------------

fn channel_with(org_id: OrgId, phone_number_id: &str, provider: ChannelProvider, default: DefaultRule, n: i64) -> NewChannel {
    NewChannel { provider, default, ..new_channel(org_id, phone_number_id, at(n)) }
}

async fn defaults_of(ports: &MessagingPorts, org_id: OrgId) -> Vec<ChannelId> {
    let channels = ports.store.list_channels(org_id, &PageRequest { limit: 200, after: None }).await.expect("listing channels");
    channels.items.iter().filter(|c| c.is_default).map(|c| c.id).collect()
}

fn channel_journal(org_id: OrgId) -> impl Fn(&Channel) -> JournalEntry + Send + Sync {
    move |_: &Channel| journal(org_id, "channels.update", RunStatus::Succeeded)
}

/// The sandbox is the default until the first real number replaces it; later numbers are not
/// the default unless asked (`Make`); `Never` never is; one default remains throughout.
pub async fn connecting_follows_the_default_rules_and_one_default_remains(ports: &MessagingPorts) {
    let org_id = OrgId::generate();
    let entry = || journal(org_id, "channels.create", RunStatus::Succeeded);
    let sandbox =
        try_connect(ports, &channel_with(org_id, "sandbox", ChannelProvider::Sandbox, DefaultRule::IfNone, 0), &entry()).await.unwrap();
    assert!(sandbox.is_default);
    let kept = try_connect(ports, &channel_with(org_id, "700", ChannelProvider::Whatsapp, DefaultRule::Never, 1), &entry()).await.unwrap();
    assert!(!kept.is_default, "`is_default: false` keeps the sandbox the default");
    assert_eq!(defaults_of(ports, org_id).await, [sandbox.id]);
    let first = try_connect(ports, &channel_with(org_id, "701", ChannelProvider::Whatsapp, DefaultRule::IfNoneOrSandbox, 2), &entry())
        .await
        .unwrap();
    assert!(first.is_default, "the first real number without a choice replaces the sandbox");
    let second = try_connect(ports, &channel_with(org_id, "702", ChannelProvider::Whatsapp, DefaultRule::IfNoneOrSandbox, 3), &entry())
        .await
        .unwrap();
    assert!(!second.is_default, "a later number does not take it from a real one");
    assert_eq!(defaults_of(ports, org_id).await, [first.id]);
    let made = try_connect(ports, &channel_with(org_id, "703", ChannelProvider::Whatsapp, DefaultRule::Make, 4), &entry()).await.unwrap();
    assert!(made.is_default);
    assert_eq!(defaults_of(ports, org_id).await, [made.id], "exactly one default per organization");
}

/// `set_default_channel` moves the default; a disconnected channel cannot take it; the
/// default's disconnection hands it to the newest connected channel; routing and the default
/// lookup never return a disconnected channel.
pub async fn the_default_moves_and_a_disconnected_channel_hands_it_on(ports: &MessagingPorts) {
    let org_id = OrgId::generate();
    let a = connect(ports, org_id, "801", at(0)).await;
    let b = connect(ports, org_id, "802", at(1)).await;
    let c = connect(ports, org_id, "803", at(2)).await;
    assert_eq!(defaults_of(ports, org_id).await, [a.id]);
    let moved = ports.store.set_default_channel(org_id, b.id, &channel_journal(org_id)).await.expect("moving the default");
    assert!(moved.is_default);
    assert_eq!(defaults_of(ports, org_id).await, [b.id]);
    let gone = ports.store.disconnect_channel(org_id, b.id, at(10), &channel_journal(org_id)).await.expect("disconnecting");
    assert_eq!((gone.disconnected_at, gone.is_default), (Some(at(10)), false));
    assert_eq!(defaults_of(ports, org_id).await, [c.id], "the newest connected channel becomes the default");
    assert_eq!(ports.store.default_channel(org_id).await.unwrap().map(|d| d.id), Some(c.id));
    let refused = ports.store.set_default_channel(org_id, b.id, &channel_journal(org_id)).await;
    assert!(matches!(refused, Err(ConversationError::Conflict(_))), "{refused:?}");
    assert_eq!(ports.store.channel_by_phone_number_id(org_id, "802").await.unwrap(), None, "a disconnected number routes nowhere");
    assert_eq!(ports.store.channel_by_phone_number_id(org_id, "803").await.unwrap().map(|x| x.id), Some(c.id));
    assert_eq!(ports.store.channel_by_phone_number_id(OrgId::generate(), "803").await.unwrap(), None, "never another organization's");
    let again = ports.store.disconnect_channel(org_id, b.id, at(20), &channel_journal(org_id)).await.expect("disconnecting again");
    assert_eq!(again.disconnected_at, Some(at(10)), "disconnecting twice changes nothing");
    let other = ports.store.set_default_channel(OrgId::generate(), c.id, &channel_journal(org_id)).await;
    assert!(matches!(other, Err(ConversationError::NotFound)));
}

/// A customer who wrote on two numbers is routed to the one they wrote on last; a number
/// they never wrote on ranks below; a disconnected number is skipped.
pub async fn the_latest_conversation_is_where_the_customer_last_wrote(ports: &MessagingPorts) {
    let org_id = OrgId::generate();
    let a = connect(ports, org_id, "901", at(0)).await;
    let b = connect(ports, org_id, "902", at(0)).await;
    let customer = phone(90);
    assert!(ports.store.latest_conversation(org_id, &customer).await.unwrap().is_none());
    let send = text_send(org_id, b.id, &customer, "proactive", at(1));
    enqueue(ports, &send).await;
    let on_a = record(ports, &inbound(org_id, a.id, &customer, Some(wamid("L1")), "hi on a", at(5))).await;
    let latest = ports.store.latest_conversation(org_id, &customer).await.unwrap().expect("a conversation");
    assert_eq!(latest.id, on_a.conversation.id, "where they wrote beats where we wrote");
    let on_b = record(ports, &inbound(org_id, b.id, &customer, Some(wamid("L2")), "hi on b", at(9))).await;
    assert_eq!(ports.store.latest_conversation(org_id, &customer).await.unwrap().map(|c| c.id), Some(on_b.conversation.id));
    ports.store.disconnect_channel(org_id, b.id, at(10), &channel_journal(org_id)).await.unwrap();
    assert_eq!(ports.store.latest_conversation(org_id, &customer).await.unwrap().map(|c| c.id), Some(on_a.conversation.id));
    assert!(ports.store.latest_conversation(OrgId::generate(), &customer).await.unwrap().is_none());
}

/// A cipher for use cases that never open a secret here.
#[derive(Debug)]
struct Unused;

impl atlas_conversations::SecretCipher for Unused {
    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        plaintext.to_vec()
    }

    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, atlas_conversations::SecretsUnreadable> {
        Ok(sealed.to_vec())
    }
}

/// A store's one-statement send context reads what the one-by-one reads of `Messaging` read,
/// for every kind of target (a conversation, a number on a named channel, a number routed by
/// its latest conversation or to the default), with a template reference by name, by id, an
/// unknown one or none, in an organization with a disconnected number and in one with no
/// channel at all.
pub async fn a_send_context_reads_what_the_reads_one_by_one_read(ports: &MessagingPorts, contexts: &dyn SendContexts) {
    let reference = atlas_conversations::Messaging::new(ports.store.clone(), Arc::new(Unused), Arc::new(atlas_kernel::SystemClock));
    let org_id = OrgId::generate();
    let a = connect(ports, org_id, "951", at(0)).await;
    let b = connect(ports, org_id, "952", at(1)).await;
    let c = connect(ports, org_id, "953", at(2)).await;
    let (wrote_twice, wrote_on_c, never) = (phone(95), phone(96), phone(97));
    let on_a = record(ports, &inbound(org_id, a.id, &wrote_twice, Some(wamid("C1")), "hi on a", at(5))).await;
    record(ports, &inbound(org_id, b.id, &wrote_twice, Some(wamid("C2")), "hi on b", at(6))).await;
    let on_c = record(ports, &inbound(org_id, c.id, &wrote_on_c, Some(wamid("C3")), "hi on c", at(7))).await;
    ports.store.disconnect_channel(org_id, c.id, at(8), &channel_journal(org_id)).await.expect("disconnecting");
    let hello = template(org_id, "hello", "en_US", at(3));
    register(ports, &hello).await;
    register(ports, &template(org_id, "hello", "es_ES", at(4))).await;
    let foreign = OrgId::generate();
    let foreign_conversation = {
        let channel = connect(ports, foreign, "954", at(0)).await;
        record(ports, &inbound(foreign, channel.id, &wrote_twice, Some(wamid("C4")), "elsewhere", at(5))).await.conversation.id
    };

    let mut lookups = vec![
        SendLookup::Conversation(on_a.conversation.id),
        SendLookup::Conversation(on_c.conversation.id),
        SendLookup::Conversation(foreign_conversation),
        SendLookup::Conversation(ConversationId::generate()),
    ];
    for number in [&wrote_twice, &wrote_on_c, &never] {
        for channel_id in [None, Some(a.id), Some(b.id), Some(c.id), Some(ChannelId::generate())] {
            lookups.push(SendLookup::Phone { phone_number: number.clone(), channel_id });
        }
    }
    let hello_id = hello.id.to_string();
    let references = [None, Some("hello"), Some(hello_id.as_str()), Some("missing")];
    let mut compared = 0;
    for org in [org_id, OrgId::generate()] {
        for lookup in &lookups {
            for template in references {
                let read = contexts.send_context(org, lookup, template).await.expect("send_context");
                let expected = reference.read_send_context(org, lookup, template).await.expect("the reads one by one");
                assert_eq!(read, expected, "{lookup:?} naming {template:?}");
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 2 * 19 * 4);
    // The cases mean something: a context with a conversation and two templates was read.
    let full =
        contexts.send_context(org_id, &SendLookup::Phone { phone_number: wrote_twice, channel_id: None }, Some("hello")).await.unwrap();
    assert_eq!((full.conversation.map(|c| c.channel_id), full.channel, full.templates.len()), (Some(b.id), None, 2));
}

fn synced(org_id: OrgId, channel_id: ChannelId, name: &str, status: TemplateStatus) -> Template {
    Template {
        status,
        channel_id: Some(channel_id),
        components: Some(serde_json::json!([{"type": "BODY", "text": "Hi"}])),
        ..template(org_id, name, "en_US", at(0))
    }
}

/// A sync upserts by (name, language), keeps ids, and marks `deleted` only the templates of
/// its own channel that the account no longer lists; registered and other channels' templates
/// stay.
pub async fn a_template_sync_upserts_and_marks_only_its_channels_missing_templates_deleted(ports: &MessagingPorts) {
    let org_id = OrgId::generate();
    let sandbox_id = ChannelId::generate();
    let sandbox = NewChannel {
        id: sandbox_id,
        templates: vec![Template::hello_world(TemplateId::generate(), org_id, sandbox_id, at(0))],
        ..channel_with(org_id, "sandbox", ChannelProvider::Sandbox, DefaultRule::IfNone, 0)
    };
    try_connect(ports, &sandbox, &journal(org_id, "channels.create", RunStatus::Succeeded)).await.unwrap();
    let real = connect(ports, org_id, "1001", at(1)).await;
    let manual = template(org_id, "manual", "en_US", at(1));
    register(ports, &manual).await;
    let sync = |list: Vec<Template>| {
        let ports = ports.clone();
        async move {
            ports
                .store
                .sync_templates(org_id, real.id, &list, &|_: &atlas_conversations::TemplatesSynced| {
                    journal(org_id, "templates.sync", RunStatus::Succeeded)
                })
                .await
                .expect("syncing")
        }
    };
    let first =
        sync(vec![synced(org_id, real.id, "alpha", TemplateStatus::Approved), synced(org_id, real.id, "beta", TemplateStatus::Pending)])
            .await;
    assert_eq!((first.upserted, first.deleted), (2, 0));
    let alpha_id = ports.store.find_templates(org_id, "alpha").await.unwrap()[0].id;
    let second = sync(vec![synced(org_id, real.id, "alpha", TemplateStatus::Paused)]).await;
    assert_eq!((second.upserted, second.deleted), (1, 1));
    let alpha = ports.store.find_templates(org_id, "alpha").await.unwrap();
    assert_eq!((alpha[0].id, alpha[0].status), (alpha_id, TemplateStatus::Paused), "updated in place");
    assert_eq!(alpha[0].components, Some(serde_json::json!([{"type": "BODY", "text": "Hi"}])));
    assert_eq!(ports.store.find_templates(org_id, "beta").await.unwrap()[0].status, TemplateStatus::Deleted);
    assert_eq!(ports.store.find_templates(org_id, "manual").await.unwrap()[0].status, TemplateStatus::Approved, "registered ones stay");
    let hello = ports.store.find_templates(org_id, "hello_world").await.unwrap();
    assert_eq!(
        (hello.len(), hello[0].status, hello[0].channel_id),
        (1, TemplateStatus::Approved, Some(sandbox_id)),
        "the sandbox came with hello_world"
    );
}

/// An inbound message keeps its content; a read receipt is queued once per message, claimed
/// like a send, and `acknowledge` finishes its run without touching the message.
pub async fn rich_content_round_trips_and_a_read_receipt_is_queued_once(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    let customer = phone(95);
    let content = atlas_conversations::MessageContent::Location(atlas_conversations::Location {
        latitude: 38.7,
        longitude: -9.1,
        name: Some("Office".into()),
        address: None,
        url: None,
    });
    let pid = wamid("R1");
    let message = NewInbound {
        kind: MessageKind::Location,
        content: Some(content.clone()),
        ..inbound(org_id, channel.id, &customer, Some(pid.clone()), "Office", at(1))
    };
    let recorded = record(ports, &message).await;
    let stored = message_in(ports, org_id, recorded.conversation.id, recorded.message.id).await;
    assert_eq!((stored.kind, stored.content.clone()), (MessageKind::Location, Some(content)));
    let latest = ports.store.latest_inbound(org_id, recorded.conversation.id).await.unwrap().expect("the inbound message");
    assert_eq!(latest.id, recorded.message.id);

    let receipt = NewOutbound {
        message_id: recorded.message.id,
        content: OutboundContent::Read { provider_message_id: pid.clone() },
        ..text_send(org_id, channel.id, &customer, "", at(2))
    };
    let entry = journal(org_id, "conversations.read", RunStatus::Pending);
    let first = ports
        .store
        .enqueue_read(&receipt, recorded.conversation.id, &|_: &atlas_conversations::ReadQueued| entry.clone())
        .await
        .expect("queueing the receipt");
    assert!(first.queued);
    let again_entry = journal(org_id, "conversations.read", RunStatus::Succeeded);
    let again = ports
        .store
        .enqueue_read(
            &NewOutbound { outbox_id: OutboxId::generate(), ..receipt.clone() },
            recorded.conversation.id,
            &|_: &atlas_conversations::ReadQueued| again_entry.clone(),
        )
        .await
        .expect("queueing it again");
    assert_eq!((again.queued, again.outbox_id), (false, first.outbox_id), "one receipt per message");
    let item = claim_one(ports, org_id, at(3)).await;
    assert_eq!(item.content, OutboundContent::Read { provider_message_id: pid });
    let stale = ports.outbox.acknowledge(item.id, item.attempt + 1, None, at(4)).await;
    assert!(matches!(stale, Err(ConversationError::Conflict(_))), "an attempt that does not hold the lease cannot finish it: {stale:?}");
    ports.outbox.acknowledge(item.id, item.attempt, None, at(4)).await.expect("acknowledging");
    assert_eq!(run(ports, org_id, entry.run.id).await.unwrap().status, RunStatus::Succeeded);
    let untouched = message_in(ports, org_id, recorded.conversation.id, recorded.message.id).await;
    assert_eq!((untouched.delivery_state, untouched.provider_message_id.clone()), (None, recorded.message.provider_message_id.clone()));
    assert!(matches!(ports.outbox.acknowledge(item.id, item.attempt, None, at(5)).await, Err(ConversationError::Conflict(_))));
}

/// Retention: `purge_finished` removes the rows that finished strictly before the cutoff
/// (a completion repeated afterwards no longer finds the row) and never a row still queued or
/// leased, whatever its age; `purge_pending_statuses` removes the statuses that arrived before
/// the cutoff (their late send then completes without them) and keeps the younger ones.
pub async fn retention_removes_finished_rows_and_stale_pending_statuses_only(ports: &MessagingPorts) {
    let (org_id, channel) = organization_with_channel(ports).await;
    enqueue(ports, &text_send(org_id, channel.id, &phone(87), "old", at(0))).await;
    let old = claim_one(ports, org_id, at(0)).await;
    let old_pid = wamid("old");
    ports.outbox.complete(old.id, old.attempt, &old_pid, at(10)).await.expect("complete");
    enqueue(ports, &text_send(org_id, channel.id, &phone(88), "recent", at(0))).await;
    let recent = claim_one(ports, org_id, at(0)).await;
    let recent_pid = wamid("recent");
    ports.outbox.complete(recent.id, recent.attempt, &recent_pid, at(1000)).await.expect("complete");
    enqueue(ports, &text_send(org_id, channel.id, &phone(89), "leased", at(0))).await;
    let leased = claim_one(ports, org_id, at(0)).await;
    enqueue(ports, &text_send(org_id, channel.id, &phone(90), "queued", at(0))).await;

    ports.outbox.purge_finished(at(10), 1000).await.expect("purging at the first finish");
    ports.outbox.complete(old.id, old.attempt, &old_pid, at(11)).await.expect("a row finished exactly at the cutoff stays");
    let removed = ports.outbox.purge_finished(at(500), 1000).await.expect("purging");
    assert!(removed >= 1, "the old finished row is removed");
    let gone = ports.outbox.complete(old.id, old.attempt, &old_pid, at(501)).await;
    assert!(matches!(gone, Err(ConversationError::NotFound)), "a row finished before the cutoff is gone: {gone:?}");
    ports.outbox.complete(recent.id, recent.attempt, &recent_pid, at(1001)).await.expect("a row finished after the cutoff stays");
    let queued = claim_one(ports, org_id, at(30)).await;
    assert_eq!(queued.attempt, 1, "a queued row stays, whatever its age");
    ports.outbox.complete(queued.id, queued.attempt, &wamid("queued"), at(31)).await.expect("complete");
    let message = ports.outbox.complete(leased.id, leased.attempt, &wamid("leased"), at(601)).await.expect("a leased row stays");
    assert_eq!(message.delivery_state, Some(DeliveryState::Sent));

    // Pending statuses: the store stamps their arrival, so the cutoffs bracket the arrival.
    let stale_pid = wamid("stale-status");
    let arrived_after = OffsetDateTime::now_utc() - Duration::seconds(1);
    let delivered = StatusEvent::new(DeliveryState::Delivered, at(700));
    assert_eq!(apply(ports, org_id, &stale_pid, &delivered).await, StatusApplied::Pending);
    let arrived_before = OffsetDateTime::now_utc() + Duration::seconds(1);
    ports.outbox.purge_pending_statuses(arrived_after, 1000).await.expect("purging statuses that arrived earlier");
    let young_pid = wamid("young-status");
    assert_eq!(apply(ports, org_id, &young_pid, &delivered).await, StatusApplied::Pending);
    enqueue(ports, &text_send(org_id, channel.id, &phone(91), "late send", at(0))).await;
    let young_send = claim_one(ports, org_id, at(700)).await;
    let message = ports.outbox.complete(young_send.id, young_send.attempt, &young_pid, at(701)).await.expect("complete");
    assert_eq!(message.delivery_state, Some(DeliveryState::Delivered), "a status younger than the cutoff was kept and applied");

    let removed = ports.outbox.purge_pending_statuses(arrived_before, 1000).await.expect("purging");
    assert!(removed >= 1, "the stale pending status is removed");
    enqueue(ports, &text_send(org_id, channel.id, &phone(92), "very late send", at(0))).await;
    let late = claim_one(ports, org_id, at(800)).await;
    let message = ports.outbox.complete(late.id, late.attempt, &stale_pid, at(801)).await.expect("complete");
    assert_eq!(message.delivery_state, Some(DeliveryState::Sent), "a status older than the cutoff was removed, not applied");
}
