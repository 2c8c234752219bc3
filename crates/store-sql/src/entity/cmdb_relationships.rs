//! `cmdb_relationships`: typed relationships; the source depends on the target.

use sea_orm::entity::prelude::*;

/// One row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cmdb_relationships")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub source_id: Uuid,
    pub target_id: Uuid,
    /// `depends_on`, `runs_on` or `connects_to`.
    #[sea_orm(column_name = "type")]
    pub kind: String,
    pub created_at_us: i64,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
