//! `runbooks`: runbook definitions, versioned.

use sea_orm::entity::prelude::*;

/// One runbook.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "runbooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    /// JSON array.
    #[sea_orm(column_type = "Text")]
    pub parameters: String,
    /// JSON array.
    #[sea_orm(column_type = "Text")]
    pub steps: String,
    pub version: i64,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
