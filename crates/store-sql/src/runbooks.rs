//! `RunbookStore` for [`SqlStore`]: runbooks (replaced under a row lock, the version growing),
//! executions queued only while their runbook is still at the planned version (checked under
//! the runbook's row lock, so a concurrent replace makes the run `PlanStale`), claimed by the
//! worker with `FOR UPDATE SKIP LOCKED` under a lease, and finished once by the claim that holds
//! them (`attempts` is the claim's fencing token).
//!
//! An execution's real requests (secrets in place) are kept in `sealed_requests`, sealed by the
//! store's cipher (stored as is without one, which only tests do), and cleared when it finishes;
//! the API only ever shows the redacted steps.

use crate::conversations::{begin, commit, rollback};
use crate::convert::{corrupt, from_json, from_us, from_us_opt, to_json, to_us};
use crate::entity::{runbook_executions, runbooks};
use crate::error::{db, Failure};
use crate::journal::write_journal;
use crate::runs::before_cursor;
use crate::SqlStore;
use async_trait::async_trait;
use atlas_kernel::{OrgId, Page, PageRequest, StoreError};
use atlas_runbooks::{
    Claimed, Execution, ExecutionId, ExecutionStatus, PlannedRequest, Runbook, RunbookDraft, RunbookError, RunbookId, RunbookStore,
};
use atlas_runs::{Journal, JournalEntry};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

impl From<Failure> for RunbookError {
    fn from(f: Failure) -> Self {
        RunbookError::Store(f.into())
    }
}

/// What `sealed_requests` holds.
#[derive(Serialize, Deserialize)]
struct SealedRequests {
    requests: Vec<Option<PlannedRequest>>,
    secrets: Vec<String>,
}

fn runbook_row(r: &Runbook) -> Result<runbooks::ActiveModel, StoreError> {
    Ok(runbooks::ActiveModel {
        id: Set(r.id.as_uuid()),
        org_id: Set(r.org_id.as_uuid()),
        name: Set(r.name.clone()),
        description: Set(r.description.clone()),
        parameters: Set(to_json("writing a runbook's parameters", &r.parameters)?),
        steps: Set(to_json("writing a runbook's steps", &r.steps)?),
        version: Set(r.version),
        created_at_us: Set(to_us(r.created_at)),
        updated_at_us: Set(to_us(r.updated_at)),
    })
}

fn runbook_of(row: runbooks::Model) -> Result<Runbook, StoreError> {
    const CONTEXT: &str = "reading a runbook";
    Ok(Runbook {
        id: RunbookId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        name: row.name,
        description: row.description,
        parameters: from_json(CONTEXT, &row.parameters)?,
        steps: from_json(CONTEXT, &row.steps)?,
        version: row.version,
        created_at: from_us(row.created_at_us)?,
        updated_at: from_us(row.updated_at_us)?,
    })
}

fn execution_of(row: &runbook_executions::Model) -> Result<Execution, StoreError> {
    const CONTEXT: &str = "reading a runbook execution";
    Ok(Execution {
        id: ExecutionId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        runbook_id: RunbookId::from_uuid(row.runbook_id),
        runbook_version: row.runbook_version,
        incident_id: row.incident_id.map(incident_id_text),
        status: ExecutionStatus::parse(&row.status).ok_or_else(|| corrupt(CONTEXT, format!("status {}", row.status)))?,
        plan_hash: row.plan_hash.clone(),
        parameters: from_json(CONTEXT, &row.parameters)?,
        steps: from_json(CONTEXT, &row.steps)?,
        created_at: from_us(row.created_at_us)?,
        started_at: from_us_opt(row.started_at_us)?,
        finished_at: from_us_opt(row.finished_at_us)?,
    })
}

/// An incident id as the API shows it (`inc_…`), from the stored UUID.
fn incident_id_text(u: uuid::Uuid) -> String {
    atlas_incidents::IncidentId::from_uuid(u).to_string()
}

impl SqlStore {
    fn seal_requests(&self, sealed: &SealedRequests) -> Result<Vec<u8>, StoreError> {
        let plaintext = serde_json::to_vec(sealed).map_err(|e| StoreError::new("writing an execution's requests", e))?;
        Ok(match &self.secret_cipher {
            Some(cipher) => cipher.seal(&plaintext),
            None => plaintext,
        })
    }

    fn open_requests(&self, sealed: &[u8]) -> Result<SealedRequests, StoreError> {
        let unreadable = || corrupt("reading an execution's requests", "the sealed requests are unreadable".into());
        let plaintext = match &self.secret_cipher {
            Some(cipher) => cipher.open(sealed).map_err(|_| unreadable())?,
            None => sealed.to_vec(),
        };
        serde_json::from_slice(&plaintext).map_err(|_| unreadable())
    }
}

#[async_trait]
impl RunbookStore for SqlStore {
    async fn create_runbook(&self, runbook: &Runbook, journal: &dyn Journal<Runbook, JournalEntry>) -> Result<(), RunbookError> {
        let txn = begin(&self.db).await?;
        runbooks::Entity::insert(runbook_row(runbook)?).exec_without_returning(&txn).await.map_err(db("inserting a runbook"))?;
        write_journal(&txn, &journal.entry(runbook)).await?;
        commit(txn, "committing a runbook").await?;
        Ok(())
    }

    async fn replace_runbook(
        &self,
        org_id: OrgId,
        id: RunbookId,
        draft: &RunbookDraft,
        at: OffsetDateTime,
        journal: &dyn Journal<Runbook, JournalEntry>,
    ) -> Result<Runbook, RunbookError> {
        let txn = begin(&self.db).await?;
        let query =
            runbooks::Entity::find().filter(runbooks::Column::OrgId.eq(org_id.as_uuid())).filter(runbooks::Column::Id.eq(id.as_uuid()));
        let Some(row) = self.for_update(query).one(&txn).await.map_err(db("reading a runbook"))? else {
            rollback(txn).await?;
            return Err(RunbookError::NotFound);
        };
        let mut runbook = runbook_of(row)?;
        runbook.name = draft.name.clone();
        runbook.description = draft.description.clone();
        runbook.parameters = draft.parameters.clone();
        runbook.steps = draft.steps.clone();
        runbook.version += 1;
        runbook.updated_at = at;
        runbooks::Entity::update(runbook_row(&runbook)?).exec(&txn).await.map_err(db("replacing a runbook"))?;
        write_journal(&txn, &journal.entry(&runbook)).await?;
        commit(txn, "committing a runbook").await?;
        Ok(runbook)
    }

    async fn runbook(&self, org_id: OrgId, id: RunbookId) -> Result<Runbook, RunbookError> {
        let row = runbooks::Entity::find()
            .filter(runbooks::Column::OrgId.eq(org_id.as_uuid()))
            .filter(runbooks::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading a runbook"))?
            .ok_or(RunbookError::NotFound)?;
        Ok(runbook_of(row)?)
    }

    async fn runbooks(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Runbook>, RunbookError> {
        let mut query = runbooks::Entity::find().filter(runbooks::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(runbooks::Column::CreatedAtUs, runbooks::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(runbooks::Column::CreatedAtUs)
            .order_by_desc(runbooks::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing runbooks"))?;
        let items = rows.into_iter().map(runbook_of).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page, |r| (r.created_at, r.id.as_uuid())))
    }

    async fn enqueue(
        &self,
        execution: &Execution,
        requests: &[Option<PlannedRequest>],
        secrets: &[String],
        journal: &dyn Journal<Execution, JournalEntry>,
    ) -> Result<(), RunbookError> {
        let txn = begin(&self.db).await?;
        let query = runbooks::Entity::find()
            .filter(runbooks::Column::OrgId.eq(execution.org_id.as_uuid()))
            .filter(runbooks::Column::Id.eq(execution.runbook_id.as_uuid()));
        let Some(row) = self.for_update(query).one(&txn).await.map_err(db("reading a runbook"))? else {
            rollback(txn).await?;
            return Err(RunbookError::NotFound);
        };
        if row.version != execution.runbook_version {
            rollback(txn).await?;
            return Err(RunbookError::PlanStale {
                expected: execution.plan_hash.clone(),
                actual: format!("(the runbook is now at version {})", row.version),
            });
        }
        let sealed = self.seal_requests(&SealedRequests { requests: requests.to_vec(), secrets: secrets.to_vec() })?;
        let incident_id = execution
            .incident_id
            .as_deref()
            .map(|i| i.parse::<atlas_incidents::IncidentId>().map(|id| id.as_uuid()))
            .transpose()
            .map_err(|_| RunbookError::Invalid { field: "incident_id".into(), message: "not an incident id".into() })?;
        let at = to_us(execution.created_at);
        runbook_executions::Entity::insert(runbook_executions::ActiveModel {
            id: Set(execution.id.as_uuid()),
            org_id: Set(execution.org_id.as_uuid()),
            runbook_id: Set(execution.runbook_id.as_uuid()),
            runbook_version: Set(execution.runbook_version),
            incident_id: Set(incident_id),
            status: Set(execution.status.as_str().to_owned()),
            plan_hash: Set(execution.plan_hash.clone()),
            parameters: Set(to_json("writing an execution's parameters", &execution.parameters)?),
            steps: Set(to_json("writing an execution's steps", &execution.steps)?),
            sealed_requests: Set(Some(sealed)),
            attempts: Set(0),
            lease_until_us: Set(None),
            created_at_us: Set(at),
            started_at_us: Set(None),
            finished_at_us: Set(None),
            updated_at_us: Set(at),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(db("queueing an execution"))?;
        write_journal(&txn, &journal.entry(execution)).await?;
        commit(txn, "committing an execution").await?;
        Ok(())
    }

    async fn executions(&self, org_id: OrgId, runbook_id: RunbookId, page: &PageRequest) -> Result<Page<Execution>, RunbookError> {
        let mut query = runbook_executions::Entity::find()
            .filter(runbook_executions::Column::OrgId.eq(org_id.as_uuid()))
            .filter(runbook_executions::Column::RunbookId.eq(runbook_id.as_uuid()));
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(runbook_executions::Column::CreatedAtUs, runbook_executions::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(runbook_executions::Column::CreatedAtUs)
            .order_by_desc(runbook_executions::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing executions"))?;
        let items = rows.iter().map(execution_of).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page, |e| (e.created_at, e.id.as_uuid())))
    }

    async fn execution(&self, org_id: OrgId, id: ExecutionId) -> Result<Execution, RunbookError> {
        let row = runbook_executions::Entity::find()
            .filter(runbook_executions::Column::OrgId.eq(org_id.as_uuid()))
            .filter(runbook_executions::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading an execution"))?
            .ok_or(RunbookError::NotFound)?;
        Ok(execution_of(&row)?)
    }

    async fn claim(&self, now: OffsetDateTime, lease: Duration) -> Result<Option<Claimed>, RunbookError> {
        let now_us = to_us(now);
        let due = claimable_executions(now_us);
        // One statement, no transaction, when nothing waits (the idle case); the locking read
        // below decides.
        let waiting = look_for_a_waiting_execution(now_us)
            .into_tuple::<uuid::Uuid>()
            .one(&self.db)
            .await
            .map_err(db("looking for an execution to claim"))?;
        if waiting.is_none() {
            return Ok(None);
        }
        let txn = begin(&self.db).await?;
        let mut query = runbook_executions::Entity::find()
            .filter(runbook_executions::Column::FinishedAtUs.is_null())
            .filter(due)
            .order_by_asc(runbook_executions::Column::CreatedAtUs)
            .order_by_asc(runbook_executions::Column::Id)
            .limit(1);
        if self.is_postgres() {
            query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let Some(mut row) = query.one(&txn).await.map_err(db("claiming an execution"))? else {
            rollback(txn).await?;
            return Ok(None);
        };
        row.attempts += 1;
        row.status = ExecutionStatus::Running.as_str().to_owned();
        row.lease_until_us = Some(to_us(now + lease));
        row.started_at_us = row.started_at_us.or(Some(now_us));
        row.updated_at_us = now_us;
        runbook_executions::Entity::update(runbook_executions::ActiveModel {
            id: Set(row.id),
            status: Set(row.status.clone()),
            attempts: Set(row.attempts),
            lease_until_us: Set(row.lease_until_us),
            started_at_us: Set(row.started_at_us),
            updated_at_us: Set(row.updated_at_us),
            ..Default::default()
        })
        .exec(&txn)
        .await
        .map_err(db("claiming an execution"))?;
        commit(txn, "committing a claim").await?;
        let sealed = match &row.sealed_requests {
            Some(bytes) => self.open_requests(bytes)?,
            None => SealedRequests { requests: Vec::new(), secrets: Vec::new() },
        };
        Ok(Some(Claimed { execution: execution_of(&row)?, requests: sealed.requests, secrets: sealed.secrets, attempt: row.attempts }))
    }

    async fn finish(&self, execution: &Execution, attempt: i32, journal: &JournalEntry) -> Result<bool, RunbookError> {
        let txn = begin(&self.db).await?;
        let at = to_us(execution.finished_at.unwrap_or(execution.created_at));
        let done = runbook_executions::Entity::update_many()
            .set(runbook_executions::ActiveModel {
                status: Set(execution.status.as_str().to_owned()),
                steps: Set(to_json("writing an execution's steps", &execution.steps)?),
                sealed_requests: Set(None),
                lease_until_us: Set(None),
                finished_at_us: Set(Some(at)),
                updated_at_us: Set(at),
                ..Default::default()
            })
            .filter(runbook_executions::Column::Id.eq(execution.id.as_uuid()))
            .filter(runbook_executions::Column::Attempts.eq(attempt))
            .filter(runbook_executions::Column::FinishedAtUs.is_null())
            .exec(&txn)
            .await
            .map_err(db("finishing an execution"))?;
        if done.rows_affected != 1 {
            rollback(txn).await?;
            return Ok(false);
        }
        write_journal(&txn, journal).await?;
        commit(txn, "committing a finished execution").await?;
        Ok(true)
    }
}

/// The runbook worker's look for an execution to claim at `now_us`, one statement outside any
/// transaction (the idle case): an unfinished, claimable execution's id. Through the partial
/// index of unfinished executions, however many finished ones the table keeps
/// (`crate::plans`).
pub(crate) fn look_for_a_waiting_execution(now_us: i64) -> sea_orm::Select<runbook_executions::Entity> {
    runbook_executions::Entity::find()
        .select_only()
        .column(runbook_executions::Column::Id)
        .filter(runbook_executions::Column::FinishedAtUs.is_null())
        .filter(claimable_executions(now_us))
}

/// Which unfinished executions the runbook worker may claim at `now_us`: queued ones, and
/// running ones whose lease lapsed (their worker died).
fn claimable_executions(now_us: i64) -> Condition {
    Condition::any().add(runbook_executions::Column::Status.eq(ExecutionStatus::Queued.as_str())).add(
        Condition::all()
            .add(runbook_executions::Column::Status.eq(ExecutionStatus::Running.as_str()))
            .add(runbook_executions::Column::LeaseUntilUs.lt(now_us)),
    )
}
