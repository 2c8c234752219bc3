//! The credential use cases: verify an API key (with a one-second cache of key records, so the
//! hot path reads no database, and a revocation is immediate on this replica and within a
//! second on the others), mint and revoke keys under the minting rule, create organizations,
//! bootstrap the first user, sign in with a password and rotate refresh tokens.
//!
//! The cache is fenced by a revocation generation: a record read from the store is cached (and
//! trusted) only when no revocation happened on this replica while it was being read, so an
//! authentication in flight across a revocation cannot bring the revoked key back.
//!
//! Passwords are hashed and verified through the [`PasswordHashing`] port (argon2 is slow on
//! purpose: the server runs it on its blocking pool); an unknown email is verified against a
//! dummy hash, so it costs the same work as a wrong password.

use crate::{
    AccountError, AccountStore, ApiKeyRecord, InlineArgon2, Organization, PasswordHashing, RefreshFamilyId, RefreshToken, RotateOutcome,
    SecretHasher, User, DUMMY_PASSWORD_HASH,
};
use atlas_kernel::{Clock, OrgId, Page, PageRequest, StoreError};
use atlas_runs::JournalEntry;
use atlas_scopes::{Actor, ApiKeyToken, KeyFormatError, KeyId, Principal, Role, Scope, ScopeSet, UserId, KEY_RANDOM_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

const KEY_CACHE_TTL: Duration = Duration::seconds(1);
const KEY_CACHE_MAX: usize = 10_000;
const TOUCH_EVERY: Duration = Duration::seconds(60);
const REFRESH_TOKEN_PREFIX: &str = "atlas_rt_";
/// How long a refresh token lives.
pub const REFRESH_LIFETIME: Duration = Duration::days(30);

/// Why a credential was refused (all are 401 but `IpNotAllowed`, which is 403).
#[derive(Debug, Error)]
pub enum AuthError {
    #[error("malformed API key: {0}")]
    Malformed(#[from] KeyFormatError),
    #[error("unknown credential")]
    Unknown,
    #[error("the API key was revoked")]
    Revoked,
    #[error("the credential expired")]
    Expired,
    #[error("the caller's address is not in the key's allowlist")]
    IpNotAllowed,
    #[error("wrong email or password")]
    BadCredentials,
    #[error("the refresh token was already used: its whole family is now revoked")]
    RefreshReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a credential-management call was refused.
#[derive(Debug, Error)]
pub enum AccessError {
    #[error("a key cannot grant scopes its creator lacks")]
    ScopeNotHeld(Vec<Scope>),
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("not found")]
    NotFound,
    #[error("a user already exists: bootstrap is closed")]
    AlreadyBootstrapped,
    #[error("bootstrap needs a key of the default organization (the admin key printed at first start)")]
    NotDefaultOrganization,
    /// The request reaches beyond a limit of the minting key (`limit` is `expires_at` or
    /// `allowed_ips`).
    #[error("{message}")]
    BeyondParentLimit { limit: &'static str, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccountError> for AccessError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::NotFound => AccessError::NotFound,
            AccountError::AlreadyBootstrapped | AccountError::EmailTaken => AccessError::AlreadyBootstrapped,
            AccountError::Store(s) => AccessError::Store(s),
        }
    }
}

impl From<AccountError> for AuthError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Store(s) => AuthError::Store(s),
            _ => AuthError::Unknown,
        }
    }
}

/// A presented credential.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    ApiKey(&'a str),
}

/// What `POST /v1/atlas/keys` asks for.
#[derive(Debug, Clone)]
pub struct MintKeyRequest {
    pub name: String,
    pub scopes: ScopeSet,
    pub expires_at: Option<OffsetDateTime>,
    pub allowed_ips: Vec<IpNet>,
}

/// A key just minted: its record and the secret, shown once.
#[derive(Debug, Clone)]
pub struct MintedKey {
    pub record: ApiKeyRecord,
    pub token: ApiKeyToken,
}

/// A new organization and the admin key it was created with.
#[derive(Debug, Clone)]
pub struct NewOrganization {
    pub organization: Organization,
    pub admin_key: MintedKey,
}

/// What `POST /v1/atlas/auth/bootstrap` asks for.
#[derive(Debug, Clone)]
pub struct BootstrapRequest {
    pub email: String,
    pub password: String,
    pub username: Option<String>,
}

/// The first user, the default organization it was created in, and an admin key.
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    pub organization: Organization,
    pub user: User,
    pub admin_key: MintedKey,
}

/// A signed-in user and its new refresh token (the access token is the HTTP layer's JWT).
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub user: User,
    pub refresh_token: String,
    pub refresh_expires_at: OffsetDateTime,
}

/// Key records read recently, and the revocation generation that fences them.
#[derive(Debug, Default)]
struct KeyCache {
    records: HashMap<String, (ApiKeyRecord, OffsetDateTime)>,
    /// Bumped by every revocation on this replica, under the same lock that forgets the key.
    revocations: u64,
}

/// The credential use cases over an [`AccountStore`].
#[derive(Debug)]
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    hasher: SecretHasher,
    clock: Arc<dyn Clock>,
    passwords: Arc<dyn PasswordHashing>,
    cache: Mutex<KeyCache>,
}

impl Accounts {
    /// The use cases over `store`, hashing secrets with `hasher`, telling time by `clock`;
    /// passwords are hashed on the calling thread until
    /// [`with_password_hashing`](Self::with_password_hashing) says otherwise.
    pub fn new(store: Arc<dyn AccountStore>, hasher: SecretHasher, clock: Arc<dyn Clock>) -> Self {
        Self { store, hasher, clock, passwords: Arc::new(InlineArgon2), cache: Mutex::new(KeyCache::default()) }
    }

    /// Hashes and verifies passwords through `passwords` (the server: on its blocking pool).
    #[must_use]
    pub fn with_password_hashing(mut self, passwords: Arc<dyn PasswordHashing>) -> Self {
        self.passwords = passwords;
        self
    }

    /// Verifies an API key presented from `client_ip`: shape and checksum first (no store read
    /// for a malformed key), then the record (cached for a second), revocation, expiry and the
    /// IP allowlist. Records `last_used_at` at most once a minute.
    ///
    /// # Errors
    /// The reason the key is refused.
    pub async fn authenticate(&self, credential: Credential<'_>, client_ip: Option<IpAddr>) -> Result<Principal, AuthError> {
        let Credential::ApiKey(text) = credential;
        let token = ApiKeyToken::parse(text)?;
        let hash = self.hasher.hash(token.expose());
        let now = self.clock.now();
        let record = match self.cached(&hash, now) {
            Some(record) => record,
            None => self.read_key(&hash, now).await?,
        };
        if record.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if record.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::Expired);
        }
        // `::ffff:10.0.0.1` is 10.0.0.1: a dual-stack listener must not put IPv4 callers outside
        // an IPv4 allowlist.
        let client_ip = client_ip.map(|ip| ip.to_canonical());
        if !record.allowed_ips.is_empty() && !client_ip.is_some_and(|ip| record.allowed_ips.iter().any(|net| net.contains(&ip))) {
            return Err(AuthError::IpNotAllowed);
        }
        if record.last_used_at.is_none_or(|at| now - at >= TOUCH_EVERY) && self.claim_touch(&hash, now) {
            self.store.touch_key(record.id, now).await?;
        }
        Ok(Principal { org_id: record.org_id, actor: Actor::ApiKey(record.id), scopes: record.scopes })
    }

    /// Reads a key record from the store. When a revocation happened on this replica while it
    /// was read, the record may predate it: it is read again (after the revocation committed)
    /// and only a read that no revocation overlapped is cached.
    async fn read_key(&self, hash: &str, now: OffsetDateTime) -> Result<ApiKeyRecord, AuthError> {
        let mut generation = self.revocation_generation();
        loop {
            let record = self.store.find_key_by_hash(hash).await?.ok_or(AuthError::Unknown)?;
            let Ok(mut cache) = self.cache.lock() else {
                return Ok(record);
            };
            if cache.revocations == generation {
                if cache.records.len() >= KEY_CACHE_MAX {
                    cache.records.retain(|_, (_, at)| now - *at < KEY_CACHE_TTL);
                }
                cache.records.insert(hash.to_owned(), (record.clone(), now));
                return Ok(record);
            }
            generation = cache.revocations;
        }
    }

    /// Marks the cached record used at `now` before the store records it, so the requests
    /// that arrive while that write is in flight do not write it again (one write per key and
    /// minute, not one per concurrent request). False when another request already claimed it.
    fn claim_touch(&self, hash: &str, now: OffsetDateTime) -> bool {
        let Ok(mut cache) = self.cache.lock() else {
            return true;
        };
        match cache.records.get_mut(hash) {
            Some((cached, _)) if cached.last_used_at.is_some_and(|at| now - at < TOUCH_EVERY) => false,
            Some((cached, _)) => {
                cached.last_used_at = Some(now);
                true
            }
            None => true,
        }
    }

    fn revocation_generation(&self) -> u64 {
        self.cache.lock().map(|c| c.revocations).unwrap_or_default()
    }

    fn cached(&self, hash: &str, now: OffsetDateTime) -> Option<ApiKeyRecord> {
        let cache = self.cache.lock().ok()?;
        cache.records.get(hash).filter(|(_, at)| now - *at < KEY_CACHE_TTL).map(|(r, _)| r.clone())
    }

    fn forget_key(&self, id: KeyId) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.revocations += 1;
            cache.records.retain(|_, (r, _)| r.id != id);
        }
    }

    fn new_key(&self, org_id: OrgId, request: MintKeyRequest, entropy: &[u8; KEY_RANDOM_LEN]) -> MintedKey {
        let token = ApiKeyToken::from_entropy(entropy);
        let record = ApiKeyRecord {
            id: KeyId::generate(),
            org_id,
            name: request.name,
            prefix: token.display_prefix(),
            hash: self.hasher.hash(token.expose()),
            scopes: request.scopes,
            expires_at: request.expires_at,
            allowed_ips: request.allowed_ips,
            created_at: self.clock.now(),
            last_used_at: None,
            revoked_at: None,
        };
        MintedKey { record, token }
    }

    /// Mints a key for the caller's organization. The minting rule: every scope asked for must
    /// be held by the caller, and a key minted by a key stays within that key's limits (an
    /// expiry no later than its own, absent meaning its own; an allowlist inside its own,
    /// absent meaning its own).
    ///
    /// # Errors
    /// `ScopeNotHeld` naming what the caller lacks; `BeyondParentLimit` naming the limit;
    /// `Invalid` for a bad name or a past expiry.
    pub async fn mint_key(
        &self,
        caller: &Principal,
        request: MintKeyRequest,
        entropy: &[u8; KEY_RANDOM_LEN],
        journal: &(dyn Fn(&MintedKey) -> JournalEntry + Send + Sync),
    ) -> Result<MintedKey, AccessError> {
        let minted = self.prepare_key(caller, request, entropy).await?;
        self.store.insert_key(&minted.record, &journal(&minted)).await?;
        Ok(minted)
    }

    /// A key [`mint_key`](Self::mint_key) would mint, under the same rule, without storing it:
    /// for a use case that stores the key with its own writes, in its own transaction (an
    /// agent's credential).
    ///
    /// # Errors
    /// As [`mint_key`](Self::mint_key), without `Store` from the insert.
    pub async fn prepare_key(
        &self,
        caller: &Principal,
        mut request: MintKeyRequest,
        entropy: &[u8; KEY_RANDOM_LEN],
    ) -> Result<MintedKey, AccessError> {
        let missing = request.scopes.missing_from(&caller.scopes);
        if !missing.is_empty() {
            return Err(AccessError::ScopeNotHeld(missing));
        }
        validate_name(&request.name)?;
        if request.expires_at.is_some_and(|at| at <= self.clock.now()) {
            return Err(AccessError::Invalid { field: "expires_at", message: "must be in the future".into() });
        }
        if let Actor::ApiKey(parent) = caller.actor {
            let parent = self.store.find_key(caller.org_id, parent).await?.ok_or(AccessError::NotFound)?;
            request = within_parent_limits(&parent, request)?;
        }
        Ok(self.new_key(caller.org_id, request, entropy))
    }

    /// Forgets key `id` on this replica at once, after a use case revoked it in its own
    /// transaction (as [`revoke_key`](Self::revoke_key) does for its own).
    pub fn forget_revoked(&self, id: KeyId) {
        self.forget_key(id);
    }

    /// The organization's keys, newest first, without secrets.
    ///
    /// # Errors
    /// `Store` when the store fails.
    pub async fn list_keys(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<ApiKeyRecord>, AccessError> {
        Ok(self.store.list_keys(org_id, page).await?)
    }

    /// Revokes a key of the caller's organization, at once on this replica.
    ///
    /// # Errors
    /// `NotFound` when the organization has no such key.
    pub async fn revoke_key(&self, caller: &Principal, id: KeyId, journal: &JournalEntry) -> Result<ApiKeyRecord, AccessError> {
        let record = self.store.revoke_key(caller.org_id, id, self.clock.now(), journal).await?;
        self.forget_key(id);
        Ok(record)
    }

    /// Creates an organization and its admin key (every organization scope, plus `extra`
    /// scopes only an operator grants).
    ///
    /// # Errors
    /// `Invalid` for a bad name.
    pub async fn create_organization(
        &self,
        name: &str,
        extra: ScopeSet,
        entropy: &[u8; KEY_RANDOM_LEN],
        journal: &(dyn Fn(&NewOrganization) -> JournalEntry + Send + Sync),
    ) -> Result<NewOrganization, AccessError> {
        validate_name(name)?;
        let organization = Organization { id: OrgId::generate(), name: name.trim().to_owned(), created_at: self.clock.now() };
        let scopes = ScopeSet::organization_admin().iter().chain(extra.iter()).collect();
        let request = MintKeyRequest { name: "admin".into(), scopes, expires_at: None, allowed_ips: Vec::new() };
        let admin_key = self.new_key(organization.id, request, entropy);
        let created = NewOrganization { organization, admin_key };
        self.store.create_organization(&created.organization, &created.admin_key.record, &journal(&created)).await?;
        Ok(created)
    }

    /// Whether any organization exists yet.
    ///
    /// # Errors
    /// `Store` when the store fails.
    pub async fn has_organizations(&self) -> Result<bool, AccessError> {
        Ok(self.store.has_organizations().await?)
    }

    /// The first start: creates the default organization and its admin key, unless one exists
    /// (another replica may be starting on the same empty database at the same moment: of the
    /// two, one creates it and the other gets `None`).
    ///
    /// # Errors
    /// `Invalid` for a bad name; `Store` when the store fails.
    pub async fn create_default_organization(
        &self,
        name: &str,
        entropy: &[u8; KEY_RANDOM_LEN],
        journal: &(dyn Fn(&NewOrganization) -> JournalEntry + Send + Sync),
    ) -> Result<Option<NewOrganization>, AccessError> {
        if self.store.default_organization().await?.is_some() {
            return Ok(None);
        }
        validate_name(name)?;
        let organization = Organization { id: OrgId::generate(), name: name.trim().to_owned(), created_at: self.clock.now() };
        let request =
            MintKeyRequest { name: "admin".into(), scopes: ScopeSet::organization_admin(), expires_at: None, allowed_ips: Vec::new() };
        let admin_key = self.new_key(organization.id, request, entropy);
        let created = NewOrganization { organization, admin_key };
        let made = self.store.create_default_organization(&created.organization, &created.admin_key.record, &journal(&created)).await?;
        Ok(made.then_some(created))
    }

    /// Creates the first user (an admin) inside the default organization, with an admin key;
    /// only for a caller of the default organization holding `atlas.keys.write` (the key
    /// printed at first start), and refused once any user exists.
    ///
    /// # Errors
    /// `NotDefaultOrganization`, `ScopeNotHeld`, `AlreadyBootstrapped`, or `Invalid` for a bad
    /// email or a short password.
    pub async fn bootstrap(
        &self,
        caller: &Principal,
        request: BootstrapRequest,
        salt: &[u8; 16],
        entropy: &[u8; KEY_RANDOM_LEN],
        journal: &(dyn Fn(&Bootstrapped) -> JournalEntry + Send + Sync),
    ) -> Result<Bootstrapped, AccessError> {
        if !caller.has(Scope::KeysWrite) {
            return Err(AccessError::ScopeNotHeld(vec![Scope::KeysWrite]));
        }
        let organization = self.store.default_organization().await?.ok_or(AccessError::NotDefaultOrganization)?;
        if organization.id != caller.org_id {
            return Err(AccessError::NotDefaultOrganization);
        }
        let email = validate_email(&request.email)?;
        if request.password.chars().count() < 12 {
            return Err(AccessError::Invalid { field: "password", message: "must be at least 12 characters".into() });
        }
        let now = self.clock.now();
        let user = User {
            id: UserId::generate(),
            org_id: organization.id,
            email,
            username: request.username,
            password_hash: self.passwords.hash(request.password, *salt).await,
            role: Role::Admin,
            created_at: now,
        };
        let key_request =
            MintKeyRequest { name: "bootstrap admin".into(), scopes: Role::Admin.scopes(), expires_at: None, allowed_ips: Vec::new() };
        let admin_key = self.new_key(organization.id, key_request, entropy);
        let done = Bootstrapped { organization, user, admin_key };
        self.store.bootstrap(&done.user, &done.admin_key.record, &journal(&done)).await?;
        Ok(done)
    }

    fn new_refresh_token(&self, entropy: &[u8; 32]) -> (String, String, OffsetDateTime) {
        let token = format!("{REFRESH_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(entropy));
        let hash = self.hasher.hash(&token);
        (token, hash, self.clock.now() + REFRESH_LIFETIME)
    }

    /// Signs a user in with email and password and starts a refresh-token family.
    ///
    /// # Errors
    /// `BadCredentials` for an unknown email or a wrong password (the same answer for both).
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        entropy: &[u8; 32],
        journal: &(dyn Fn(&User) -> JournalEntry + Send + Sync),
    ) -> Result<IssuedSession, AuthError> {
        let user = self.store.find_user_by_email(&email.trim().to_lowercase()).await?;
        // An unknown email costs the same argon2 work as a wrong password.
        let phc = user.as_ref().map_or_else(|| DUMMY_PASSWORD_HASH.to_owned(), |u| u.password_hash.clone());
        let verified = self.passwords.verify(password.to_owned(), phc).await;
        let Some(user) = user.filter(|_| verified) else {
            return Err(AuthError::BadCredentials);
        };
        let (refresh_token, hash, refresh_expires_at) = self.new_refresh_token(entropy);
        let stored = RefreshToken {
            hash,
            family: RefreshFamilyId::generate(),
            user_id: user.id,
            org_id: user.org_id,
            created_at: self.clock.now(),
            expires_at: refresh_expires_at,
        };
        self.store.insert_refresh_token(&stored, &journal(&user)).await?;
        Ok(IssuedSession { user, refresh_token, refresh_expires_at })
    }

    /// Rotates a refresh token: the presented one dies and a successor is issued; presenting a
    /// dead one revokes its whole family (RFC 9700).
    ///
    /// # Errors
    /// `RefreshReused`, `Expired` or `Unknown`.
    pub async fn refresh(
        &self,
        presented: &str,
        entropy: &[u8; 32],
        journal: &(dyn for<'o> Fn(&'o RotateOutcome) -> JournalEntry + Send + Sync),
    ) -> Result<IssuedSession, AuthError> {
        if !presented.starts_with(REFRESH_TOKEN_PREFIX) || presented.len() > 128 {
            return Err(AuthError::Unknown);
        }
        let (refresh_token, next_hash, refresh_expires_at) = self.new_refresh_token(entropy);
        let outcome = self
            .store
            .rotate_refresh_token(&self.hasher.hash(presented), &next_hash, refresh_expires_at, self.clock.now(), journal)
            .await?;
        match outcome {
            RotateOutcome::Rotated { user, .. } => Ok(IssuedSession { user, refresh_token, refresh_expires_at }),
            RotateOutcome::Reused { .. } => Err(AuthError::RefreshReused),
            RotateOutcome::Expired => Err(AuthError::Expired),
            RotateOutcome::Unknown => Err(AuthError::Unknown),
        }
    }
}

/// The request, limited by the minting key's own limits: an absent expiry or allowlist becomes
/// the parent's; a later expiry or an address range outside the parent's allowlist is refused.
fn within_parent_limits(parent: &ApiKeyRecord, mut request: MintKeyRequest) -> Result<MintKeyRequest, AccessError> {
    if let Some(limit) = parent.expires_at {
        match request.expires_at {
            None => request.expires_at = Some(limit),
            Some(asked) if asked > limit => {
                return Err(AccessError::BeyondParentLimit {
                    limit: "expires_at",
                    message: "a key cannot mint a key that expires later than itself".into(),
                });
            }
            Some(_) => {}
        }
    }
    if !parent.allowed_ips.is_empty() {
        if request.allowed_ips.is_empty() {
            request.allowed_ips = parent.allowed_ips.clone();
        } else if let Some(wider) = request.allowed_ips.iter().find(|net| !parent.allowed_ips.iter().any(|p| p.contains(*net))) {
            return Err(AccessError::BeyondParentLimit {
                limit: "allowed_ips",
                message: format!("{wider} is not inside the minting key's IP allowlist"),
            });
        }
    }
    Ok(request)
}

fn validate_name(name: &str) -> Result<(), AccessError> {
    let len = name.trim().chars().count();
    if len == 0 || len > 200 {
        return Err(AccessError::Invalid { field: "name", message: "must be 1 to 200 characters".into() });
    }
    Ok(())
}

fn validate_email(email: &str) -> Result<String, AccessError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'))
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(AccessError::Invalid { field: "email", message: "must be an email address".into() })
    }
}

#[cfg(test)]
mod tests;
