//! `changes`: change requests (their approvals in `change_approvals`).

use sea_orm::entity::prelude::*;

/// One row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "changes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub title: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    #[sea_orm(column_name = "type")]
    pub kind: String,
    pub risk_level: String,
    pub status: String,
    pub requested_start_us: Option<i64>,
    pub requested_end_us: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub implementation_plan: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub rollback_plan: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub requested_by: Option<String>,
    /// JSON array of `ci_…` ids.
    #[sea_orm(column_type = "Text")]
    pub ci_ids: String,
    pub quorum: i32,
    pub version: i64,
    /// JSON object of the transition times.
    #[sea_orm(column_type = "Text")]
    pub status_times: String,
    pub implementing_at_us: Option<i64>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
