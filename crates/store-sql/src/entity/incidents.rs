//! `incidents`: one row per incident; `number` is its per-organization reference.

use sea_orm::entity::prelude::*;

/// One incident.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "incidents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub number: i64,
    #[sea_orm(column_type = "Text")]
    pub title: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    pub severity: String,
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub source: Option<String>,
    /// JSON array.
    #[sea_orm(column_type = "Text")]
    pub ci_ids: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub assignee: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub dedup_key: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub resolution_notes: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub resolved_by: Option<String>,
    pub version: i64,
    pub occurrences: i64,
    pub reopen_count: i64,
    pub last_sequence: i64,
    pub triggered_at_us: i64,
    pub opened_at_us: Option<i64>,
    pub acknowledged_at_us: Option<i64>,
    pub investigating_at_us: Option<i64>,
    pub resolved_at_us: Option<i64>,
    pub closed_at_us: Option<i64>,
    pub reopened_at_us: Option<i64>,
    pub last_occurrence_at_us: i64,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
