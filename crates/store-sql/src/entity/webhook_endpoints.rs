//! `webhook_endpoints`: subscriptions (where events go and which ones), their state, the
//! health the delivery queue keeps (`failing_since_us`) and their signing secrets, sealed.

use sea_orm::entity::prelude::*;

/// One endpoint.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    /// The `EventFilters` as a JSON array of strings.
    #[sea_orm(column_type = "Text")]
    pub filters: String,
    /// `enabled` or `disabled`.
    pub state: String,
    /// `by_user`, `gone` or `failing_for_24h` while disabled.
    pub disabled_reason: Option<String>,
    pub disabled_at_us: Option<i64>,
    pub failing_since_us: Option<i64>,
    /// The `SecretRotation` as JSON, sealed by the store's cipher (as is without one).
    #[sea_orm(column_type = "Blob")]
    pub sealed_secrets: Vec<u8>,
    pub version: i64,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
