//! `templates`: registered message templates, unique per (organization, name, language).

use sea_orm::entity::prelude::*;

/// One template.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "templates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub language: String,
    /// `utility`, `marketing` or `authentication`.
    pub category: String,
    /// `approved`, `pending` or `rejected`.
    pub status: String,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    pub created_at_us: i64,
    /// Meta's components (JSON text).
    #[sea_orm(column_type = "Text", nullable)]
    pub components: Option<String>,
    /// The channel whose account the template came from.
    pub channel_id: Option<Uuid>,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
