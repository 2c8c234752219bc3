//! `outbox`: one row per queued outbound message, claimed by workers under a lease. A row is
//! due while `finished_at_us` is null and `next_attempt_at_us` has passed, and free while its
//! lease is null or over.

use sea_orm::entity::prelude::*;

/// One unit of delivery work.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub channel_id: Uuid,
    pub conversation_id: Uuid,
    /// Unique (`ux_outbox_message`).
    pub message_id: Uuid,
    /// E.164.
    pub recipient: String,
    /// The `OutboundContent` as JSON.
    #[sea_orm(column_type = "Text")]
    pub content: String,
    /// Attempts claimed so far.
    pub attempt: i32,
    pub queued_at_us: i64,
    pub next_attempt_at_us: i64,
    pub lease_until_us: Option<i64>,
    pub deadline_at_us: i64,
    pub finished_at_us: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error_code: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error_message: Option<String>,
    /// The send's run, finished with the row.
    pub run_id: Option<Uuid>,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
