//! `webhook_deliveries`: one event bound for one endpoint (unique on both), its status, its
//! schedule and its lease. A delivery is due while it is `pending` and `next_attempt_at_us` has
//! passed, and free while its lease is null or over.

use sea_orm::entity::prelude::*;

/// One delivery.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Attempts claimed in all, replays included.
    pub attempt_count: i32,
    /// `attempt_count` when the current schedule began.
    pub schedule_base: i32,
    pub first_attempt_at_us: Option<i64>,
    /// Pending deliveries only.
    pub next_attempt_at_us: Option<i64>,
    pub lease_until_us: Option<i64>,
    pub created_at_us: i64,
    pub finished_at_us: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error_code: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error_message: Option<String>,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
