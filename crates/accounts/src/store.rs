//! The `AccountStore` port. Every method that changes something takes the call's
//! [`JournalEntry`] and commits it in the same transaction as the change.

use crate::{ApiKeyRecord, Organization, RefreshToken, RotateOutcome, User};
use async_trait::async_trait;
use atlas_kernel::{OrgId, Page, PageRequest, StoreError};
use atlas_runs::JournalEntry;
use atlas_scopes::KeyId;
use thiserror::Error;
use time::OffsetDateTime;

/// Failures of an account store.
#[derive(Debug, Error)]
pub enum AccountError {
    #[error("not found")]
    NotFound,
    #[error("a user already exists: bootstrap is closed")]
    AlreadyBootstrapped,
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where organizations, keys, users and refresh tokens live.
#[async_trait]
pub trait AccountStore: Send + Sync + std::fmt::Debug {
    /// Whether any organization exists (the first start creates the default one).
    async fn has_organizations(&self) -> Result<bool, AccountError>;

    /// Creates an organization with its first (admin) key, and the journal entry, atomically.
    async fn create_organization(&self, org: &Organization, admin_key: &ApiKeyRecord, journal: &JournalEntry) -> Result<(), AccountError>;

    /// Creates the default organization (the first start's) with its admin key, and the journal
    /// entry, atomically; only when no default organization exists. Of two replicas starting on
    /// one empty database at once, one creates it (`true`) and the other creates nothing
    /// (`false`).
    async fn create_default_organization(
        &self,
        org: &Organization,
        admin_key: &ApiKeyRecord,
        journal: &JournalEntry,
    ) -> Result<bool, AccountError>;

    /// The default organization: the one the first start created (on a database from before it
    /// was recorded, the oldest organization).
    async fn default_organization(&self) -> Result<Option<Organization>, AccountError>;

    /// Creates the first user, in its (existing) organization, with an admin key, only while no
    /// user exists. Two concurrent bootstraps cannot both succeed.
    ///
    /// # Errors
    /// `AlreadyBootstrapped` when a user exists.
    async fn bootstrap(&self, user: &User, key: &ApiKeyRecord, journal: &JournalEntry) -> Result<(), AccountError>;

    /// The organization's key with this id, revoked or not.
    async fn find_key(&self, org_id: OrgId, id: KeyId) -> Result<Option<ApiKeyRecord>, AccountError>;

    /// Stores a newly minted key.
    async fn insert_key(&self, key: &ApiKeyRecord, journal: &JournalEntry) -> Result<(), AccountError>;

    /// The organization's keys, newest first.
    async fn list_keys(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<ApiKeyRecord>, AccountError>;

    /// Revokes a key of the organization (revoking a revoked key changes nothing and succeeds).
    ///
    /// # Errors
    /// `NotFound` when the organization has no such key.
    async fn revoke_key(&self, org_id: OrgId, id: KeyId, at: OffsetDateTime, journal: &JournalEntry) -> Result<ApiKeyRecord, AccountError>;

    /// The key with this hash, revoked or not.
    async fn find_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, AccountError>;

    /// Records that a key was used.
    async fn touch_key(&self, id: KeyId, at: OffsetDateTime) -> Result<(), AccountError>;

    /// The user with this (lower-cased) email.
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, AccountError>;

    /// Stores a refresh token issued at sign-in (a new family), with the call's journal entry.
    async fn insert_refresh_token(&self, token: &RefreshToken, journal: &JournalEntry) -> Result<(), AccountError>;

    /// Presents a refresh token: when it is live, marks it used and stores `next_hash` (expiring
    /// at `next_expires_at`) in the same family; when it was already used or its family is
    /// revoked, revokes the whole family. The journal entry for the outcome commits with it.
    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        next_hash: &str,
        next_expires_at: OffsetDateTime,
        now: OffsetDateTime,
        journal: &(dyn for<'o> Fn(&'o RotateOutcome) -> JournalEntry + Send + Sync),
    ) -> Result<RotateOutcome, AccountError>;
}
