//! The behavioural suite every `AccountStore` must pass: organizations and keys round-trip,
//! key lists page with a stable cursor, revocation is immediate and confined to its
//! organization, tenants never see each other's keys, bootstrap opens exactly once (also under
//! concurrency), and refresh tokens rotate, with reuse of a dead one revoking its whole family.
//!
//! Bootstrap is platform-wide: it succeeds once per store. So the checks that bootstrap
//! ([`bootstrap_creates_the_first_user_and_then_closes`],
//! [`concurrent_bootstraps_admit_exactly_one`]) need a store no one has bootstrapped, and the
//! refresh-token checks take the bootstrapped user they issue tokens to. Every other check
//! creates organizations of its own and may share a store. [`suite`] runs them all on a fresh
//! store.

use atlas_accounts::{AccountError, AccountStore, ApiKeyRecord, Organization, RefreshFamilyId, RefreshToken, RotateOutcome, User};
use atlas_kernel::{Cursor, OrgId, Page, PageRequest};
use atlas_runs::{JournalEntry, Run, RunId, RunStatus};
use atlas_scopes::{Actor, KeyId, Role, ScopeSet, UserId};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// Runs every check of the suite against `store`, which no one may have bootstrapped yet.
pub async fn suite(store: Arc<dyn AccountStore>) {
    concurrent_first_starts_create_one_default_organization(store.clone()).await;
    let user = concurrent_bootstraps_admit_exactly_one(store.clone()).await;
    bootstrap_is_closed_once_a_user_exists(store.as_ref()).await;
    let store = store.as_ref();
    an_organization_and_its_admin_key_round_trip(store).await;
    list_keys_pages_newest_first_with_a_cursor_stable_under_inserts(store).await;
    revoking_a_key_is_visible_at_once_and_confined_to_its_organization(store).await;
    an_organization_cannot_list_another_organizations_keys(store).await;
    touching_a_key_records_its_last_use(store).await;
    a_live_refresh_token_rotates_within_its_family(store, &user).await;
    presenting_a_used_refresh_token_revokes_its_whole_family(store, &user).await;
    an_expired_refresh_token_is_refused_and_changes_nothing(store, &user).await;
    an_unknown_refresh_token_is_unknown(store).await;
}

/// The current time, truncated to the microsecond (the SQL store's precision).
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).expect("a truncated nanosecond is valid")
}

fn random_hex() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// A journal entry for a call of `org_id` doing `operation`.
pub fn journal(org_id: OrgId, operation: &str) -> JournalEntry {
    let at = now();
    JournalEntry {
        run: Run {
            id: RunId::generate(),
            org_id,
            actor: Actor::System,
            operation: operation.into(),
            status: RunStatus::Succeeded,
            request_id: format!("req_{}", uuid::Uuid::new_v4().simple()),
            idempotency_key: None,
            resource_id: None,
            error: None,
            created_at: at,
            updated_at: at,
        },
        idempotency: None,
        events: Vec::new(),
    }
}

/// A new organization (not yet stored).
pub fn sample_organization(name: &str) -> Organization {
    Organization { id: OrgId::generate(), name: name.into(), created_at: now() }
}

/// A key of `org_id` (not yet stored) created at `created_at`, with scopes, an expiry and an
/// IP allowlist, so every column is exercised.
pub fn sample_key(org_id: OrgId, name: &str, created_at: OffsetDateTime) -> ApiKeyRecord {
    let hash = random_hex();
    ApiKeyRecord {
        id: KeyId::generate(),
        org_id,
        name: name.into(),
        prefix: format!("atlas_sk_{}", &hash[..6]),
        hash,
        scopes: ScopeSet::parse(["atlas.keys.read", "atlas.messages.send", "atlas.runs.read"]).expect("known scopes"),
        expires_at: Some(created_at + Duration::days(30)),
        allowed_ips: vec!["10.0.0.0/8".parse().expect("a CIDR"), "2001:db8::/32".parse().expect("a CIDR")],
        created_at,
        last_used_at: None,
        revoked_at: None,
    }
}

/// A user of `org_id` (not yet stored).
pub fn sample_user(org_id: OrgId, email: &str) -> User {
    User {
        id: UserId::generate(),
        org_id,
        email: email.into(),
        username: Some("owner".into()),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo".into(),
        role: Role::Admin,
        created_at: now(),
    }
}

/// Creates an organization with an admin key holding every organization scope.
pub async fn create_organization(store: &dyn AccountStore, name: &str) -> (Organization, ApiKeyRecord) {
    let org = sample_organization(name);
    let mut admin = sample_key(org.id, "admin", org.created_at);
    admin.scopes = ScopeSet::organization_admin();
    admin.expires_at = None;
    admin.allowed_ips = Vec::new();
    store
        .create_organization(&org, &admin, &journal(org.id, "orgs.create"))
        .await
        .unwrap_or_else(|e| panic!("creating organization {name} failed: {e:?}"));
    (org, admin)
}

async fn insert_key(store: &dyn AccountStore, key: &ApiKeyRecord) {
    store.insert_key(key, &journal(key.org_id, "keys.create")).await.unwrap_or_else(|e| panic!("inserting key {} failed: {e:?}", key.id));
}

async fn find(store: &dyn AccountStore, hash: &str) -> Option<ApiKeyRecord> {
    store.find_key_by_hash(hash).await.unwrap_or_else(|e| panic!("finding a key by hash failed: {e:?}"))
}

async fn list(store: &dyn AccountStore, org_id: OrgId, page: PageRequest) -> Page<ApiKeyRecord> {
    store.list_keys(org_id, &page).await.unwrap_or_else(|e| panic!("listing keys failed: {e:?}"))
}

fn ids(keys: &[ApiKeyRecord]) -> Vec<KeyId> {
    keys.iter().map(|k| k.id).collect()
}

/// Bootstraps a fresh store with `email`'s user, in a new organization: the organization, user
/// and key it stored.
async fn try_bootstrap(store: &dyn AccountStore, email: &str) -> (Result<(), AccountError>, Organization, User, ApiKeyRecord) {
    let (org, _admin) = create_organization(store, "first").await;
    let user = sample_user(org.id, email);
    let mut key = sample_key(org.id, "bootstrap admin", org.created_at);
    key.scopes = Role::Admin.scopes();
    let result = store.bootstrap(&user, &key, &journal(org.id, "auth.bootstrap")).await;
    (result, org, user, key)
}

/// On a store without a default organization: ten concurrent first starts (each with its own
/// organization and admin key) create exactly one default organization; the others create
/// nothing, and `default_organization` names the winner from then on.
pub async fn concurrent_first_starts_create_one_default_organization(store: Arc<dyn AccountStore>) {
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let org = sample_organization(&format!("Default {i}"));
                let mut admin = sample_key(org.id, "admin", org.created_at);
                admin.scopes = ScopeSet::organization_admin();
                let made = store
                    .create_default_organization(&org, &admin, &journal(org.id, "orgs.create"))
                    .await
                    .unwrap_or_else(|e| panic!("create_default_organization failed: {e:?}"));
                (made, org, admin)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for task in tasks {
        let (made, org, admin) = task.await.expect("the task ran");
        if made {
            winners.push(org);
        } else {
            losers.push(admin);
        }
    }
    assert_eq!(winners.len(), 1, "of ten concurrent first starts exactly one creates the default organization");
    assert_eq!(
        store.default_organization().await.expect("default_organization succeeds").map(|o| o.id),
        Some(winners[0].id),
        "the default organization is the one the winning start created"
    );
    for admin in losers {
        assert_eq!(find(store.as_ref(), &admin.hash).await, None, "a start that lost the race stored no key");
    }
}

/// On a store no one bootstrapped: bootstrap stores the organization, the first user and the
/// admin key; a second bootstrap (another email, another organization) is refused and stores
/// nothing. Returns the first user.
pub async fn bootstrap_creates_the_first_user_and_then_closes(store: &dyn AccountStore) -> User {
    let (result, _org, user, key) = try_bootstrap(store, "owner@example.test").await;
    result.unwrap_or_else(|e| panic!("the first bootstrap of a fresh store succeeds, but: {e:?}"));
    assert_eq!(
        store.find_key(key.org_id, key.id).await.expect("find_key succeeds"),
        Some(key.clone()),
        "the bootstrap admin key reads back by id within its organization"
    );
    assert_eq!(store.find_key(OrgId::generate(), key.id).await.expect("find_key succeeds"), None, "never from another organization");
    assert_eq!(
        store.find_user_by_email("owner@example.test").await.expect("find_user_by_email succeeds"),
        Some(user.clone()),
        "the bootstrapped user reads back by email exactly as stored"
    );
    assert_eq!(find(store, &key.hash).await, Some(key), "the bootstrap admin key reads back by hash exactly as stored");
    bootstrap_is_closed_once_a_user_exists(store).await;
    user
}

/// Once a user exists, bootstrap is refused with `AlreadyBootstrapped` and leaves no trace.
pub async fn bootstrap_is_closed_once_a_user_exists(store: &dyn AccountStore) {
    let (result, org, _user, key) = try_bootstrap(store, "intruder@example.test").await;
    assert!(
        matches!(result, Err(AccountError::AlreadyBootstrapped)),
        "bootstrap is refused with AlreadyBootstrapped once a user exists, got {result:?}"
    );
    assert_eq!(
        store.find_user_by_email("intruder@example.test").await.expect("find_user_by_email succeeds"),
        None,
        "a refused bootstrap stores no user"
    );
    assert_eq!(find(store, &key.hash).await, None, "a refused bootstrap stores no key");
    assert_eq!(
        list(store, org.id, PageRequest::default()).await.items.len(),
        1,
        "a refused bootstrap stores nothing for its organization (only the organization's own admin key is there)"
    );
}

/// On a store no one bootstrapped: ten concurrent bootstraps (distinct emails and
/// organizations, so only the bootstrap guard can stop them): exactly one succeeds, the others
/// are `AlreadyBootstrapped`. Returns the winner's user.
pub async fn concurrent_bootstraps_admit_exactly_one(store: Arc<dyn AccountStore>) -> User {
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let (result, _org, user, _key) = try_bootstrap(store.as_ref(), &format!("racer{i}@example.test")).await;
                (result, user)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut refusals = Vec::new();
    for task in tasks {
        match task.await.expect("the task ran") {
            (Ok(()), user) => winners.push(user),
            (Err(e), _) => refusals.push(e),
        }
    }
    assert_eq!(winners.len(), 1, "of ten concurrent bootstraps exactly one succeeds; refusals: {refusals:?}");
    assert!(
        refusals.iter().all(|e| matches!(e, AccountError::AlreadyBootstrapped)),
        "every other concurrent bootstrap is AlreadyBootstrapped: {refusals:?}"
    );
    let winner = winners.remove(0);
    for i in 0..10 {
        let email = format!("racer{i}@example.test");
        let found = store.find_user_by_email(&email).await.expect("find_user_by_email succeeds");
        assert_eq!(found.is_some(), email == winner.email, "only the winning bootstrap's user exists ({email})");
    }
    winner
}

/// An organization and its admin key round-trip: the key reads back by hash exactly as
/// stored, and an unknown hash finds nothing.
pub async fn an_organization_and_its_admin_key_round_trip(store: &dyn AccountStore) {
    let (_org, admin) = create_organization(store, "Round Trip").await;
    assert!(store.has_organizations().await.expect("has_organizations succeeds"), "an organization exists once one was created");
    assert_eq!(find(store, &admin.hash).await, Some(admin.clone()), "the admin key reads back by hash exactly as stored");

    let key = sample_key(admin.org_id, "ci", now());
    insert_key(store, &key).await;
    assert_eq!(find(store, &key.hash).await, Some(key), "a minted key reads back with its scopes, expiry and IP allowlist");
    assert_eq!(find(store, &random_hex()).await, None, "a hash no key has finds nothing");
}

/// `list_keys` is newest first (creation time, then id) and pages by a cursor that names a
/// position, so a key minted between two pages neither shifts nor repeats the next page.
pub async fn list_keys_pages_newest_first_with_a_cursor_stable_under_inserts(store: &dyn AccountStore) {
    let (org, admin) = create_organization(store, "Pager").await;
    let base = admin.created_at;
    let mut keys = vec![admin];
    for (i, offset) in [1, 2, 2, 2, 3, 4].into_iter().enumerate() {
        let key = sample_key(org.id, &format!("key {i}"), base + Duration::seconds(offset));
        insert_key(store, &key).await;
        keys.push(key);
    }
    keys.sort_by_key(|k| std::cmp::Reverse((k.created_at, k.id.as_uuid())));

    let first = list(store, org.id, PageRequest { limit: 3, after: None }).await;
    assert_eq!(ids(&first.items), ids(&keys[0..3]), "the first page holds the three newest keys, ties broken by id descending");
    assert_eq!(first.items, keys[0..3].to_vec(), "listed keys read back exactly as stored");
    let cursor = first.next_cursor.expect("a page followed by more keys names the next cursor");

    let newest = sample_key(org.id, "minted between pages", base + Duration::minutes(5));
    insert_key(store, &newest).await;

    let after = Some(Cursor::decode(&cursor).expect("the store's cursor decodes"));
    let second = list(store, org.id, PageRequest { limit: 3, after }).await;
    assert_eq!(ids(&second.items), ids(&keys[3..6]), "the next page continues where the first ended, unmoved by the key minted meanwhile");
    let after = Some(Cursor::decode(&second.next_cursor.expect("one key remains")).expect("the cursor decodes"));
    let third = list(store, org.id, PageRequest { limit: 3, after }).await;
    assert_eq!(ids(&third.items), ids(&keys[6..7]), "the last page holds the oldest key");
    assert_eq!(third.next_cursor, None, "the last page names no next cursor");

    let fresh = list(store, org.id, PageRequest { limit: 3, after: None }).await;
    assert_eq!(fresh.items.first().map(|k| k.id), Some(newest.id), "a fresh first page starts with the key minted last");
}

/// Revocation stamps `revoked_at`, shows at once through `find_key_by_hash`, is idempotent,
/// and only the key's own organization can revoke it.
pub async fn revoking_a_key_is_visible_at_once_and_confined_to_its_organization(store: &dyn AccountStore) {
    let (org_a, _) = create_organization(store, "Owner").await;
    let (org_b, _) = create_organization(store, "Stranger").await;
    let key = sample_key(org_a.id, "to revoke", now());
    insert_key(store, &key).await;

    let refused = store.revoke_key(org_b.id, key.id, now(), &journal(org_b.id, "keys.revoke")).await;
    assert!(matches!(refused, Err(AccountError::NotFound)), "another organization revoking the key is NotFound, got {refused:?}");
    assert_eq!(find(store, &key.hash).await.and_then(|k| k.revoked_at), None, "a refused revocation leaves the key live");

    let at = now() + Duration::seconds(1);
    let revoked = store
        .revoke_key(org_a.id, key.id, at, &journal(org_a.id, "keys.revoke"))
        .await
        .unwrap_or_else(|e| panic!("revoking the organization's own key failed: {e:?}"));
    assert_eq!(revoked.revoked_at, Some(at), "revoke_key returns the key stamped with its revocation time");
    assert_eq!(find(store, &key.hash).await.and_then(|k| k.revoked_at), Some(at), "the revocation shows at once through find_key_by_hash");

    let again = store
        .revoke_key(org_a.id, key.id, at + Duration::hours(1), &journal(org_a.id, "keys.revoke"))
        .await
        .unwrap_or_else(|e| panic!("revoking a revoked key succeeds, but: {e:?}"));
    assert_eq!(again.revoked_at, Some(at), "revoking a revoked key changes nothing: the first revocation time stays");

    let missing = store.revoke_key(org_a.id, KeyId::generate(), at, &journal(org_a.id, "keys.revoke")).await;
    assert!(matches!(missing, Err(AccountError::NotFound)), "revoking a key that does not exist is NotFound, got {missing:?}");
}

/// Tenant isolation: an organization lists only its own keys.
pub async fn an_organization_cannot_list_another_organizations_keys(store: &dyn AccountStore) {
    let (org_a, admin_a) = create_organization(store, "Tenant A").await;
    let (org_b, admin_b) = create_organization(store, "Tenant B").await;
    let key_a = sample_key(org_a.id, "a's key", now());
    insert_key(store, &key_a).await;

    let listed_b = list(store, org_b.id, PageRequest::default()).await;
    assert_eq!(ids(&listed_b.items), vec![admin_b.id], "organization B lists only its own key");
    let mut listed_a = ids(&list(store, org_a.id, PageRequest::default()).await.items);
    listed_a.sort();
    let mut expected = vec![admin_a.id, key_a.id];
    expected.sort();
    assert_eq!(listed_a, expected, "organization A lists exactly its own keys");
    let stranger = list(store, OrgId::generate(), PageRequest::default()).await;
    assert!(stranger.items.is_empty(), "an organization with no keys lists none: {:?}", stranger.items);
}

/// `touch_key` records when a key was last used.
pub async fn touching_a_key_records_its_last_use(store: &dyn AccountStore) {
    let (_org, admin) = create_organization(store, "Toucher").await;
    let first = now() + Duration::seconds(1);
    store.touch_key(admin.id, first).await.expect("touch_key succeeds");
    assert_eq!(find(store, &admin.hash).await.and_then(|k| k.last_used_at), Some(first), "a touched key records its last use");
    let later = first + Duration::minutes(2);
    store.touch_key(admin.id, later).await.expect("touch_key succeeds");
    assert_eq!(find(store, &admin.hash).await.and_then(|k| k.last_used_at), Some(later), "a later use moves last_used_at forward");
}

/// Stores a new refresh token (a new family) for `user`, expiring at `expires_at`.
async fn issue(store: &dyn AccountStore, user: &User, expires_at: OffsetDateTime) -> RefreshToken {
    let token = RefreshToken {
        hash: random_hex(),
        family: RefreshFamilyId::generate(),
        user_id: user.id,
        org_id: user.org_id,
        created_at: now(),
        expires_at,
    };
    store
        .insert_refresh_token(&token, &journal(user.org_id, "auth.token"))
        .await
        .unwrap_or_else(|e| panic!("storing a refresh token failed: {e:?}"));
    token
}

/// Presents `hash`, asking for `next` as its successor.
async fn rotate(store: &dyn AccountStore, org_id: OrgId, hash: &str, next: &str, at: OffsetDateTime) -> RotateOutcome {
    let entry = move |_: &RotateOutcome| journal(org_id, "auth.refresh");
    store
        .rotate_refresh_token(hash, next, at + Duration::days(30), at, &entry)
        .await
        .unwrap_or_else(|e| panic!("rotating a refresh token failed: {e:?}"))
}

/// A live refresh token rotates: the user and family come back, and the successor is live in
/// the same family.
pub async fn a_live_refresh_token_rotates_within_its_family(store: &dyn AccountStore, user: &User) {
    let token = issue(store, user, now() + Duration::days(30)).await;
    let (next, after_next) = (random_hex(), random_hex());
    let outcome = rotate(store, user.org_id, &token.hash, &next, now()).await;
    assert_eq!(
        outcome,
        RotateOutcome::Rotated { user: user.clone(), family: token.family },
        "a live token rotates, naming its user and family"
    );
    let outcome = rotate(store, user.org_id, &next, &after_next, now()).await;
    assert_eq!(
        outcome,
        RotateOutcome::Rotated { user: user.clone(), family: token.family },
        "the successor is live and stays in the same family"
    );
}

/// Presenting a token that was already used is reuse (RFC 9700): the whole family is revoked,
/// so the successor the first rotation issued is dead too.
pub async fn presenting_a_used_refresh_token_revokes_its_whole_family(store: &dyn AccountStore, user: &User) {
    let token = issue(store, user, now() + Duration::days(30)).await;
    let successor = random_hex();
    let outcome = rotate(store, user.org_id, &token.hash, &successor, now()).await;
    assert!(matches!(outcome, RotateOutcome::Rotated { .. }), "a live token rotates, got {outcome:?}");

    let stolen_successor = random_hex();
    let outcome = rotate(store, user.org_id, &token.hash, &stolen_successor, now()).await;
    assert_eq!(
        outcome,
        RotateOutcome::Reused { family: token.family, org_id: token.org_id },
        "presenting a used token again is reuse of its family"
    );
    let outcome = rotate(store, user.org_id, &successor, &random_hex(), now()).await;
    assert_eq!(
        outcome,
        RotateOutcome::Reused { family: token.family, org_id: token.org_id },
        "after reuse the successor is dead too: presenting it is reuse, not a rotation"
    );
    let outcome = rotate(store, user.org_id, &stolen_successor, &random_hex(), now()).await;
    assert_eq!(outcome, RotateOutcome::Unknown, "a reuse stores no successor");

    let other_family = issue(store, user, now() + Duration::days(30)).await;
    let outcome = rotate(store, user.org_id, &other_family.hash, &random_hex(), now()).await;
    assert!(matches!(outcome, RotateOutcome::Rotated { .. }), "revoking one family leaves the user's other families live, got {outcome:?}");
}

/// An expired token is refused as `Expired`, and refusing it changes nothing: presenting it
/// again is still `Expired`, not reuse.
pub async fn an_expired_refresh_token_is_refused_and_changes_nothing(store: &dyn AccountStore, user: &User) {
    let at = now();
    let token = issue(store, user, at - Duration::seconds(1)).await;
    let next = random_hex();
    assert_eq!(rotate(store, user.org_id, &token.hash, &next, at).await, RotateOutcome::Expired, "a token past its expiry is Expired");
    assert_eq!(
        rotate(store, user.org_id, &token.hash, &random_hex(), at).await,
        RotateOutcome::Expired,
        "refusing an expired token changes nothing: it is still Expired"
    );
    assert_eq!(rotate(store, user.org_id, &next, &random_hex(), at).await, RotateOutcome::Unknown, "an expired token gets no successor");
    let exact = issue(store, user, at).await;
    assert_eq!(
        rotate(store, user.org_id, &exact.hash, &random_hex(), at).await,
        RotateOutcome::Expired,
        "a token is dead at its expiry instant"
    );
}

/// A hash no token has is `Unknown`.
pub async fn an_unknown_refresh_token_is_unknown(store: &dyn AccountStore) {
    let outcome = rotate(store, OrgId::generate(), &random_hex(), &random_hex(), now()).await;
    assert_eq!(outcome, RotateOutcome::Unknown, "a token never issued is Unknown");
}
