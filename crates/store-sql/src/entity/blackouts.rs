//! `blackouts`: blackout windows.

use sea_orm::entity::prelude::*;

/// One row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "blackouts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    /// JSON array of `ci_…` ids.
    #[sea_orm(column_type = "Text")]
    pub ci_ids: String,
    pub start_us: i64,
    pub end_us: i64,
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    pub created_at_us: i64,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
