//! `pending_statuses`: provider statuses that arrived before any message carried their
//! provider id, kept until `Outbox::complete` records the id (`ux_pending_statuses_event`
//! stores each event once).

use sea_orm::entity::prelude::*;

/// One kept status event.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pending_statuses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub provider_message_id: String,
    /// A `DeliveryState` wire name.
    pub state: String,
    /// The event's own time.
    pub at_us: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_code: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_message: Option<String>,
    /// When it arrived.
    pub created_at_us: i64,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
