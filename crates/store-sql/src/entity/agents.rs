//! `agents`: AI agents (hosted or external), their maturity, what they serve, the sealed model API key.

use sea_orm::entity::prelude::*;

/// One row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub role: String,
    pub kind: String,
    pub maturity_level: String,
    pub status: String,
    /// A JSON object (`channel_ids`, `conversation_ids`).
    #[sea_orm(column_type = "Text")]
    pub serves: String,
    /// A JSON object (hosted agents).
    #[sea_orm(column_type = "Text", nullable)]
    pub hosted: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub url: Option<String>,
    pub key_id: Option<Uuid>,
    /// An external agent's own webhook endpoint (its events are addressed there).
    pub endpoint_id: Option<Uuid>,
    pub sealed_api_key: Option<Vec<u8>>,
    pub version: i64,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
