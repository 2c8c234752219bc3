//! `api_keys`: keys as stored, by their keyed hash (never the secret).

use sea_orm::entity::prelude::*;

/// One API key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub prefix: String,
    /// HMAC-SHA256 hex of the whole key; unique (`ux_api_keys_hash`).
    #[sea_orm(column_type = "Text")]
    pub hash: String,
    /// JSON array of scope names.
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    pub expires_at_us: Option<i64>,
    /// JSON array of CIDRs; empty means any address.
    #[sea_orm(column_type = "Text")]
    pub allowed_ips: String,
    pub created_at_us: i64,
    pub last_used_at_us: Option<i64>,
    pub revoked_at_us: Option<i64>,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
