//! `incident_timeline`: every change of an incident, numbered per incident.

use sea_orm::entity::prelude::*;

/// One timeline entry.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "incident_timeline")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub incident_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub sequence: i64,
    pub org_id: Uuid,
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub who: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub note: Option<String>,
    pub at_us: i64,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
