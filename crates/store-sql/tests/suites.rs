//! Every port suite of `atlas-testkit`, and the SQL store's own atomicity checks, against
//! SQLite (a fresh file per test) and PostgreSQL (a fresh database per test; skipped loudly
//! when the server is unreachable, failed when `ATLAS_REQUIRE_SERVICES=1`).

use atlas_accounts::{AccountError, AccountStore, RefreshFamilyId, RefreshToken, RotateOutcome};
use atlas_conversations::{SecretCipher, SecretsUnreadable};
use atlas_idempotency::{Claim, Decision, Fingerprint, IdempotencyKey, IdempotencyScope, IdempotencyStore, StoredResponse};
use atlas_kernel::OrgId;
use atlas_runs::{RunStatus, RunStore};
use atlas_store_sql::SqlStore;
use atlas_testkit::accounts::{create_organization, journal, now, sample_key};
use atlas_testkit::services::{fresh_postgres_database, fresh_sqlite_url};
use sea_orm::TransactionTrait;
use serde_json::json;
use std::sync::Arc;
use time::Duration;

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

fn scope(org_id: OrgId, key: &str) -> Claim {
    atlas_testkit::idempotency::claim_of(&IdempotencyScope {
        org_id,
        scope: "atlas.keys.write".into(),
        route: "POST /v1/atlas/keys".into(),
        key: IdempotencyKey::parse(key).expect("a valid key"),
    })
}

/// A stand-in AEAD for the store's checks: a marker and the bytes reversed (the server's real
/// cipher is XChaCha20-Poly1305, tested where it lives).
#[derive(Debug)]
struct ReversingCipher;

impl SecretCipher for ReversingCipher {
    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = b"sealed:".to_vec();
        out.extend(plaintext.iter().rev());
        out
    }
    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretsUnreadable> {
        sealed.strip_prefix(b"sealed:").map(|rest| rest.iter().rev().copied().collect()).ok_or(SecretsUnreadable)
    }
}

/// An answer that shows a secret is stored sealed by the store's cipher and replayed verbatim;
/// the record's row never holds the secret in the clear.
async fn an_answer_showing_a_secret_is_sealed_at_rest_and_replayed_verbatim(store: SqlStore) {
    use sea_orm::{ConnectionTrait, Statement};
    let store = store.with_secret_cipher(Arc::new(ReversingCipher));
    let (org, _) = create_organization(&store, "Sealer").await;
    let claim = scope(org.id, "mint-secret");
    let fp = Fingerprint::of("POST", "/v1/atlas/keys", &json!({"name": "ci"}));
    assert_eq!(store.begin(&claim, &fp, now()).await.expect("begin"), Decision::Execute);
    let secret = "atlas_sk_ThisIsTheSecretShownOnce0123456789";
    let response = StoredResponse {
        status: 201,
        body: format!(r#"{{"ok":true,"data":{{"key":"{secret}"}}}}"#).into_bytes(),
        location: None,
        etag: None,
        shows_secret: true,
    };
    let mut entry = journal(org.id, "keys.create");
    entry.idempotency = Some((claim.clone(), response.clone()));
    store.insert_key(&sample_key(org.id, "ci", now()), &entry).await.expect("insert_key with the journal");
    let rows = store
        .connection()
        .query_all(Statement::from_string(store.connection().get_database_backend(), "SELECT response_body FROM idempotency_records"))
        .await
        .expect("reading the raw rows");
    assert!(!rows.is_empty(), "the record exists");
    for row in rows {
        let body: Vec<u8> = row.try_get("", "response_body").unwrap_or_default();
        assert!(!body.windows(secret.len()).any(|w| w == secret.as_bytes()), "no stored body holds the secret in the clear");
    }
    assert_eq!(
        store.begin(&scope(org.id, "mint-secret"), &fp, now() + Duration::seconds(1)).await.expect("begin"),
        Decision::Replay(response),
        "the replay shows the secret verbatim"
    );
}

/// Migrating twice is harmless, the store answers pings and names its backend.
async fn migrations_are_repeatable_and_the_store_answers(store: SqlStore, backend: &str) {
    store.migrate().await.expect("migrating an up-to-date database again changes nothing and succeeds");
    store.ping().await.expect("a connected store answers a ping");
    assert_eq!(store.backend_name(), backend, "the store names the backend its URL chose");
    let clone = store.clone();
    assert!(!clone.has_organizations().await.expect("has_organizations succeeds"), "a fresh database holds no organization");
}

/// A use case is all or nothing: a key whose journal entry cannot be written (its run id is
/// taken) is not stored either.
async fn a_key_whose_journal_fails_is_not_stored(store: SqlStore) {
    let (org, _) = create_organization(&store, "Atomic").await;
    let entry = journal(org.id, "keys.create");
    RunStore::record(&store, &entry).await.expect("recording a run");
    let key = sample_key(org.id, "doomed", now());
    let result = store.insert_key(&key, &entry).await;
    assert!(matches!(result, Err(AccountError::Store(_))), "a journal entry whose run id exists makes insert_key fail, got {result:?}");
    assert_eq!(store.find_key_by_hash(&key.hash).await.expect("find succeeds"), None, "the failed call left no key behind");
}

/// The idempotency outcome commits in the effect's transaction: after `insert_key` with a
/// journal carrying the outcome, the same request replays it; and a failed effect leaves the
/// claim in progress (nothing completed).
async fn the_journal_completes_the_idempotency_record_with_the_effect(store: SqlStore) {
    let (org, _) = create_organization(&store, "Replayer").await;
    let scope = scope(org.id, "mint-1");
    let fp = Fingerprint::of("POST", "/v1/atlas/keys", &json!({"name": "ci"}));
    assert!(IdempotencyStore::commits_with_effect(&store), "the SQL store commits outcomes with effects");
    assert_eq!(store.begin(&scope, &fp, now()).await.expect("begin"), Decision::Execute, "a new key executes");

    let response = StoredResponse {
        status: 201,
        body: br#"{"data":{"id":"key_1"}}"#.to_vec(),
        location: Some("/v1/atlas/keys/key_1".into()),
        etag: None,
        shows_secret: false,
    };
    let mut entry = journal(org.id, "keys.create");
    entry.run.idempotency_key = Some("mint-1".into());
    entry.idempotency = Some((scope.clone(), response.clone()));
    let key = sample_key(org.id, "ci", now());
    store.insert_key(&key, &entry).await.expect("insert_key with the journal");
    let stored_run = store.get(org.id, entry.run.id).await.expect("get").expect("the run committed with the key");
    assert_eq!(stored_run.idempotency_key.as_deref(), Some("mint-1"), "the run records the idempotency key");
    assert_eq!(
        store.begin(&scope, &fp, now() + Duration::seconds(1)).await.expect("begin"),
        Decision::Replay(response.clone()),
        "the outcome committed with the key: the same request now replays it"
    );

    // A failing effect (duplicate key hash) must not complete its claim.
    let failing_scope = self::scope(org.id, "mint-2");
    assert_eq!(store.begin(&failing_scope, &fp, now()).await.expect("begin"), Decision::Execute, "a new key executes");
    let mut failing = journal(org.id, "keys.create");
    failing.idempotency = Some((failing_scope.clone(), response));
    let duplicate = sample_key(org.id, "dup", now());
    let duplicate = atlas_accounts::ApiKeyRecord { hash: key.hash.clone(), ..duplicate };
    assert!(store.insert_key(&duplicate, &failing).await.is_err(), "a key whose hash exists is refused");
    assert_eq!(
        store.begin(&failing_scope, &fp, now() + Duration::seconds(1)).await.expect("begin"),
        Decision::InProgress,
        "the failed call completed nothing: its claim is still in progress"
    );
    assert_eq!(store.get(org.id, failing.run.id).await.expect("get"), None, "the failed call recorded no run");
}

/// The revocation a reuse causes commits, with the journal entry the closure gave for it; an
/// unknown token writes nothing.
async fn a_reuse_commits_its_revocation_and_journal_entry(store: SqlStore) {
    let user = atlas_testkit::accounts::bootstrap_creates_the_first_user_and_then_closes(&store).await;
    let token = RefreshToken {
        hash: "first".into(),
        family: RefreshFamilyId::generate(),
        user_id: user.id,
        org_id: user.org_id,
        created_at: now(),
        expires_at: now() + Duration::days(1),
    };
    store.insert_refresh_token(&token, &journal(user.org_id, "auth.token")).await.expect("insert_refresh_token");
    let rotated = journal(user.org_id, "auth.refresh");
    let reused = journal(user.org_id, "auth.refresh");
    let entries = |outcome: &RotateOutcome| match outcome {
        RotateOutcome::Rotated { .. } => rotated.clone(),
        _ => reused.clone(),
    };
    let at = now();
    let outcome = store.rotate_refresh_token("first", "second", at + Duration::days(1), at, &entries).await.expect("rotate");
    assert!(matches!(outcome, RotateOutcome::Rotated { .. }), "a live token rotates, got {outcome:?}");
    assert!(store.get(user.org_id, rotated.run.id).await.expect("get").is_some(), "the rotation's run committed with it");

    let outcome = store.rotate_refresh_token("first", "third", at + Duration::days(1), at, &entries).await.expect("rotate");
    assert_eq!(outcome, RotateOutcome::Reused { family: token.family, org_id: token.org_id }, "presenting the used token is reuse");
    let run = store.get(user.org_id, reused.run.id).await.expect("get");
    assert_eq!(run.map(|r| r.status), Some(RunStatus::Succeeded), "the reuse's journal entry committed with the revocation");
    let outcome = store.rotate_refresh_token("second", "fourth", at + Duration::days(1), at, &entries).await;
    assert!(
        matches!(outcome, Err(AccountError::Store(_))),
        "the reuse's journal entry is already stored, so a second reuse journalled with the same run id fails: {outcome:?}"
    );
    let fresh = journal(user.org_id, "auth.refresh");
    let outcome = store.rotate_refresh_token("second", "fifth", at + Duration::days(1), at, &|_: &RotateOutcome| fresh.clone()).await;
    assert_eq!(
        outcome.expect("rotate"),
        RotateOutcome::Reused { family: token.family, org_id: token.org_id },
        "the revocation committed: the successor is dead"
    );

    let unknown = journal(user.org_id, "auth.refresh");
    let outcome = store.rotate_refresh_token("nobody", "x", at, at, &|_: &RotateOutcome| unknown.clone()).await.expect("rotate");
    assert_eq!(outcome, RotateOutcome::Unknown, "an unknown token is Unknown");
    assert_eq!(store.get(user.org_id, unknown.run.id).await.expect("get"), None, "an unknown token writes no run");
}

/// Two concurrent presentations of one live token: exactly one rotates.
async fn concurrent_presentations_of_one_token_rotate_once(store: SqlStore) {
    let user = atlas_testkit::accounts::bootstrap_creates_the_first_user_and_then_closes(&store).await;
    let token = RefreshToken {
        hash: "contested".into(),
        family: RefreshFamilyId::generate(),
        user_id: user.id,
        org_id: user.org_id,
        created_at: now(),
        expires_at: now() + Duration::days(1),
    };
    store.insert_refresh_token(&token, &journal(user.org_id, "auth.token")).await.expect("insert_refresh_token");
    let store = Arc::new(store);
    // Open the pool's connections first, then start every presentation at once, so the
    // presentations really overlap (on PostgreSQL, where the pool has several connections).
    let warm: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let txn = store.connection().begin().await.expect("a transaction");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                txn.commit().await.expect("commit");
            })
        })
        .collect();
    for task in warm {
        task.await.expect("the task ran");
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let org_id = user.org_id;
            tokio::spawn(async move {
                barrier.wait().await;
                let at = now();
                let entry = move |_: &RotateOutcome| journal(org_id, "auth.refresh");
                store.rotate_refresh_token("contested", &format!("next-{i}"), at + Duration::days(1), at, &entry).await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("the task ran").expect("rotate"));
    }
    let rotated = outcomes.iter().filter(|o| matches!(o, RotateOutcome::Rotated { .. })).count();
    assert_eq!(rotated, 1, "of concurrent presentations of one token exactly one rotates: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .filter(|o| !matches!(o, RotateOutcome::Rotated { .. }))
            .all(|o| *o == RotateOutcome::Reused { family: token.family, org_id: token.org_id }),
        "the others are reuse: {outcomes:?}"
    );
}

macro_rules! backend_tests {
    ($backend:ident, $name:literal) => {
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

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn migrations_are_repeatable_and_the_store_answers() {
                super::migrations_are_repeatable_and_the_store_answers(store!(), $name).await;
            }

            // The account suite, whole and check by check (each on a fresh database).

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn accounts_suite() {
                atlas_testkit::accounts::suite(Arc::new(store!())).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn accounts_bootstrap_creates_the_first_user_and_then_closes() {
                atlas_testkit::accounts::bootstrap_creates_the_first_user_and_then_closes(&store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn accounts_concurrent_bootstraps_admit_exactly_one() {
                atlas_testkit::accounts::concurrent_bootstraps_admit_exactly_one(Arc::new(store!())).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn accounts_an_organization_and_its_admin_key_round_trip() {
                atlas_testkit::accounts::an_organization_and_its_admin_key_round_trip(&store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn accounts_list_keys_pages_newest_first_with_a_stable_cursor() {
                atlas_testkit::accounts::list_keys_pages_newest_first_with_a_cursor_stable_under_inserts(&store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn accounts_revoking_a_key_is_visible_at_once_and_confined() {
                atlas_testkit::accounts::revoking_a_key_is_visible_at_once_and_confined_to_its_organization(&store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn accounts_an_organization_cannot_list_another_organizations_keys() {
                atlas_testkit::accounts::an_organization_cannot_list_another_organizations_keys(&store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn accounts_touching_a_key_records_its_last_use() {
                atlas_testkit::accounts::touching_a_key_records_its_last_use(&store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn accounts_refresh_tokens_rotate_and_reuse_revokes_the_family() {
                let store = store!();
                let user = atlas_testkit::accounts::bootstrap_creates_the_first_user_and_then_closes(&store).await;
                atlas_testkit::accounts::a_live_refresh_token_rotates_within_its_family(&store, &user).await;
                atlas_testkit::accounts::presenting_a_used_refresh_token_revokes_its_whole_family(&store, &user).await;
                atlas_testkit::accounts::an_expired_refresh_token_is_refused_and_changes_nothing(&store, &user).await;
                atlas_testkit::accounts::an_unknown_refresh_token_is_unknown(&store).await;
            }

            // The run suite.

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn runs_suite() {
                atlas_testkit::runs::suite(&store!()).await;
            }

            // The idempotency suite, whole and its concurrency checks on their own.

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn idempotency_suite() {
                atlas_testkit::idempotency::suite(Arc::new(store!()), $name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn idempotency_concurrent_begins_execute_exactly_once() {
                let store: Arc<dyn IdempotencyStore> = Arc::new(store!());
                atlas_testkit::idempotency::concurrent_begins_with_one_key_execute_exactly_once(store.clone(), $name).await;
                atlas_testkit::idempotency::concurrent_takeovers_of_an_abandoned_claim_admit_exactly_one(store, $name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn idempotency_a_lapsed_claim_cannot_settle_the_claim_that_took_over() {
                atlas_testkit::idempotency::a_lapsed_claim_cannot_settle_the_claim_that_took_over(&store!(), $name).await;
            }

            // The SQL store's own checks: one transaction per use case.

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_a_key_whose_journal_fails_is_not_stored() {
                super::a_key_whose_journal_fails_is_not_stored(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_the_journal_completes_the_idempotency_record_with_the_effect() {
                super::the_journal_completes_the_idempotency_record_with_the_effect(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_an_answer_showing_a_secret_is_sealed_at_rest_and_replayed_verbatim() {
                super::an_answer_showing_a_secret_is_sealed_at_rest_and_replayed_verbatim(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_a_reuse_commits_its_revocation_and_journal_entry() {
                super::a_reuse_commits_its_revocation_and_journal_entry(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_concurrent_presentations_of_one_token_rotate_once() {
                super::concurrent_presentations_of_one_token_rotate_once(store!()).await;
            }
        }
    };
}

backend_tests!(sqlite, "sqlite");
backend_tests!(postgres, "postgres");

/// `sqlite::memory:` works: the single connection is never recycled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_sqlite_store_keeps_its_data() {
    let store = SqlStore::connect("sqlite::memory:").await.expect("opening an in-memory database");
    store.migrate().await.expect("migrating");
    let (_org, admin) = create_organization(&store, "Memory").await;
    assert!(store.find_key_by_hash(&admin.hash).await.expect("find").is_some(), "an in-memory store keeps what it stored");
}
