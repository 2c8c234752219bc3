//! The use cases over a small in-memory store whose key reads can be held mid-flight, so races
//! are played out step by step rather than hoped for.

use super::*;
use crate::{AccountError, AccountStore};
use async_trait::async_trait;
use atlas_kernel::ManualClock;
use atlas_runs::JournalEntry;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{Notify, Semaphore};

/// Keys and users in memory. While `hold` is set, `find_key_by_hash` takes its snapshot of the
/// record, announces it on `read_taken`, then waits for a permit from `release` before
/// answering with that (by then possibly stale) snapshot.
#[derive(Debug)]
struct MemoryStore {
    keys: Mutex<Vec<ApiKeyRecord>>,
    users: Mutex<Vec<User>>,
    default_org: Mutex<Option<Organization>>,
    hold: AtomicBool,
    read_taken: Notify,
    release: Semaphore,
    key_reads: AtomicUsize,
    /// While set, the next `touch_key` announces itself on `touch_taken` and waits for a permit
    /// from `touch_release` (only that one: later touches are counted and answer at once).
    hold_touch: AtomicBool,
    touch_taken: Notify,
    touch_release: Semaphore,
    touches: AtomicUsize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            keys: Mutex::default(),
            users: Mutex::default(),
            default_org: Mutex::default(),
            hold: AtomicBool::new(false),
            read_taken: Notify::new(),
            release: Semaphore::new(0),
            key_reads: AtomicUsize::new(0),
            hold_touch: AtomicBool::new(false),
            touch_taken: Notify::new(),
            touch_release: Semaphore::new(0),
            touches: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl AccountStore for MemoryStore {
    async fn has_organizations(&self) -> Result<bool, AccountError> {
        Ok(self.default_org.lock().unwrap().is_some())
    }
    async fn create_organization(&self, _: &Organization, key: &ApiKeyRecord, _: &JournalEntry) -> Result<(), AccountError> {
        self.keys.lock().unwrap().push(key.clone());
        Ok(())
    }
    async fn create_default_organization(&self, org: &Organization, key: &ApiKeyRecord, _: &JournalEntry) -> Result<bool, AccountError> {
        let mut default = self.default_org.lock().unwrap();
        if default.is_some() {
            return Ok(false);
        }
        *default = Some(org.clone());
        self.keys.lock().unwrap().push(key.clone());
        Ok(true)
    }
    async fn default_organization(&self) -> Result<Option<Organization>, AccountError> {
        Ok(self.default_org.lock().unwrap().clone())
    }
    async fn bootstrap(&self, user: &User, key: &ApiKeyRecord, _: &JournalEntry) -> Result<(), AccountError> {
        let mut users = self.users.lock().unwrap();
        if !users.is_empty() {
            return Err(AccountError::AlreadyBootstrapped);
        }
        users.push(user.clone());
        self.keys.lock().unwrap().push(key.clone());
        Ok(())
    }
    async fn find_key(&self, org_id: OrgId, id: KeyId) -> Result<Option<ApiKeyRecord>, AccountError> {
        Ok(self.keys.lock().unwrap().iter().find(|k| k.org_id == org_id && k.id == id).cloned())
    }
    async fn insert_key(&self, key: &ApiKeyRecord, _: &JournalEntry) -> Result<(), AccountError> {
        self.keys.lock().unwrap().push(key.clone());
        Ok(())
    }
    async fn list_keys(&self, _: OrgId, _: &PageRequest) -> Result<Page<ApiKeyRecord>, AccountError> {
        Err(AccountError::NotFound)
    }
    async fn revoke_key(&self, org_id: OrgId, id: KeyId, at: OffsetDateTime, _: &JournalEntry) -> Result<ApiKeyRecord, AccountError> {
        let mut keys = self.keys.lock().unwrap();
        let key = keys.iter_mut().find(|k| k.org_id == org_id && k.id == id).ok_or(AccountError::NotFound)?;
        key.revoked_at = Some(at);
        Ok(key.clone())
    }
    async fn find_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, AccountError> {
        self.key_reads.fetch_add(1, Ordering::SeqCst);
        let snapshot = self.keys.lock().unwrap().iter().find(|k| k.hash == hash).cloned();
        if self.hold.swap(false, Ordering::SeqCst) {
            self.read_taken.notify_one();
            let _permit = self.release.acquire().await.expect("the semaphore stays open");
        }
        Ok(snapshot)
    }
    async fn touch_key(&self, _: KeyId, _: OffsetDateTime) -> Result<(), AccountError> {
        self.touches.fetch_add(1, Ordering::SeqCst);
        if self.hold_touch.swap(false, Ordering::SeqCst) {
            self.touch_taken.notify_one();
            self.touch_release.acquire().await.expect("the semaphore stays open").forget();
        }
        Ok(())
    }
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, AccountError> {
        Ok(self.users.lock().unwrap().iter().find(|u| u.email == email).cloned())
    }
    async fn insert_refresh_token(&self, _: &RefreshToken, _: &JournalEntry) -> Result<(), AccountError> {
        Ok(())
    }
    async fn rotate_refresh_token(
        &self,
        _: &str,
        _: &str,
        _: OffsetDateTime,
        _: OffsetDateTime,
        _: &(dyn for<'o> Fn(&'o RotateOutcome) -> JournalEntry + Send + Sync),
    ) -> Result<RotateOutcome, AccountError> {
        Ok(RotateOutcome::Unknown)
    }
}

fn journal(org_id: OrgId) -> JournalEntry {
    JournalEntry::by_system(org_id, "test", String::new(), "req_test".into(), OffsetDateTime::UNIX_EPOCH)
}

fn accounts(store: Arc<MemoryStore>) -> Accounts {
    let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH + Duration::days(20_000));
    Accounts::new(store, SecretHasher::new(b"pepper".to_vec()), Arc::new(clock))
}

/// The first start's organization and its admin key (the secret and the caller it makes).
async fn first_start(accounts: &Accounts) -> (String, Principal) {
    let created = accounts
        .create_default_organization("Default", &[7; KEY_RANDOM_LEN], &|c: &NewOrganization| journal(c.organization.id))
        .await
        .unwrap()
        .expect("an empty store gets a default organization");
    assert!(
        accounts
            .create_default_organization("Default", &[8; KEY_RANDOM_LEN], &|c: &NewOrganization| journal(c.organization.id))
            .await
            .unwrap()
            .is_none(),
        "a second first start creates nothing"
    );
    let principal = Principal {
        org_id: created.organization.id,
        actor: Actor::ApiKey(created.admin_key.record.id),
        scopes: created.admin_key.record.scopes.clone(),
    };
    (created.admin_key.token.expose().to_owned(), principal)
}

/// A revocation on this replica while an authentication of the same key is reading the store:
/// neither that authentication nor any later one accepts the key (the stale read is neither
/// trusted nor cached).
#[tokio::test]
async fn a_revocation_stops_an_authentication_in_flight_and_every_later_one() {
    let store = Arc::new(MemoryStore::default());
    let accounts = Arc::new(accounts(store.clone()));
    let (secret, admin) = first_start(&accounts).await;
    let Actor::ApiKey(key_id) = admin.actor else { unreachable!("the admin is a key") };

    store.hold.store(true, Ordering::SeqCst);
    let in_flight = {
        let (accounts, secret) = (accounts.clone(), secret.clone());
        tokio::spawn(async move { accounts.authenticate(Credential::ApiKey(&secret), None).await })
    };
    store.read_taken.notified().await;
    // The read of the live record is taken; now the key is revoked on this replica.
    accounts.revoke_key(&admin, key_id, &journal(admin.org_id)).await.unwrap();
    store.release.add_permits(1);
    let in_flight = in_flight.await.unwrap();
    assert!(matches!(in_flight, Err(AuthError::Revoked)), "the authentication in flight sees the revocation: {in_flight:?}");
    let later = accounts.authenticate(Credential::ApiKey(&secret), None).await;
    assert!(matches!(later, Err(AuthError::Revoked)), "no later authentication accepts the revoked key: {later:?}");
}

/// A verified key needs no store read within a second.
#[tokio::test]
async fn a_verified_key_is_served_from_the_cache() {
    let store = Arc::new(MemoryStore::default());
    let accounts = accounts(store.clone());
    let (secret, _) = first_start(&accounts).await;
    accounts.authenticate(Credential::ApiKey(&secret), None).await.unwrap();
    accounts.authenticate(Credential::ApiKey(&secret), None).await.unwrap();
    assert_eq!(store.key_reads.load(Ordering::SeqCst), 1, "the second authentication read the cache");
}

/// Requests that find a key due for its `last_used_at` write while that write is in flight do
/// not write it again: one write per key and minute, however many requests arrive meanwhile.
#[tokio::test]
async fn a_key_due_for_its_last_use_is_written_once_by_concurrent_requests() {
    let store = Arc::new(MemoryStore::default());
    let accounts = Arc::new(accounts(store.clone()));
    let (secret, _) = first_start(&accounts).await;
    store.hold_touch.store(true, Ordering::SeqCst);
    let first = {
        let (accounts, secret) = (accounts.clone(), secret.clone());
        tokio::spawn(async move { accounts.authenticate(Credential::ApiKey(&secret), None).await })
    };
    store.touch_taken.notified().await;
    // The first request's write is in flight; three more requests arrive.
    for _ in 0..3 {
        accounts.authenticate(Credential::ApiKey(&secret), None).await.unwrap();
    }
    assert_eq!(store.touches.load(Ordering::SeqCst), 1, "the requests during the write did not write again");
    store.touch_release.add_permits(1);
    first.await.unwrap().unwrap();
    assert_eq!(store.touches.load(Ordering::SeqCst), 1, "one write for the four requests");
}

/// An IPv4 caller seen through a dual-stack socket (`::ffff:10.0.0.1`) is inside an IPv4
/// allowlist.
#[tokio::test]
async fn an_ipv4_mapped_caller_is_checked_as_ipv4() {
    let store = Arc::new(MemoryStore::default());
    let accounts = accounts(store.clone());
    let (_, admin) = first_start(&accounts).await;
    let request = MintKeyRequest {
        name: "office".into(),
        scopes: ScopeSet::parse(["atlas.runs.read"]).unwrap(),
        expires_at: None,
        allowed_ips: vec!["10.0.0.0/8".parse().unwrap()],
    };
    let minted = accounts.mint_key(&admin, request, &[9; KEY_RANDOM_LEN], &|m: &MintedKey| journal(m.record.org_id)).await.unwrap();
    let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
    assert!(accounts.authenticate(Credential::ApiKey(minted.token.expose()), Some(mapped)).await.is_ok());
    let outside: IpAddr = "::ffff:11.0.0.1".parse().unwrap();
    assert!(matches!(accounts.authenticate(Credential::ApiKey(minted.token.expose()), Some(outside)).await, Err(AuthError::IpNotAllowed)));
}

/// A key minted by a key stays within that key's limits.
#[tokio::test]
async fn a_minted_key_stays_within_its_parents_expiry_and_allowlist() {
    let store = Arc::new(MemoryStore::default());
    let accounts = accounts(store.clone());
    let (_, admin) = first_start(&accounts).await;
    let now = accounts.clock.now();
    let request = |expires_at: Option<OffsetDateTime>, allowed_ips: &[&str]| MintKeyRequest {
        name: "child".into(),
        scopes: ScopeSet::organization_admin(),
        expires_at,
        allowed_ips: allowed_ips.iter().map(|n| n.parse().unwrap()).collect(),
    };
    let mint = |caller: Principal, r: MintKeyRequest| {
        let accounts = &accounts;
        async move { accounts.mint_key(&caller, r, &[1; KEY_RANDOM_LEN], &|m: &MintedKey| journal(m.record.org_id)).await }
    };
    let parent = mint(admin.clone(), request(Some(now + Duration::days(10)), &["10.0.0.0/8"])).await.unwrap();
    let parent = Principal { org_id: admin.org_id, actor: Actor::ApiKey(parent.record.id), scopes: parent.record.scopes.clone() };

    let inherited = mint(parent.clone(), request(None, &[])).await.unwrap();
    assert_eq!(inherited.record.expires_at, Some(now + Duration::days(10)), "an absent expiry is the parent's");
    assert_eq!(inherited.record.allowed_ips, vec!["10.0.0.0/8".parse::<IpNet>().unwrap()], "an absent allowlist is the parent's");

    let narrower = mint(parent.clone(), request(Some(now + Duration::days(1)), &["10.1.0.0/16", "10.2.3.4/32"])).await.unwrap();
    assert_eq!(narrower.record.allowed_ips.len(), 2, "a narrower allowlist is kept");

    let later = mint(parent.clone(), request(Some(now + Duration::days(11)), &[])).await;
    assert!(matches!(later, Err(AccessError::BeyondParentLimit { limit: "expires_at", .. })), "{later:?}");
    let wider = mint(parent.clone(), request(None, &["10.0.0.0/7"])).await;
    assert!(matches!(wider, Err(AccessError::BeyondParentLimit { limit: "allowed_ips", .. })), "{wider:?}");
    let elsewhere = mint(parent, request(None, &["192.168.0.0/16"])).await;
    assert!(matches!(elsewhere, Err(AccessError::BeyondParentLimit { limit: "allowed_ips", .. })), "{elsewhere:?}");
}

/// Password work that counts verifications.
#[derive(Debug, Default)]
struct CountingHashing(AtomicUsize);

#[async_trait]
impl PasswordHashing for CountingHashing {
    async fn hash(&self, password: String, salt: [u8; 16]) -> String {
        crate::hash_password(&password, &salt)
    }
    async fn verify(&self, password: String, phc: String) -> bool {
        self.0.fetch_add(1, Ordering::SeqCst);
        crate::verify_password(&password, &phc)
    }
}

/// Signing in with an unknown email costs the same argon2 verification as a wrong password,
/// and both get the same answer.
#[tokio::test]
async fn an_unknown_email_costs_one_verification_like_a_wrong_password() {
    let store = Arc::new(MemoryStore::default());
    let hashing = Arc::new(CountingHashing::default());
    let accounts = accounts(store.clone()).with_password_hashing(hashing.clone());
    let (_, admin) = first_start(&accounts).await;
    let request = BootstrapRequest { email: "owner@example.test".into(), password: "a long enough password".into(), username: None };
    accounts.bootstrap(&admin, request, &[2; 16], &[3; KEY_RANDOM_LEN], &|b: &Bootstrapped| journal(b.organization.id)).await.unwrap();

    let journal_of = |u: &User| journal(u.org_id);
    let unknown = accounts.sign_in("nobody@example.test", "whatever", &[4; 32], &journal_of).await;
    assert!(matches!(unknown, Err(AuthError::BadCredentials)), "{unknown:?}");
    assert_eq!(hashing.0.load(Ordering::SeqCst), 1, "an unknown email was verified against the dummy hash");
    let wrong = accounts.sign_in("owner@example.test", "wrong password", &[4; 32], &journal_of).await;
    assert!(matches!(wrong, Err(AuthError::BadCredentials)), "{wrong:?}");
    assert_eq!(hashing.0.load(Ordering::SeqCst), 2, "a wrong password costs one verification too");
    assert!(accounts.sign_in("owner@example.test", "a long enough password", &[4; 32], &journal_of).await.is_ok());
}

/// Bootstrap needs a credential of the default organization holding `atlas.keys.write`, and
/// creates the user in that organization; it closes once a user exists.
#[tokio::test]
async fn bootstrap_is_for_the_default_organizations_key_writer_only() {
    let store = Arc::new(MemoryStore::default());
    let accounts = accounts(store.clone());
    let (_, admin) = first_start(&accounts).await;
    let request = || BootstrapRequest { email: "owner@example.test".into(), password: "a long enough password".into(), username: None };
    let bootstrap = |caller: Principal| {
        let accounts = &accounts;
        async move {
            accounts.bootstrap(&caller, request(), &[2; 16], &[3; KEY_RANDOM_LEN], &|b: &Bootstrapped| journal(b.organization.id)).await
        }
    };
    let stranger = Principal { org_id: OrgId::generate(), ..admin.clone() };
    assert!(matches!(bootstrap(stranger).await, Err(AccessError::NotDefaultOrganization)));
    let reader = Principal { scopes: ScopeSet::parse(["atlas.keys.read"]).unwrap(), ..admin.clone() };
    assert!(matches!(bootstrap(reader).await, Err(AccessError::ScopeNotHeld(_))));
    let done = bootstrap(admin.clone()).await.unwrap();
    assert_eq!(done.user.org_id, admin.org_id, "the first user lives in the default organization");
    assert_eq!(done.organization.id, admin.org_id);
    assert!(matches!(bootstrap(admin).await, Err(AccessError::AlreadyBootstrapped)));
}
