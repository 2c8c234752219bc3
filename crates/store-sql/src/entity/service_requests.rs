//! `service_requests`: requests made from the catalog.

use sea_orm::entity::prelude::*;

/// One row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "service_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub catalog_item_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub requested_by: String,
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub decided_by: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub comment: Option<String>,
    pub version: i64,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub decided_at_us: Option<i64>,
    pub fulfilled_at_us: Option<i64>,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
