//! `drafts`: replies stored for a person to decide: `state` `pending`, `approved` (with the
//! `message_id` it queued) or `rejected` (with a `reason`).

use sea_orm::entity::prelude::*;

/// One draft.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "drafts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub conversation_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub text: String,
    pub created_at_us: i64,
    #[sea_orm(column_type = "Text")]
    pub state: String,
    pub message_id: Option<Uuid>,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    pub decided_at_us: Option<i64>,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
