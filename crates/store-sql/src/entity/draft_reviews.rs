//! `draft_reviews`: the decision of a person on a draft (one per draft).

use sea_orm::entity::prelude::*;

/// One row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "draft_reviews")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub draft_id: Uuid,
    pub org_id: Uuid,
    pub conversation_id: Uuid,
    pub state: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub text: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    pub message_id: Option<String>,
    pub decided_at_us: i64,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
