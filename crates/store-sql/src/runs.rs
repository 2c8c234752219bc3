//! `RunStore` for [`SqlStore`]: the audit log, listed newest first with a keyset cursor.

use crate::convert::{corrupt, from_us, to_us, to_us_ceil};
use crate::entity::runs;
use crate::error::db;
use crate::journal::write_journal;
use crate::SqlStore;
use async_trait::async_trait;
use atlas_kernel::{OrgId, Page, PageRequest, StoreError};
use atlas_runs::{JournalEntry, Run, RunError, RunFilter, RunId, RunStatus, RunStore, RunsError};
use atlas_scopes::{Actor, KeyId, UserId};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait, UpdateMany};
use time::OffsetDateTime;

/// The row that stores `run`.
pub(crate) fn run_row(run: &Run) -> runs::ActiveModel {
    let (actor_type, actor_id) = match run.actor {
        Actor::ApiKey(id) => ("api_key", Some(id.as_uuid())),
        Actor::User(id) => ("user", Some(id.as_uuid())),
        Actor::System => ("system", None),
    };
    runs::ActiveModel {
        id: Set(run.id.as_uuid()),
        org_id: Set(run.org_id.as_uuid()),
        actor_type: Set(actor_type.to_owned()),
        actor_id: Set(actor_id),
        operation: Set(run.operation.clone()),
        status: Set(run.status.as_str().to_owned()),
        request_id: Set(run.request_id.clone()),
        idempotency_key: Set(run.idempotency_key.clone()),
        resource_id: Set(run.resource_id.clone()),
        error_code: Set(run.error.as_ref().map(|e| e.code.clone())),
        error_message: Set(run.error.as_ref().map(|e| e.message.clone())),
        created_at_us: Set(to_us(run.created_at)),
        updated_at_us: Set(to_us(run.updated_at)),
    }
}

/// The run a row stores.
pub(crate) fn run_from_row(row: runs::Model) -> Result<Run, StoreError> {
    const CONTEXT: &str = "reading a run";
    let actor = match (row.actor_type.as_str(), row.actor_id) {
        ("api_key", Some(id)) => Actor::ApiKey(KeyId::from_uuid(id)),
        ("user", Some(id)) => Actor::User(UserId::from_uuid(id)),
        ("system", None) => Actor::System,
        (kind, _) => return Err(corrupt(CONTEXT, format!("run {} has an unreadable actor `{kind}`", row.id))),
    };
    let status =
        RunStatus::parse(&row.status).ok_or_else(|| corrupt(CONTEXT, format!("run {} has an unknown status `{}`", row.id, row.status)))?;
    let error = match (row.error_code, row.error_message) {
        (Some(code), message) => Some(RunError { code, message: message.unwrap_or_default() }),
        (None, _) => None,
    };
    Ok(Run {
        id: RunId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        actor,
        operation: row.operation,
        status,
        request_id: row.request_id,
        idempotency_key: row.idempotency_key,
        resource_id: row.resource_id,
        error,
        created_at: from_us(row.created_at_us)?,
        updated_at: from_us(row.updated_at_us)?,
    })
}

/// The `UPDATE` that moves the pending run `id` to `status` (a run already finished is left
/// alone). Shared by `finish` and the outbox, which finishes a send's run with its row.
pub(crate) fn finishing(
    org_id: OrgId,
    id: RunId,
    status: RunStatus,
    error: Option<RunError>,
    at: OffsetDateTime,
) -> UpdateMany<runs::Entity> {
    runs::Entity::update_many()
        .col_expr(runs::Column::Status, Expr::value(status.as_str()))
        .col_expr(runs::Column::ErrorCode, Expr::value(error.as_ref().map(|e| e.code.clone())))
        .col_expr(runs::Column::ErrorMessage, Expr::value(error.map(|e| e.message)))
        .col_expr(runs::Column::UpdatedAtUs, Expr::value(to_us(at)))
        .filter(runs::Column::OrgId.eq(org_id.as_uuid()))
        .filter(runs::Column::Id.eq(id.as_uuid()))
        .filter(runs::Column::Status.eq(RunStatus::Pending.as_str()))
}

/// Rows strictly after `cursor` in newest-first order: `(created_at, id) < (cursor.created_at,
/// cursor.id)`, spelled out so both backends evaluate it the same way.
pub(crate) fn before_cursor<C: ColumnTrait>(created_at: C, id: C, cursor: &atlas_kernel::Cursor) -> Condition {
    let at = to_us(cursor.created_at);
    Condition::any().add(created_at.lt(at)).add(Condition::all().add(created_at.eq(at)).add(id.lt(cursor.id)))
}

#[async_trait]
impl RunStore for SqlStore {
    async fn record(&self, entry: &JournalEntry) -> Result<(), RunsError> {
        let txn = self.db.begin().await.map_err(db("opening a transaction"))?;
        write_journal(&txn, entry).await?;
        txn.commit().await.map_err(db("committing the run"))?;
        Ok(())
    }

    async fn get(&self, org_id: OrgId, id: RunId) -> Result<Option<Run>, RunsError> {
        let row = runs::Entity::find()
            .filter(runs::Column::OrgId.eq(org_id.as_uuid()))
            .filter(runs::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading a run"))?;
        Ok(row.map(run_from_row).transpose()?)
    }

    async fn list(&self, org_id: OrgId, filter: &RunFilter, page: &PageRequest) -> Result<Page<Run>, RunsError> {
        let mut query = runs::Entity::find().filter(runs::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(operation) = &filter.operation {
            query = query.filter(runs::Column::Operation.eq(operation.as_str()));
        }
        if let Some(status) = filter.status {
            query = query.filter(runs::Column::Status.eq(status.as_str()));
        }
        if let Some(resource_id) = &filter.resource_id {
            query = query.filter(runs::Column::ResourceId.eq(resource_id.as_str()));
        }
        if let Some(after) = filter.created_after {
            query = query.filter(runs::Column::CreatedAtUs.gt(to_us(after)));
        }
        if let Some(before) = filter.created_before {
            query = query.filter(runs::Column::CreatedAtUs.lt(to_us_ceil(before)));
        }
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(runs::Column::CreatedAtUs, runs::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(runs::Column::CreatedAtUs)
            .order_by_desc(runs::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing runs"))?;
        let runs = rows.into_iter().map(run_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(runs, page, |r| (r.created_at, r.id.as_uuid())))
    }

    async fn finish(
        &self,
        org_id: OrgId,
        id: RunId,
        status: RunStatus,
        error: Option<RunError>,
        at: OffsetDateTime,
    ) -> Result<(), RunsError> {
        finishing(org_id, id, status, error, at).exec(&self.db).await.map_err(db("finishing a run"))?;
        Ok(())
    }
}
