//! `webhook_events`: the outbox of events for subscribers, one row per event, written in the
//! transaction of the change it is news of and expanded into deliveries by fan-out. A row is
//! undispatched while `fanned_out_at_us` is null; ids are UUIDv7, so id order is creation order.

use sea_orm::entity::prelude::*;

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    /// The event type (`incident.created`, …), in the column `type`.
    #[sea_orm(column_name = "type")]
    pub event_type: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub resource_id: Option<String>,
    /// The resource's version after the change.
    pub version: i64,
    pub occurred_at_us: i64,
    /// The exact body of every delivery (`{"type", "timestamp", "data"}` as JSON bytes).
    #[sea_orm(column_type = "Blob")]
    pub payload: Vec<u8>,
    pub fanned_out_at_us: Option<i64>,
    /// The one endpoint the event is addressed to; `NULL`: every endpoint whose filters match.
    pub endpoint_id: Option<Uuid>,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
