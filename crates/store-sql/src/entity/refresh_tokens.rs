//! `refresh_tokens`: refresh tokens by keyed hash, grouped in families. A token is live while
//! `used_at_us` and `revoked_at_us` are both null and it has not expired.

use sea_orm::entity::prelude::*;

/// One refresh token.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    /// HMAC-SHA256 hex of the token; unique (`ux_refresh_tokens_hash`).
    #[sea_orm(column_type = "Text")]
    pub hash: String,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    /// Set when the token was rotated.
    pub used_at_us: Option<i64>,
    /// Set when its family was revoked.
    pub revoked_at_us: Option<i64>,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
