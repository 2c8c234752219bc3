//! `runbook_executions`: one per real run of a runbook, claimed and finished by the worker.

use sea_orm::entity::prelude::*;

/// One execution.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "runbook_executions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub runbook_id: Uuid,
    pub runbook_version: i64,
    pub incident_id: Option<Uuid>,
    pub status: String,
    pub plan_hash: String,
    /// JSON object, secrets redacted.
    #[sea_orm(column_type = "Text")]
    pub parameters: String,
    /// JSON array, secrets redacted.
    #[sea_orm(column_type = "Text")]
    pub steps: String,
    #[sea_orm(column_type = "Blob", nullable)]
    pub sealed_requests: Option<Vec<u8>>,
    pub attempts: i32,
    pub lease_until_us: Option<i64>,
    pub created_at_us: i64,
    pub started_at_us: Option<i64>,
    pub finished_at_us: Option<i64>,
    pub updated_at_us: i64,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
