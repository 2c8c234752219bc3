//! The messaging suite of `atlas-testkit` (`ConversationStore` and `Outbox`), whole and check by
//! check, and the SQL store's own messaging checks, against SQLite (a fresh file per test) and
//! PostgreSQL (a fresh database per test; skipped loudly when the server is unreachable, failed
//! when `ATLAS_REQUIRE_SERVICES=1`).

use atlas_conversations::{
    ChannelId, ChannelProvider, ConversationStore, Enqueued, InboundRecorded, MessageId, MessageKind, NewChannel, NewInbound, NewOutbound,
    OutboundContent, Outbox, OutboxId,
};
use atlas_kernel::{OrgId, PhoneNumber};
use atlas_migrations::{Migrator, MigratorTrait};
use atlas_runs::{RunStatus, RunStore};
use atlas_store_sql::SqlStore;
use atlas_testkit::conversations::{journal, MessagingPorts};
use atlas_testkit::services::{fresh_postgres_database, fresh_sqlite_url};
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
        created_at: t0(),
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
    };
    let result = store.enqueue_outbound(&send, &|_: &Enqueued| entry.clone()).await;
    assert!(result.is_err(), "a send whose run id is taken fails: {result:?}");
    assert_eq!(store.find_conversation(org_id, channel_id, &phone()).await.expect("find_conversation"), None, "no conversation was stored");
    let claimed = store.claim(t0() + Duration::hours(1), 100, Duration::seconds(60)).await.expect("claim");
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
                each_due_row_is_claimed_by_exactly_one_of_several_concurrent_claimers,
                a_claimed_row_is_not_claimed_again_until_its_lease_ends,
                a_retry_with_a_stale_attempt_is_a_conflict,
                complete_records_the_provider_id_and_a_repeated_complete_changes_nothing,
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
        }
    };
}

backend_tests!(sqlite);
backend_tests!(postgres);
