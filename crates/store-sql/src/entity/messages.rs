//! `messages`: inbound and outbound messages, with the delivery state of outbound ones.

use sea_orm::entity::prelude::*;

/// One message.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub conversation_id: Uuid,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// A `MessageKind` wire name (`text`, `template`, `image`, `interactive`…).
    pub kind: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub text: Option<String>,
    /// The template sent (`MessageTemplate`) as JSON.
    #[sea_orm(column_type = "Text", nullable)]
    pub template: Option<String>,
    /// Unique per organization when present (`ux_messages_org_provider_message_id`).
    #[sea_orm(column_type = "Text", nullable)]
    pub provider_message_id: Option<String>,
    /// Outbound only: a `DeliveryState` wire name.
    pub delivery_state: Option<String>,
    pub sent_at_us: Option<i64>,
    pub delivered_at_us: Option<i64>,
    pub read_at_us: Option<i64>,
    pub failed_at_us: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_code: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_message: Option<String>,
    pub created_at_us: i64,
    /// `MessageContent` as JSON (media, location, contacts, replies, reactions…).
    #[sea_orm(column_type = "Text", nullable)]
    pub content: Option<String>,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
