//! `users`: people who sign in with email and password.

use sea_orm::entity::prelude::*;

/// One user.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    /// Lower-cased; unique across the platform (`ux_users_email`).
    #[sea_orm(column_type = "Text")]
    pub email: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub username: Option<String>,
    /// An argon2id PHC string.
    #[sea_orm(column_type = "Text")]
    pub password_hash: String,
    /// `admin`, `member` or `viewer`.
    #[sea_orm(column_type = "Text")]
    pub role: String,
    pub created_at_us: i64,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
