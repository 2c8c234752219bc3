//! `cmdb_items`: configuration items.

use sea_orm::entity::prelude::*;

/// One row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cmdb_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    pub class: String,
    pub environment: Option<String>,
    /// A JSON object.
    #[sea_orm(column_type = "Text")]
    pub attributes: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
