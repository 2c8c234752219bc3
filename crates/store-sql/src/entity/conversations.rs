//! `conversations`: one per (organization, channel, customer)
//! (`ux_conversations_org_channel_customer`).

use sea_orm::entity::prelude::*;

/// One conversation.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub channel_id: Uuid,
    pub customer_id: Uuid,
    /// `open`, `handed_off` or `closed`.
    pub status: String,
    /// The latest inbound message's own timestamp.
    pub last_inbound_at_us: Option<i64>,
    pub created_at_us: i64,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
