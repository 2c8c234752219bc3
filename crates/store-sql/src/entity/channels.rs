//! `channels`: connected WhatsApp (or sandbox) numbers, with their secrets sealed by the caller.

use sea_orm::entity::prelude::*;

/// One channel.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "channels")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    /// `whatsapp` or `sandbox`.
    pub provider: String,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// Unique per organization (`ux_channels_org_phone_number_id`).
    #[sea_orm(column_type = "Text")]
    pub phone_number_id: String,
    #[sea_orm(column_type = "Text")]
    pub display_phone_number: String,
    #[sea_orm(column_type = "Text")]
    pub verify_token: String,
    /// Opaque: encrypted by a `SecretCipher` before it reaches the store.
    #[sea_orm(column_type = "Blob")]
    pub sealed_secrets: Vec<u8>,
    /// At most one per organization (`ux_channels_org_default`, partial).
    pub is_default: bool,
    pub created_at_us: i64,
    /// Meta's WhatsApp Business Account id.
    #[sea_orm(column_type = "Text", nullable)]
    pub waba_id: Option<String>,
    /// Set when the channel was disconnected.
    pub disconnected_at_us: Option<i64>,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
