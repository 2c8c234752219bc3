//! `idempotency_records`: one row per idempotency scope, by its storage key.

use sea_orm::entity::prelude::*;

/// The `state` of a claimed key whose request is executing.
pub const IN_PROGRESS: &str = "in_progress";
/// The `state` of a key whose outcome committed.
pub const COMPLETED: &str = "completed";

/// One idempotency record.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_records")]
pub struct Model {
    /// [`atlas_idempotency::IdempotencyScope::storage_key`].
    #[sea_orm(primary_key, auto_increment = false)]
    pub storage_key: String,
    pub org_id: Uuid,
    pub fingerprint: String,
    /// [`IN_PROGRESS`] or [`COMPLETED`].
    pub state: String,
    /// While in progress: when the claim counts as abandoned.
    pub lease_until_us: Option<i64>,
    pub response_status: Option<i32>,
    #[sea_orm(column_type = "Blob", nullable)]
    pub response_body: Option<Vec<u8>>,
    #[sea_orm(column_type = "Text", nullable)]
    pub response_location: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub response_etag: Option<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    /// The fence of the claim that holds (or held) the key: hex of its `ClaimToken`.
    pub claim_token: Option<String>,
    /// `response_body` is sealed under the server's secret key (it shows a secret).
    pub response_sealed: bool,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
