//! `change_approvals`: one decision per approver and change, never replaced.

use sea_orm::entity::prelude::*;

/// One row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "change_approvals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub change_id: Uuid,
    pub approver: String,
    /// `approve` or `reject`.
    pub decision: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub comment: Option<String>,
    pub decided_at_us: i64,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
