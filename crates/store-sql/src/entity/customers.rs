//! `customers`: one per (organization, phone number).

use sea_orm::entity::prelude::*;

/// One customer.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "customers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    /// E.164 (`+14155552671`); unique per organization (`ux_customers_org_phone_number`).
    pub phone_number: String,
    /// The latest WhatsApp profile name seen.
    #[sea_orm(column_type = "Text", nullable)]
    pub name: Option<String>,
    pub created_at_us: i64,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
