//! The one place database failures are classified: a unique violation names the constraint
//! it hit (so `ux_users_email` becomes `EmailTaken`, the bootstrap guard
//! `AlreadyBootstrapped` and `ux_channels_org_phone_number_id` `Duplicate("channel")`); every
//! other failure becomes a `StoreError` saying what the store was doing.

use atlas_accounts::AccountError;
use atlas_conversations::ConversationError;
use atlas_idempotency::IdempotencyError;
use atlas_kernel::StoreError;
use atlas_runs::RunsError;
use sea_orm::{DbErr, SqlErr};

/// A unique constraint of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unique {
    UserEmail,
    BootstrapGuard,
    ApiKeyHash,
    RefreshTokenHash,
    RunId,
    IdempotencyKey,
    /// `ux_channels_org_phone_number_id`.
    ChannelPhoneNumberId,
    /// `ux_templates_org_name_language`.
    TemplateNameLanguage,
    /// `ux_cmdb_relationships_edge`.
    CmdbRelationship,
    /// `ux_change_approvals_approver`.
    ChangeApprover,
    /// A constraint this table does not list.
    Other,
}

/// How each constraint shows in a violation's message: PostgreSQL names the index or
/// constraint, SQLite the table and column.
const CONSTRAINTS: &[(Unique, [&str; 2])] = &[
    (Unique::UserEmail, ["\"ux_users_email\"", "users.email"]),
    (Unique::BootstrapGuard, ["\"platform_state_pkey\"", "platform_state.name"]),
    (Unique::ApiKeyHash, ["\"ux_api_keys_hash\"", "api_keys.hash"]),
    (Unique::RefreshTokenHash, ["\"ux_refresh_tokens_hash\"", "refresh_tokens.hash"]),
    (Unique::RunId, ["\"runs_pkey\"", "runs.id"]),
    (Unique::IdempotencyKey, ["\"idempotency_records_pkey\"", "idempotency_records.storage_key"]),
    (Unique::ChannelPhoneNumberId, ["\"ux_channels_org_phone_number_id\"", "channels.phone_number_id"]),
    (Unique::TemplateNameLanguage, ["\"ux_templates_org_name_language\"", "templates.language"]),
    (Unique::CmdbRelationship, ["\"ux_cmdb_relationships_edge\"", "cmdb_relationships.source_id"]),
    (Unique::ChangeApprover, ["\"ux_change_approvals_approver\"", "change_approvals.change_id"]),
];

/// A classified database failure.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A unique constraint refused the write.
    Conflict(Unique, StoreError),
    /// Anything else.
    Other(StoreError),
}

/// Classifies `err`, raised while the store was doing `context`.
pub(crate) fn classify(context: &'static str, err: DbErr) -> Failure {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(message)) => {
            let unique = CONSTRAINTS
                .iter()
                .find(|(_, needles)| needles.iter().any(|n| message.contains(n)))
                .map_or(Unique::Other, |(unique, _)| *unique);
            Failure::Conflict(unique, StoreError::new(context, err))
        }
        _ => Failure::Other(StoreError::new(context, err)),
    }
}

/// `classify` as a `map_err` argument: `.map_err(db("inserting the key"))?`.
pub(crate) fn db(context: &'static str) -> impl FnOnce(DbErr) -> Failure {
    move |err| classify(context, err)
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Other(e)
    }
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Conflict(_, e) | Failure::Other(e) => e,
        }
    }
}

impl From<Failure> for AccountError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Conflict(Unique::UserEmail, _) => AccountError::EmailTaken,
            Failure::Conflict(Unique::BootstrapGuard, _) => AccountError::AlreadyBootstrapped,
            other => AccountError::Store(other.into()),
        }
    }
}

impl From<Failure> for RunsError {
    fn from(f: Failure) -> Self {
        RunsError::Store(f.into())
    }
}

impl From<Failure> for IdempotencyError {
    fn from(f: Failure) -> Self {
        IdempotencyError::Store(f.into())
    }
}

impl From<Failure> for ConversationError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Conflict(Unique::ChannelPhoneNumberId, _) => ConversationError::Duplicate("channel"),
            Failure::Conflict(Unique::TemplateNameLanguage, _) => ConversationError::Duplicate("template"),
            other => ConversationError::Store(other.into()),
        }
    }
}
