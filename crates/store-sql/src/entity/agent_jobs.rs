//! `agent_jobs`: inbound messages for agents to answer, claimed under a lease.

use sea_orm::entity::prelude::*;

/// One row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_jobs")]
pub struct Model {
    /// The `atlas.event.received` event's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    /// The event's `data` (JSON).
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// `queued`, `done` or `failed`.
    pub state: String,
    pub attempts: i32,
    pub next_at_us: i64,
    pub lease_until_us: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub created_at_us: i64,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
