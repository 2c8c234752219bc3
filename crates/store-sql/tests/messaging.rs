//! The messaging suite of `atlas-testkit` (`ConversationStore` and `Outbox`), whole and check by
//! check, and the SQL store's own messaging checks (atomicity, the migration, and the webhook
//! events the adapter writes beside its changes), against SQLite (a fresh file per test) and
//! PostgreSQL (a fresh database per test; skipped loudly when the server is unreachable, failed
//! when `ATLAS_REQUIRE_SERVICES=1`).

use atlas_conversations::{
    ChannelId, ChannelProvider, Completion, ConversationError, ConversationStore, DeliveryState, Enqueued, InboundRecorded, Message,
    MessageError, MessageId, MessageKind, NewChannel, NewInbound, NewOutbound, OutboundContent, Outbox, OutboxId, StatusApplied,
    StatusEvent,
};
use atlas_kernel::{OrgId, PhoneNumber};
use atlas_migrations::{Migrator, MigratorTrait};
use atlas_runs::{RunId, RunStatus, RunStore};
use atlas_store_sql::entity::webhook_events;
use atlas_store_sql::SqlStore;
use atlas_testkit::conversations::{journal, MessagingPorts};
use atlas_testkit::services::{fresh_postgres_database, fresh_sqlite_url};
use atlas_webhooks::{EventFilters, EventType, WebhookEndpoint, WebhookSecret, WebhookStore};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// A migrated store on a fresh SQLite file.
async fn sqlite() -> Option<SqlStore> {
    let store = SqlStore::connect(&fresh_sqlite_url()).await.expect("opening a fresh SQLite file");
    store.migrate().await.expect("migrating SQLite");
    Some(store)
}

/// A migrated store on a fresh PostgreSQL database, or `None` when the server is unreachable.
async fn postgres() -> Option<SqlStore> {
    let url = fresh_postgres_database().await?;
    let store = SqlStore::connect(&url).await.expect("connecting to the fresh PostgreSQL database");
    store.migrate().await.expect("migrating PostgreSQL");
    Some(store)
}

/// The three messaging ports, all backed by `store`.
fn ports(store: SqlStore) -> MessagingPorts {
    MessagingPorts { store: Arc::new(store.clone()), outbox: Arc::new(store.clone()), runs: Arc::new(store) }
}

fn t0() -> OffsetDateTime {
    time::macros::datetime!(2026-03-02 09:00:00.123456 UTC)
}

fn phone() -> PhoneNumber {
    PhoneNumber::parse("+14155550199").expect("a valid phone number")
}

/// A channel of a new organization.
async fn channel(store: &SqlStore) -> (OrgId, ChannelId) {
    let org_id = OrgId::generate();
    let channel = NewChannel {
        id: ChannelId::generate(),
        org_id,
        provider: ChannelProvider::Sandbox,
        name: "Sandbox".into(),
        phone_number_id: "sandbox-1".into(),
        display_phone_number: "+1 415 555 0100".into(),
        verify_token: String::new(),
        waba_id: None,
        default: atlas_conversations::DefaultRule::IfNone,
        created_at: t0(),
        templates: Vec::new(),
    };
    let entry = journal(org_id, "channels.create", RunStatus::Succeeded);
    store.create_channel(&channel, b"sealed", &|_: &atlas_conversations::Channel| entry.clone()).await.expect("create_channel");
    (org_id, channel.id)
}

/// The messaging migration rolls back (dropping its tables) and applies again.
async fn the_messaging_migration_rolls_back_and_reapplies(store: SqlStore) {
    // Messaging is the fourth migration: roll it back with everything after it.
    let steps = u32::try_from(Migrator::migrations().len() - 3).expect("a handful of migrations");
    Migrator::down(store.connection(), Some(steps)).await.expect("rolling the messaging migration back");
    let gone = store.default_channel(OrgId::generate()).await;
    assert!(gone.is_err(), "without the migration the messaging tables are gone");
    store.migrate().await.expect("migrating up again");
    let (org_id, _) = channel(&store).await;
    assert!(store.default_channel(org_id).await.expect("default_channel").is_some(), "the tables work again");
}

/// A send whose journal entry cannot be written (its run id is taken) stores nothing: no
/// customer, conversation, message or outbox row.
async fn a_send_whose_journal_fails_stores_nothing(store: SqlStore) {
    let (org_id, channel_id) = channel(&store).await;
    let entry = journal(org_id, "messages.send", RunStatus::Pending);
    RunStore::record(&store, &entry).await.expect("recording the run first");
    let send = NewOutbound {
        org_id,
        channel_id,
        to: phone(),
        message_id: MessageId::generate(),
        outbox_id: OutboxId::generate(),
        content: OutboundContent::Text { body: "doomed".into() },
        queued_at: t0(),
        deadline: t0() + Duration::days(1),
        known: None,
        approves: None,
    };
    let result = store.enqueue_outbound(&send, &|_: &Enqueued| entry.clone()).await;
    assert!(result.is_err(), "a send whose run id is taken fails: {result:?}");
    assert_eq!(store.find_conversation(org_id, channel_id, &phone()).await.expect("find_conversation"), None, "no conversation was stored");
    let claimed = store.claim(t0() + Duration::hours(1), 100, Duration::seconds(60), 100).await.expect("claim");
    assert!(claimed.iter().all(|item| item.org_id != org_id), "no outbox row was stored: {claimed:?}");
}

/// An inbound message whose journal entry cannot be written stores nothing.
async fn an_inbound_message_whose_journal_fails_stores_nothing(store: SqlStore) {
    let (org_id, channel_id) = channel(&store).await;
    let entry = journal(org_id, "events.create", RunStatus::Succeeded);
    RunStore::record(&store, &entry).await.expect("recording the run first");
    let inbound = NewInbound {
        org_id,
        channel_id,
        from: phone(),
        profile_name: Some("Ana".into()),
        message_id: MessageId::generate(),
        provider_message_id: Some("wamid.doomed".into()),
        kind: MessageKind::Text,
        text: Some("hola".into()),
        content: None,
        timestamp: t0(),
        received_at: t0(),
    };
    let result = store.record_inbound(&inbound, &|_: &InboundRecorded| Some(entry.clone())).await;
    assert!(result.is_err(), "an inbound message whose run id is taken fails: {result:?}");
    assert_eq!(store.message_by_provider_id(org_id, "wamid.doomed").await.expect("message_by_provider_id"), None, "no message was stored");
    assert_eq!(store.find_conversation(org_id, channel_id, &phone()).await.expect("find_conversation"), None, "no conversation was stored");
    let retried = store.record_inbound(&inbound, &|_: &InboundRecorded| None).await.expect("recording it again");
    assert!(!retried.duplicate, "the failed attempt left no message behind to be a duplicate of");
}

// ---- webhook events ------------------------------------------------------------------------

/// The organization's rows of the webhook outbox, in creation order.
async fn events_of(store: &SqlStore, org_id: OrgId) -> Vec<webhook_events::Model> {
    webhook_events::Entity::find()
        .filter(webhook_events::Column::OrgId.eq(org_id.as_uuid()))
        .order_by_asc(webhook_events::Column::Id)
        .all(store.connection())
        .await
        .expect("reading the webhook outbox")
}

/// An event row's payload, parsed.
fn payload(row: &webhook_events::Model) -> Value {
    serde_json::from_slice(&row.payload).expect("an event's payload is JSON")
}

/// Checks that `row` is the `agent.message_delivery` event of `message` in `state`: resource the
/// message, version the state's rank (in the row and in the payload), data the message as the API
/// shows it.
fn assert_delivery_event(row: &webhook_events::Model, message: &Message, state: DeliveryState) {
    assert_eq!(row.event_type, "agent.message_delivery", "{row:?}");
    assert_eq!(row.resource_id.as_deref(), Some(message.id.to_string().as_str()), "the event is about the message");
    assert_eq!(row.version, i64::from(state.rank()), "its version is the delivery state's rank");
    let body = payload(row);
    assert_eq!(body["type"], "agent.message_delivery");
    let mut expected = serde_json::to_value(message).expect("a message serializes");
    expected["version"] = i64::from(state.rank()).into();
    assert_eq!(body["data"], expected, "the data is the message as the API shows it, with its version");
    assert_eq!(body["data"]["delivery_state"], state.as_str());
    assert_eq!(row.fanned_out_at_us, None, "waiting for fan-out");
}

/// Checks that `row` is the `atlas.run.updated` event of run `run_id` finished as `status`.
fn assert_run_event(row: &webhook_events::Model, run_id: RunId, status: RunStatus) {
    assert_eq!(row.event_type, "atlas.run.updated", "{row:?}");
    assert_eq!(row.resource_id.as_deref(), Some(run_id.to_string().as_str()), "the event is about the run");
    assert_eq!(row.version, 2, "a finished run is at version 2 (1 was pending)");
    let body = payload(row);
    assert_eq!(body["type"], "atlas.run.updated");
    assert_eq!(body["data"]["id"], run_id.to_string());
    assert_eq!(body["data"]["status"], status.as_str());
    assert_eq!(body["data"]["version"], 2);
}

/// A queued send of a new organization (its run pending), claimed: the organization, the outbox
/// row, the message id and the run id.
async fn a_claimed_send(store: &SqlStore) -> (OrgId, OutboxId, MessageId, RunId) {
    let (org_id, channel_id) = channel(store).await;
    let entry = journal(org_id, "messages.send", RunStatus::Pending);
    let send = NewOutbound {
        org_id,
        channel_id,
        to: phone(),
        message_id: MessageId::generate(),
        outbox_id: OutboxId::generate(),
        content: OutboundContent::Text { body: "Your order shipped".into() },
        queued_at: t0(),
        deadline: t0() + Duration::days(1),
        known: None,
        approves: None,
    };
    store.enqueue_outbound(&send, &|_: &Enqueued| entry.clone()).await.expect("enqueue_outbound");
    let claimed = store.claim(t0(), 10, Duration::seconds(60), 100).await.expect("claim");
    assert_eq!(claimed.iter().map(|item| item.id).collect::<Vec<_>>(), vec![send.outbox_id], "the send is claimed");
    (org_id, send.outbox_id, send.message_id, entry.run.id)
}

/// `complete` writes, in its transaction, `agent.message_delivery` (the message sent, version 2)
/// and `atlas.run.updated` (the send's run succeeded); queueing and claiming write none, and a
/// repeated completion writes nothing more.
async fn complete_writes_the_message_delivery_and_run_events(store: SqlStore) {
    let (org_id, outbox_id, _, run_id) = a_claimed_send(&store).await;
    assert_eq!(events_of(&store, org_id).await, Vec::new(), "queueing and claiming a send write no event");
    let message = store.complete(outbox_id, 1, "wamid.sent", t0() + Duration::seconds(1)).await.expect("complete");
    let events = events_of(&store, org_id).await;
    assert_eq!(events.len(), 2, "one event for the message, one for the run: {events:?}");
    assert_delivery_event(&events[0], &message, DeliveryState::Sent);
    assert_run_event(&events[1], run_id, RunStatus::Succeeded);
    store.complete(outbox_id, 1, "wamid.sent", t0() + Duration::seconds(2)).await.expect("a repeated complete");
    assert_eq!(events_of(&store, org_id).await.len(), 2, "a repeated completion changes nothing, so writes nothing");
}

/// Completions recorded together write what each would have written alone: for every message,
/// in its own organization, `agent.message_delivery` (sent) then `atlas.run.updated`
/// (succeeded).
async fn completions_recorded_together_write_each_ones_events(store: SqlStore) {
    let sends = [a_claimed_send(&store).await, a_claimed_send(&store).await, a_claimed_send(&store).await];
    let completions: Vec<Completion> = sends
        .iter()
        .enumerate()
        .map(|(i, (_, outbox_id, _, _))| Completion {
            id: *outbox_id,
            attempt: 1,
            provider_message_id: format!("wamid.together.{i}"),
            at: t0() + Duration::seconds(1 + i64::try_from(i).expect("small")),
        })
        .collect();
    let results = store.complete_many(&completions).await;
    for ((org_id, _, message_id, run_id), result) in sends.iter().zip(results) {
        let message = result.expect("each completion is recorded");
        assert_eq!(message.id, *message_id);
        let events = events_of(&store, *org_id).await;
        assert_eq!(events.len(), 2, "one event for the message, one for the run: {events:?}");
        assert_delivery_event(&events[0], &message, DeliveryState::Sent);
        assert_run_event(&events[1], *run_id, RunStatus::Succeeded);
    }
}

/// `fail` writes `agent.message_delivery` (the message failed with its error, version 5) and
/// `atlas.run.updated` (the run failed); failing again is refused and writes nothing.
async fn fail_writes_the_message_delivery_and_run_events(store: SqlStore) {
    let (org_id, outbox_id, _, run_id) = a_claimed_send(&store).await;
    let error = MessageError::new("131047", "Re-engagement message");
    let message = store.fail(outbox_id, 1, &error, t0() + Duration::seconds(1)).await.expect("fail");
    let events = events_of(&store, org_id).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_delivery_event(&events[0], &message, DeliveryState::Failed);
    assert_eq!(payload(&events[0])["data"]["error"]["code"], "131047", "the failure's error rides along");
    assert_run_event(&events[1], run_id, RunStatus::Failed);
    assert_eq!(payload(&events[1])["data"]["error"]["code"], "131047");
    let again = store.fail(outbox_id, 1, &error, t0() + Duration::seconds(2)).await;
    assert!(matches!(again, Err(ConversationError::Conflict(_))), "{again:?}");
    assert_eq!(events_of(&store, org_id).await.len(), 2, "a refused failure writes no event");
}

/// `apply_status` writes `agent.message_delivery` exactly when it changes the message (version
/// the new state's rank); a repeated or stale status and a status kept pending write none; the
/// statuses a completion applies make one event, at their final state.
async fn apply_status_writes_an_event_only_when_it_changes_the_message(store: SqlStore) {
    let (org_id, outbox_id, _, _) = a_claimed_send(&store).await;
    store.complete(outbox_id, 1, "wamid.status", t0() + Duration::seconds(1)).await.expect("complete");
    let before = events_of(&store, org_id).await.len();
    let delivered = StatusEvent::new(DeliveryState::Delivered, t0() + Duration::seconds(5));
    let StatusApplied::Applied { message, changed: true } = store.apply_status(org_id, "wamid.status", &delivered).await.expect("apply")
    else {
        panic!("a delivered status changes a sent message");
    };
    let events = events_of(&store, org_id).await;
    assert_eq!(events.len(), before + 1, "one event for the change");
    assert_delivery_event(&events[before], &message, DeliveryState::Delivered);
    store.apply_status(org_id, "wamid.status", &delivered).await.expect("apply again");
    let stale = StatusEvent::new(DeliveryState::Sent, t0() + Duration::seconds(9));
    store.apply_status(org_id, "wamid.status", &stale).await.expect("a stale status");
    assert_eq!(events_of(&store, org_id).await.len(), before + 1, "statuses that change nothing write nothing");
    let unknown = store.apply_status(org_id, "wamid.unknown", &delivered).await.expect("a status of an unknown message");
    assert!(matches!(unknown, StatusApplied::Pending), "{unknown:?}");
    assert_eq!(events_of(&store, org_id).await.len(), before + 1, "a status kept pending writes nothing");

    // Statuses that arrive before their send completes: one event, at the final state.
    let (org_id, outbox_id, _, run_id) = a_claimed_send(&store).await;
    let read = StatusEvent::new(DeliveryState::Read, t0() + Duration::seconds(3));
    assert!(matches!(store.apply_status(org_id, "wamid.early", &read).await.expect("apply"), StatusApplied::Pending));
    assert_eq!(events_of(&store, org_id).await, Vec::new(), "a pending status writes nothing");
    let message = store.complete(outbox_id, 1, "wamid.early", t0() + Duration::seconds(1)).await.expect("complete");
    let events = events_of(&store, org_id).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_delivery_event(&events[0], &message, DeliveryState::Read);
    assert_run_event(&events[1], run_id, RunStatus::Succeeded);
}

/// A use case that fails writes no event: a send whose journal (carrying an event) cannot be
/// written, a completion or failure of an unknown row, a completion refused as a conflict.
async fn a_failed_use_case_writes_no_event(store: SqlStore) {
    let (org_id, channel_id) = channel(&store).await;
    let mut entry = journal(org_id, "messages.send", RunStatus::Pending);
    RunStore::record(&store, &entry).await.expect("recording the run first");
    let news = atlas_testkit::webhooks::event(org_id, "atlas.action.executed", "act_1", 1);
    entry.events.push(news.outbox());
    let send = NewOutbound {
        org_id,
        channel_id,
        to: phone(),
        message_id: MessageId::generate(),
        outbox_id: OutboxId::generate(),
        content: OutboundContent::Text { body: "doomed".into() },
        queued_at: t0(),
        deadline: t0() + Duration::days(1),
        known: None,
        approves: None,
    };
    assert!(store.enqueue_outbound(&send, &|_: &Enqueued| entry.clone()).await.is_err(), "the send fails");
    assert_eq!(events_of(&store, org_id).await, Vec::new(), "and its journal's event is not written");

    let missing = store.complete(OutboxId::generate(), 1, "wamid.x", t0()).await;
    assert!(matches!(missing, Err(ConversationError::NotFound)), "{missing:?}");
    let missing = store.fail(OutboxId::generate(), 1, &MessageError::new("1", "x"), t0()).await;
    assert!(matches!(missing, Err(ConversationError::NotFound)), "{missing:?}");
    let (org_id, outbox_id, _, _) = a_claimed_send(&store).await;
    store.complete(outbox_id, 1, "wamid.once", t0() + Duration::seconds(1)).await.expect("complete");
    let written = events_of(&store, org_id).await.len();
    let conflict = store.complete(outbox_id, 1, "wamid.other", t0() + Duration::seconds(2)).await;
    assert!(matches!(conflict, Err(ConversationError::Conflict(_))), "{conflict:?}");
    assert_eq!(events_of(&store, org_id).await.len(), written, "a refused completion writes no event");
}

/// The adapter's events are fanned out like any other: an endpoint subscribed to
/// `agent.message_delivery` gets the completion's event, with the payload as written.
async fn message_delivery_events_reach_subscribed_endpoints(store: SqlStore) {
    use atlas_webhooks::DeliveryQueue;
    let (org_id, outbox_id, _, _) = a_claimed_send(&store).await;
    let url = atlas_webhooks::validate_url("https://agent.example.com/callbacks").expect("a valid URL");
    let filters = EventFilters::parse(&["agent.message_delivery"]).expect("valid filters");
    let secret = WebhookSecret::from_entropy(&[7; 32]).expect("a secret");
    let endpoint = WebhookEndpoint::new(org_id, url, None, filters, secret, t0());
    store.create_endpoint(&endpoint, &journal(org_id, "webhooks.create", RunStatus::Succeeded)).await.expect("create_endpoint");
    let message = store.complete(outbox_id, 1, "wamid.hooked", t0() + Duration::seconds(1)).await.expect("complete");
    let report = store.fan_out(t0() + Duration::seconds(2), 10).await.expect("fan_out");
    assert_eq!((report.events, report.deliveries), (2, 1), "two events, one subscribed to");
    let items = DeliveryQueue::claim(&store, t0() + Duration::seconds(2), 10, Duration::seconds(60), 100).await.expect("claim");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!((items[0].endpoint_id, &items[0].event_type), (endpoint.id, &EventType::AGENT_MESSAGE_DELIVERY));
    let body: Value = serde_json::from_slice(&items[0].payload).expect("JSON");
    assert_eq!(body["data"]["id"], message.id.to_string(), "the delivery carries the message");
}

/// One test per suite check, each on a fresh database of `$backend`.
macro_rules! suite_checks {
    ($backend:ident: $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                if let Some(store) = super::$backend().await {
                    atlas_testkit::conversations::$check(&ports(store)).await;
                }
            }
        )+
    };
}

macro_rules! backend_tests {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            macro_rules! ports {
                () => {
                    match super::$backend().await {
                        Some(store) => ports(store),
                        None => return,
                    }
                };
            }

            macro_rules! store {
                () => {
                    match super::$backend().await {
                        Some(store) => store,
                        None => return,
                    }
                };
            }

            /// The whole suite on one database, every check sharing it.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn messaging_suite() {
                atlas_testkit::conversations::suite(&ports!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_send_context_reads_what_the_reads_one_by_one_read() {
                let store = store!();
                atlas_testkit::conversations::a_send_context_reads_what_the_reads_one_by_one_read(&ports(store.clone()), &store).await;
            }

            // Each check on a fresh database.
            suite_checks!($backend:
                the_first_channel_of_an_organization_is_its_default,
                concurrent_first_channels_elect_exactly_one_default,
                a_duplicate_phone_number_id_is_a_duplicate_channel,
                templates_are_found_by_name_and_by_id,
                a_duplicate_template_name_and_language_is_refused,
                an_inbound_message_creates_its_customer_and_conversation,
                a_repeated_provider_message_id_is_a_duplicate_that_changes_nothing,
                concurrent_inbound_messages_from_a_new_customer_make_one_customer_and_one_conversation,
                last_inbound_at_is_the_latest_message_timestamp_whatever_the_arrival_order,
                an_outbound_send_queues_its_message_and_outbox_row_with_its_run,
                racing_inbound_and_outbound_messages_share_one_conversation,
                out_of_order_statuses_end_at_the_highest_state,
                concurrent_statuses_for_one_message_lose_nothing,
                a_status_before_its_provider_id_is_pending_and_applied_by_complete,
                statuses_racing_the_completion_of_their_send_are_never_lost,
                a_batch_of_statuses_applies_as_one_by_one,
                the_next_due_instant_is_that_of_the_earliest_unfinished_row,
                each_due_row_is_claimed_by_exactly_one_of_several_concurrent_claimers,
                a_claimed_row_is_not_claimed_again_until_its_lease_ends,
                claims_cap_each_channel_and_let_every_organization_take_a_turn,
                a_claim_takes_up_to_its_limit_of_one_channel_within_the_cap,
                a_completion_or_failure_after_the_lease_was_taken_over_changes_nothing,
                retention_removes_finished_rows_and_stale_pending_statuses_only,
                a_retry_with_a_stale_attempt_is_a_conflict,
                complete_records_the_provider_id_and_a_repeated_complete_changes_nothing,
                completions_recorded_together_are_each_recorded_as_alone,
                fail_marks_the_message_failed_with_the_code_and_the_run_failed,
                conversations_and_messages_page_newest_first_with_cursors,
                setting_a_conversation_status_commits_with_its_run,
                drafts_are_stored_and_listed_newest_first,
                another_organization_sees_nothing,
            );

            // The SQL store's own messaging checks.

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_the_messaging_migration_rolls_back_and_reapplies() {
                super::the_messaging_migration_rolls_back_and_reapplies(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_a_send_whose_journal_fails_stores_nothing() {
                super::a_send_whose_journal_fails_stores_nothing(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_an_inbound_message_whose_journal_fails_stores_nothing() {
                super::an_inbound_message_whose_journal_fails_stores_nothing(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_complete_writes_the_message_delivery_and_run_events() {
                super::complete_writes_the_message_delivery_and_run_events(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_completions_recorded_together_write_each_ones_events() {
                super::completions_recorded_together_write_each_ones_events(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_fail_writes_the_message_delivery_and_run_events() {
                super::fail_writes_the_message_delivery_and_run_events(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_apply_status_writes_an_event_only_when_it_changes_the_message() {
                super::apply_status_writes_an_event_only_when_it_changes_the_message(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_a_failed_use_case_writes_no_event() {
                super::a_failed_use_case_writes_no_event(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_message_delivery_events_reach_subscribed_endpoints() {
                super::message_delivery_events_reach_subscribed_endpoints(store!()).await;
            }
        }
    };
}

backend_tests!(sqlite);
backend_tests!(postgres);
