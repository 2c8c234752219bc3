//! The webhook suite of `atlas-testkit` (`WebhookStore` and `DeliveryQueue`), whole and check by
//! check, and the SQL store's own webhook checks (secrets sealed at rest, the outbox rows a
//! journal writes, atomicity with the journal, the migration), against SQLite (a fresh file per
//! test) and PostgreSQL (a fresh schema per test; skipped loudly when the server is unreachable,
//! failed when `ATLAS_REQUIRE_SERVICES=1`).
//!
//! The whole suite runs on a store that seals secrets (as the server's always does); the checks
//! one by one on a store without a cipher.

use atlas_conversations::{SecretCipher, SecretsUnreadable};
use atlas_kernel::OrgId;
use atlas_migrations::{Migrator, MigratorTrait};
use atlas_runs::RunStore;
use atlas_store_sql::entity::{webhook_deliveries, webhook_endpoints, webhook_events};
use atlas_store_sql::SqlStore;
use atlas_testkit::services::{fresh_postgres_database, fresh_sqlite_url};
use atlas_testkit::webhooks::{event, journal, new_endpoint, secret, WebhookPorts};
use atlas_webhooks::{DeliveryQueue, DisabledReason, EndpointPatch, EndpointState, WebhookStore};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// A migrated store on a fresh SQLite file.
async fn sqlite() -> Option<SqlStore> {
    let store = SqlStore::connect(&fresh_sqlite_url()).await.expect("opening a fresh SQLite file");
    store.migrate().await.expect("migrating SQLite");
    Some(store)
}

/// A migrated store on a fresh PostgreSQL schema, or `None` when the server is unreachable.
async fn postgres() -> Option<SqlStore> {
    let url = fresh_postgres_database().await?;
    let store = SqlStore::connect(&url).await.expect("connecting to the fresh PostgreSQL schema");
    store.migrate().await.expect("migrating PostgreSQL");
    Some(store)
}

/// A stand-in for the server's AEAD: a tag, then the bytes XORed with a key byte. Opening
/// checks the tag, so bytes it did not seal (or sealed under another key) are refused.
#[derive(Debug)]
struct TestCipher {
    key: u8,
}

const TAG: &[u8] = b"sealed:";

impl SecretCipher for TestCipher {
    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut sealed = TAG.to_vec();
        sealed.push(self.key);
        sealed.extend(plaintext.iter().map(|b| b ^ self.key));
        sealed
    }

    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretsUnreadable> {
        match sealed.strip_prefix(TAG) {
            Some([key, body @ ..]) if *key == self.key => Ok(body.iter().map(|b| b ^ self.key).collect()),
            _ => Err(SecretsUnreadable),
        }
    }
}

fn sealing(store: SqlStore) -> SqlStore {
    store.with_secret_cipher(Arc::new(TestCipher { key: 0x5a }))
}

/// The three webhook ports, all backed by `store`.
fn ports(store: SqlStore) -> WebhookPorts {
    WebhookPorts { store: Arc::new(store.clone()), queue: Arc::new(store.clone()), runs: Arc::new(store) }
}

fn t0() -> OffsetDateTime {
    time::macros::datetime!(2026-04-07 09:00:00.123456 UTC)
}

async fn endpoint_row(store: &SqlStore, id: atlas_webhooks::EndpointId) -> webhook_endpoints::Model {
    webhook_endpoints::Entity::find_by_id(id.as_uuid())
        .one(store.connection())
        .await
        .expect("reading the endpoint row")
        .expect("the endpoint row exists")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// With a cipher, an endpoint's secrets (current and retiring) are stored sealed: neither the
/// `whsec_` text nor its base64 body appears in the row, the row opens with the cipher, and a
/// store with another key (or none) cannot read the endpoint, nor hand out its deliveries (which
/// come back after their lease). Without a cipher (tests only) they are stored as JSON in the
/// clear.
async fn secrets_are_sealed_at_rest_by_the_cipher(store: SqlStore) {
    let sealed_store = sealing(store.clone());
    let org_id = OrgId::generate();
    let endpoint = new_endpoint(org_id, &["incident.*"], t0());
    sealed_store.create_endpoint(&endpoint, &journal(org_id, "webhooks.create", &[])).await.expect("create_endpoint");
    let rotated = endpoint.rotated(secret(2), t0());
    sealed_store.rotate_secret(&rotated, endpoint.version, &journal(org_id, "webhooks.rotate", &[])).await.expect("rotate_secret");
    let row = endpoint_row(&store, endpoint.id).await;
    for s in [secret(1), secret(2)] {
        let text = s.expose();
        let body = text.trim_start_matches("whsec_");
        assert!(!contains(&row.sealed_secrets, text.as_bytes()), "a secret is not stored in the clear");
        assert!(!contains(&row.sealed_secrets, body.as_bytes()), "not even its base64 body");
    }
    assert!(!contains(&row.sealed_secrets, b"whsec_"), "no secret at all is stored in the clear");
    let opened = TestCipher { key: 0x5a }.open(&row.sealed_secrets).expect("the row opens with the cipher");
    assert!(contains(&opened, secret(2).expose().as_bytes()), "and holds the secret");
    assert_eq!(
        sealed_store.get_endpoint(org_id, endpoint.id).await.expect("get_endpoint").map(|e| e.secrets),
        Some(rotated.secrets.clone()),
        "the store reads the secrets back"
    );
    let other_key = store.clone().with_secret_cipher(Arc::new(TestCipher { key: 0x33 }));
    assert!(other_key.get_endpoint(org_id, endpoint.id).await.is_err(), "another key cannot read them");
    assert!(store.get_endpoint(org_id, endpoint.id).await.is_err(), "nor can a store without a cipher");

    RunStore::record(&store, &journal(org_id, "incidents.update", &[event(org_id, "incident.created", "INC-1", 1)])).await.expect("event");
    store.fan_out(t0(), 10).await.expect("fan_out");
    let skipped = DeliveryQueue::claim(&other_key, t0(), 10, Duration::seconds(60), 100).await.expect("unreadable secrets fail no claim");
    assert_eq!(skipped, Vec::new(), "a delivery whose secrets cannot be opened is not handed out");
    let later = DeliveryQueue::claim(&sealed_store, t0() + Duration::seconds(60), 10, Duration::seconds(60), 100).await.expect("claim");
    assert_eq!(later.len(), 1, "it comes back after its lease");
    assert_eq!((later[0].attempt, &later[0].secrets), (2, &rotated.secrets), "with its secrets, to a store that can open them");

    let clear = new_endpoint(org_id, &["incident.*"], t0());
    store.create_endpoint(&clear, &journal(org_id, "webhooks.create", &[])).await.expect("create_endpoint");
    let row = endpoint_row(&store, clear.id).await;
    assert!(contains(&row.sealed_secrets, secret(1).expose().as_bytes()), "without a cipher the secret is stored as is");
}

/// A journal entry's events become rows of `webhook_events` in the run's organization, payload
/// bytes as built, undispatched; an entry without events writes none.
async fn a_journal_writes_its_events_into_the_outbox(store: SqlStore) {
    let org_id = OrgId::generate();
    let events = [event(org_id, "incident.created", "INC-00000001", 1), event(org_id, "incident.updated", "INC-00000001", 2)];
    RunStore::record(&store, &journal(org_id, "incidents.update", &events)).await.expect("recording the journal");
    RunStore::record(&store, &journal(org_id, "incidents.read", &[])).await.expect("recording an entry without events");
    let rows = webhook_events::Entity::find()
        .filter(webhook_events::Column::OrgId.eq(org_id.as_uuid()))
        .order_by_asc(webhook_events::Column::Id)
        .all(store.connection())
        .await
        .expect("reading the outbox");
    assert_eq!(rows.len(), 2, "one row per event: {rows:?}");
    for (row, event) in rows.iter().zip(&events) {
        assert_eq!(row.id, event.id.as_uuid());
        assert_eq!(
            (row.event_type.as_str(), row.resource_id.as_deref(), row.version),
            (event.event_type.as_str(), Some("INC-00000001"), event.version)
        );
        assert_eq!(row.payload, event.payload(), "the payload is stored as built");
        assert_eq!(row.fanned_out_at_us, None, "not yet fanned out");
    }
}

/// An endpoint whose journal entry cannot be written (its run id is taken) is not stored, and a
/// disabling patch whose journal fails leaves the endpoint enabled and its deliveries pending.
async fn an_endpoint_change_whose_journal_fails_changes_nothing(store: SqlStore) {
    let org_id = OrgId::generate();
    let taken = journal(org_id, "webhooks.create", &[]);
    RunStore::record(&store, &taken).await.expect("recording the run first");
    let doomed = new_endpoint(org_id, &["incident.*"], t0());
    assert!(store.create_endpoint(&doomed, &taken).await.is_err(), "a creation whose run id is taken fails");
    assert_eq!(store.get_endpoint(org_id, doomed.id).await.expect("get_endpoint"), None, "and stores nothing");

    let endpoint = new_endpoint(org_id, &["incident.*"], t0());
    store.create_endpoint(&endpoint, &journal(org_id, "webhooks.create", &[])).await.expect("create_endpoint");
    RunStore::record(&store, &journal(org_id, "incidents.update", &[event(org_id, "incident.created", "INC-1", 1)])).await.expect("event");
    store.fan_out(t0(), 10).await.expect("fan_out");
    let off = endpoint.patched(&EndpointPatch { enabled: Some(false), ..EndpointPatch::default() }, t0());
    assert!(store.update_endpoint(&off, endpoint.version, &taken).await.is_err(), "a patch whose run id is taken fails");
    assert_eq!(store.get_endpoint(org_id, endpoint.id).await.expect("get_endpoint").map(|e| e.state), Some(EndpointState::Enabled));
    let pending = webhook_deliveries::Entity::find()
        .filter(webhook_deliveries::Column::EndpointId.eq(endpoint.id.as_uuid()))
        .all(store.connection())
        .await
        .expect("reading the deliveries");
    assert_eq!(pending.iter().map(|d| d.status.as_str()).collect::<Vec<_>>(), vec!["pending"], "the delivery is still pending");
    assert!(store.disable_endpoint(endpoint.id, DisabledReason::Gone, t0()).await.expect("disable_endpoint"), "it was still enabled");
}

/// The webhooks migration rolls back (dropping its tables) and applies again.
async fn the_webhooks_migration_rolls_back_and_reapplies(store: SqlStore) {
    // Webhooks is the fifth migration: roll it back with everything after it.
    let steps = u32::try_from(Migrator::migrations().len() - 4).expect("a handful of migrations");
    Migrator::down(store.connection(), Some(steps)).await.expect("rolling the webhooks migration back");
    let org_id = OrgId::generate();
    assert!(store.list_endpoints(org_id, &Default::default()).await.is_err(), "without the migration the webhook tables are gone");
    store.migrate().await.expect("migrating up again");
    assert_eq!(store.list_endpoints(org_id, &Default::default()).await.expect("list_endpoints").items, Vec::new(), "the tables work again");
}

/// One test per suite check, each on a fresh database of `$backend`.
macro_rules! suite_checks {
    ($backend:ident: $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                if let Some(store) = super::$backend().await {
                    atlas_testkit::webhooks::$check(&ports(store)).await;
                }
            }
        )+
    };
}

macro_rules! backend_tests {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            macro_rules! store {
                () => {
                    match super::$backend().await {
                        Some(store) => store,
                        None => return,
                    }
                };
            }

            /// The whole suite on one database, every check sharing it, secrets sealed.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn webhook_suite() {
                atlas_testkit::webhooks::suite(&ports(sealing(store!()))).await;
            }

            // Each check on a fresh database.
            suite_checks!($backend:
                endpoints_read_back_as_stored_and_list_newest_first_with_cursors,
                endpoint_writes_are_compare_and_swap_on_version,
                secrets_round_trip_through_rotation_and_reach_the_worker,
                deleting_an_endpoint_deletes_its_deliveries_and_attempts_but_not_the_events,
                another_organization_sees_no_endpoint_and_no_delivery,
                a_journalled_event_is_fanned_out_only_to_enabled_endpoints_whose_filters_match,
                concurrent_fan_outs_create_each_delivery_exactly_once,
                each_due_delivery_is_claimed_by_exactly_one_of_several_concurrent_claimers,
                a_claimed_delivery_is_handed_out_again_only_after_its_lease,
                record_attempt_retries_succeeds_and_gives_up_and_tracks_the_endpoint_health,
                a_stale_worker_is_refused_and_changes_nothing,
                attempts_recorded_together_are_each_recorded_as_alone,
                deliveries_list_newest_first_with_filters_cursors_and_their_attempts,
                a_replay_puts_a_finished_delivery_on_a_new_schedule_under_the_same_id,
                disabling_an_endpoint_fails_its_pending_deliveries_and_stops_its_fan_out,
                deliveries_of_one_endpoint_are_claimed_in_event_order,
                a_test_delivery_reaches_its_endpoint_alone_and_is_never_fanned_out,
                claims_cap_each_endpoint_and_let_every_organization_take_a_turn,
                retention_removes_finished_deliveries_with_their_attempts_and_unreferenced_events,
            );

            // The SQL store's own webhook checks.

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_secrets_are_sealed_at_rest_by_the_cipher() {
                super::secrets_are_sealed_at_rest_by_the_cipher(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_a_journal_writes_its_events_into_the_outbox() {
                super::a_journal_writes_its_events_into_the_outbox(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_an_endpoint_change_whose_journal_fails_changes_nothing() {
                super::an_endpoint_change_whose_journal_fails_changes_nothing(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_the_webhooks_migration_rolls_back_and_reapplies() {
                super::the_webhooks_migration_rolls_back_and_reapplies(store!()).await;
            }
        }
    };
}

backend_tests!(sqlite);
backend_tests!(postgres);
