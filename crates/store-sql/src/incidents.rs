//! `IncidentStore` for [`SqlStore`]: a mutating call's steps, their writes and the journal in
//! one transaction; reads, lists with filters and keyset cursors, timelines.
//!
//! Races are settled by the database:
//! - the incidents a step designates are read `FOR UPDATE` on PostgreSQL, and a step keyed by a
//!   dedup key first takes a transaction-scoped advisory lock of (organization, dedup key), so
//!   two signals with one key, or two moves of one incident, are decided one after the other
//!   (a call takes all its dedup keys' locks first, in sorted order, so batches cannot deadlock):
//!   of two concurrent transitions from one state exactly one wins, the other sees the new
//!   state and is refused; on SQLite the one connection serialises all;
//! - a changed incident is written with a compare-and-set on its version (a lost race would
//!   change nothing and fail the call rather than overwrite);
//! - references come from `incident_sequences` by `INSERT … ON CONFLICT DO UPDATE SET
//!   last_number = last_number + 1`, whose row lock orders concurrent creates; a number is never
//!   handed out twice, and `ux_incidents_org_number` would refuse it if it were;
//! - timeline entries are keyed `(incident_id, sequence)`.

use crate::conversations::{begin, commit, rollback};
use crate::convert::{corrupt, from_json, from_us, from_us_opt, to_json, to_us, to_us_ceil};
use crate::entity::{incident_cis, incident_sequences, incident_timeline, incidents};
use crate::error::{db, Failure};
use crate::journal::write_journal;
use crate::runs::before_cursor;
use crate::SqlStore;
use async_trait::async_trait;
use atlas_incidents::{
    Applied, EntryKind, Incident, IncidentError, IncidentFilter, IncidentId, IncidentKey, IncidentStore, Plan, Reference, Severity, Status,
    Step, Target, TimelineEntry,
};
use atlas_kernel::{OrgId, Page, PageRequest, StoreError};
use atlas_runs::{Journal, JournalEntry};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Select, Statement,
};
use uuid::Uuid;

impl From<Failure> for IncidentError {
    fn from(f: Failure) -> Self {
        IncidentError::Store(f.into())
    }
}

fn incident_row(i: &Incident) -> Result<incidents::ActiveModel, StoreError> {
    Ok(incidents::ActiveModel {
        id: Set(i.id.as_uuid()),
        org_id: Set(i.org_id.as_uuid()),
        number: Set(i64::try_from(i.reference.0).unwrap_or(i64::MAX)),
        title: Set(i.title.clone()),
        description: Set(i.description.clone()),
        severity: Set(i.severity.as_str().to_owned()),
        status: Set(i.status.as_str().to_owned()),
        source: Set(i.source.clone()),
        ci_ids: Set(to_json("writing an incident's items", &i.ci_ids)?),
        assignee: Set(i.assignee.clone()),
        dedup_key: Set(i.dedup_key.clone()),
        resolution_notes: Set(i.resolution_notes.clone()),
        resolved_by: Set(i.resolved_by.clone()),
        version: Set(i.version),
        occurrences: Set(i.occurrences),
        reopen_count: Set(i.reopen_count),
        last_sequence: Set(i.last_sequence),
        triggered_at_us: Set(to_us(i.triggered_at)),
        opened_at_us: Set(i.opened_at.map(to_us)),
        acknowledged_at_us: Set(i.acknowledged_at.map(to_us)),
        investigating_at_us: Set(i.investigating_at.map(to_us)),
        resolved_at_us: Set(i.resolved_at.map(to_us)),
        closed_at_us: Set(i.closed_at.map(to_us)),
        reopened_at_us: Set(i.reopened_at.map(to_us)),
        last_occurrence_at_us: Set(to_us(i.last_occurrence_at)),
        created_at_us: Set(to_us(i.created_at)),
        updated_at_us: Set(to_us(i.updated_at)),
    })
}

fn incident_of(row: incidents::Model) -> Result<Incident, StoreError> {
    const CONTEXT: &str = "reading an incident";
    Ok(Incident {
        id: IncidentId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        reference: Reference(u64::try_from(row.number).map_err(|_| corrupt(CONTEXT, format!("incident number {}", row.number)))?),
        title: row.title,
        description: row.description,
        severity: Severity::parse(&row.severity).ok_or_else(|| corrupt(CONTEXT, format!("severity {}", row.severity)))?,
        status: Status::parse(&row.status).ok_or_else(|| corrupt(CONTEXT, format!("status {}", row.status)))?,
        source: row.source,
        ci_ids: from_json(CONTEXT, &row.ci_ids)?,
        assignee: row.assignee,
        dedup_key: row.dedup_key,
        resolution_notes: row.resolution_notes,
        resolved_by: row.resolved_by,
        version: row.version,
        occurrences: row.occurrences,
        reopen_count: row.reopen_count,
        last_sequence: row.last_sequence,
        triggered_at: from_us(row.triggered_at_us)?,
        opened_at: from_us_opt(row.opened_at_us)?,
        acknowledged_at: from_us_opt(row.acknowledged_at_us)?,
        investigating_at: from_us_opt(row.investigating_at_us)?,
        resolved_at: from_us_opt(row.resolved_at_us)?,
        closed_at: from_us_opt(row.closed_at_us)?,
        reopened_at: from_us_opt(row.reopened_at_us)?,
        last_occurrence_at: from_us(row.last_occurrence_at_us)?,
        created_at: from_us(row.created_at_us)?,
        updated_at: from_us(row.updated_at_us)?,
    })
}

fn entry_row(org_id: Uuid, e: &TimelineEntry) -> incident_timeline::ActiveModel {
    incident_timeline::ActiveModel {
        incident_id: Set(e.incident_id.as_uuid()),
        sequence: Set(e.sequence),
        org_id: Set(org_id),
        kind: Set(e.kind.as_str().to_owned()),
        who: Set(e.who.clone()),
        from_status: Set(e.from.map(|s| s.as_str().to_owned())),
        to_status: Set(e.to.map(|s| s.as_str().to_owned())),
        note: Set(e.note.clone()),
        at_us: Set(to_us(e.at)),
    }
}

fn entry_of(row: incident_timeline::Model) -> Result<TimelineEntry, StoreError> {
    const CONTEXT: &str = "reading a timeline entry";
    let status = |s: Option<String>| -> Result<Option<Status>, StoreError> {
        s.map(|s| Status::parse(&s).ok_or_else(|| corrupt(CONTEXT, format!("status {s}")))).transpose()
    };
    Ok(TimelineEntry {
        incident_id: IncidentId::from_uuid(row.incident_id),
        sequence: row.sequence,
        kind: EntryKind::parse(&row.kind).ok_or_else(|| corrupt(CONTEXT, format!("kind {}", row.kind)))?,
        who: row.who,
        from: status(row.from_status)?,
        to: status(row.to_status)?,
        note: row.note,
        at: from_us(row.at_us)?,
    })
}

fn by_key(org_id: OrgId, key: IncidentKey) -> Select<incidents::Entity> {
    let query = incidents::Entity::find().filter(incidents::Column::OrgId.eq(org_id.as_uuid()));
    match key {
        IncidentKey::Id(id) => query.filter(incidents::Column::Id.eq(id.as_uuid())),
        IncidentKey::Reference(r) => query.filter(incidents::Column::Number.eq(i64::try_from(r.0).unwrap_or(i64::MAX))),
    }
}

fn filtered(org_id: OrgId, filter: &IncidentFilter) -> Select<incidents::Entity> {
    let mut query = incidents::Entity::find().filter(incidents::Column::OrgId.eq(org_id.as_uuid()));
    if let Some(s) = filter.status {
        query = query.filter(incidents::Column::Status.eq(s.as_str()));
    }
    if let Some(s) = filter.severity {
        query = query.filter(incidents::Column::Severity.eq(s.as_str()));
    }
    if let Some(s) = &filter.source {
        query = query.filter(incidents::Column::Source.eq(s.as_str()));
    }
    if let Some(from) = filter.from {
        query = query.filter(incidents::Column::TriggeredAtUs.gte(to_us_ceil(from)));
    }
    if let Some(to) = filter.to {
        query = query.filter(incidents::Column::TriggeredAtUs.lt(to_us_ceil(to)));
    }
    if let Some(ci) = &filter.ci_id {
        let named = Query::select()
            .column(incident_cis::Column::IncidentId)
            .from(incident_cis::Entity)
            .and_where(incident_cis::Column::OrgId.eq(org_id.as_uuid()))
            .and_where(incident_cis::Column::CiId.eq(ci.as_str()))
            .to_owned();
        query = query.filter(incidents::Column::Id.in_subquery(named));
    }
    query
}

impl SqlStore {
    fn lock_rows<E: EntityTrait>(&self, query: Select<E>) -> Select<E> {
        self.for_update(query)
    }

    async fn lock_dedup_key(&self, txn: &DatabaseTransaction, org_id: Uuid, key: &str) -> Result<(), Failure> {
        if self.is_postgres() {
            txn.execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                [format!("atlas.incident_dedup:{org_id}:{key}").into()],
            ))
            .await
            .map_err(db("locking a dedup key"))?;
        }
        Ok(())
    }

    /// The incidents `target` designates, locked.
    async fn designated(&self, txn: &DatabaseTransaction, org_id: OrgId, target: &Target) -> Result<Vec<Incident>, IncidentError> {
        let rows = match target {
            Target::Nothing => Vec::new(),
            Target::DedupKey(key) => {
                self.lock_dedup_key(txn, org_id.as_uuid(), key).await?;
                let query = incidents::Entity::find()
                    .filter(incidents::Column::OrgId.eq(org_id.as_uuid()))
                    .filter(incidents::Column::DedupKey.eq(key.as_str()))
                    .filter(incidents::Column::Status.ne(Status::Closed.as_str()));
                self.lock_rows(query).all(txn).await.map_err(db("reading the incidents of a dedup key"))?
            }
            Target::Incident(key) => self.lock_rows(by_key(org_id, *key)).all(txn).await.map_err(db("reading an incident"))?,
        };
        rows.into_iter().map(|r| incident_of(r).map_err(IncidentError::from)).collect()
    }

    /// The organization's next incident number.
    async fn next_number(&self, txn: &DatabaseTransaction, org_id: OrgId) -> Result<u64, IncidentError> {
        let row =
            incident_sequences::Entity::insert(incident_sequences::ActiveModel { org_id: Set(org_id.as_uuid()), last_number: Set(1) })
                .on_conflict(
                    OnConflict::column(incident_sequences::Column::OrgId)
                        .value(
                            incident_sequences::Column::LastNumber,
                            Expr::col((incident_sequences::Entity, incident_sequences::Column::LastNumber)).add(1),
                        )
                        .to_owned(),
                )
                .exec_with_returning(txn)
                .await
                .map_err(db("numbering an incident"))?;
        u64::try_from(row.last_number).map_err(|_| IncidentError::Store(corrupt("numbering an incident", "negative number".into())))
    }

    async fn write_plan(&self, txn: &DatabaseTransaction, org_id: OrgId, plan: Plan) -> Result<Applied, IncidentError> {
        match plan {
            Plan::Nothing { outcome, reason, incident } => {
                Ok(Applied { outcome, incident: incident.map(|i| *i), entries: Vec::new(), reason: Some(reason) })
            }
            Plan::Create(new) => {
                let number = self.next_number(txn, org_id).await?;
                let (incident, entry) = new.build(Reference(number));
                incidents::Entity::insert(incident_row(&incident)?)
                    .exec_without_returning(txn)
                    .await
                    .map_err(db("inserting an incident"))?;
                self.write_cis(txn, &incident).await?;
                self.write_entries(txn, org_id, std::slice::from_ref(&entry)).await?;
                Ok(Applied { outcome: atlas_incidents::Outcome::Created, incident: Some(incident), entries: vec![entry], reason: None })
            }
            Plan::Change { incident, previous_version, entries, outcome } => {
                let mut row = incident_row(&incident)?;
                row.id = sea_orm::ActiveValue::NotSet;
                row.org_id = sea_orm::ActiveValue::NotSet;
                row.number = sea_orm::ActiveValue::NotSet;
                let done = incidents::Entity::update_many()
                    .set(row)
                    .filter(incidents::Column::OrgId.eq(org_id.as_uuid()))
                    .filter(incidents::Column::Id.eq(incident.id.as_uuid()))
                    .filter(incidents::Column::Version.eq(previous_version))
                    .exec(txn)
                    .await
                    .map_err(db("updating an incident"))?;
                if done.rows_affected != 1 {
                    return Err(IncidentError::VersionConflict { expected: previous_version, current: incident.version });
                }
                self.write_entries(txn, org_id, &entries).await?;
                Ok(Applied { outcome, incident: Some(*incident), entries, reason: None })
            }
        }
    }

    async fn write_cis(&self, txn: &DatabaseTransaction, incident: &Incident) -> Result<(), Failure> {
        let mut seen = std::collections::BTreeSet::new();
        let rows: Vec<_> = incident
            .ci_ids
            .iter()
            .filter(|c| seen.insert(c.as_str()))
            .map(|c| incident_cis::ActiveModel {
                incident_id: Set(incident.id.as_uuid()),
                ci_id: Set(c.clone()),
                org_id: Set(incident.org_id.as_uuid()),
            })
            .collect();
        if !rows.is_empty() {
            incident_cis::Entity::insert_many(rows).exec_without_returning(txn).await.map_err(db("recording an incident's items"))?;
        }
        Ok(())
    }

    async fn write_entries(&self, txn: &DatabaseTransaction, org_id: OrgId, entries: &[TimelineEntry]) -> Result<(), Failure> {
        if !entries.is_empty() {
            incident_timeline::Entity::insert_many(entries.iter().map(|e| entry_row(org_id.as_uuid(), e)))
                .exec_without_returning(txn)
                .await
                .map_err(db("writing the timeline"))?;
        }
        Ok(())
    }

    async fn apply_steps(&self, txn: &DatabaseTransaction, org_id: OrgId, steps: &[Step<'_>]) -> Result<Vec<Applied>, IncidentError> {
        // Every dedup key's lock first, in one order, so two batches naming the same keys in
        // different orders cannot deadlock (the locks are re-entrant within the transaction).
        let keys: std::collections::BTreeSet<&str> = steps
            .iter()
            .filter_map(|s| match &s.target {
                Target::DedupKey(k) => Some(k.as_str()),
                _ => None,
            })
            .collect();
        for key in keys {
            self.lock_dedup_key(txn, org_id.as_uuid(), key).await?;
        }
        let mut applied = Vec::with_capacity(steps.len());
        for step in steps {
            let found = self.designated(txn, org_id, &step.target).await?;
            let plan = (step.decide)(&found)?;
            applied.push(self.write_plan(txn, org_id, plan).await?);
        }
        Ok(applied)
    }
}

#[async_trait]
impl IncidentStore for SqlStore {
    async fn apply(
        &self,
        org_id: OrgId,
        steps: &[Step<'_>],
        journal: &dyn Journal<Vec<Applied>, JournalEntry>,
    ) -> Result<Vec<Applied>, IncidentError> {
        let txn = begin(&self.db).await?;
        match self.apply_steps(&txn, org_id, steps).await {
            Ok(applied) => {
                write_journal(&txn, &journal.entry(&applied)).await?;
                commit(txn, "committing an incident change").await?;
                Ok(applied)
            }
            Err(e) => {
                rollback(txn).await?;
                Err(e)
            }
        }
    }

    async fn get(&self, org_id: OrgId, key: IncidentKey) -> Result<Incident, IncidentError> {
        let row = by_key(org_id, key).one(&self.db).await.map_err(db("reading an incident"))?.ok_or(IncidentError::NotFound)?;
        Ok(incident_of(row)?)
    }

    async fn list(&self, org_id: OrgId, filter: &IncidentFilter, page: &PageRequest) -> Result<Page<Incident>, IncidentError> {
        let mut query = filtered(org_id, filter);
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(incidents::Column::CreatedAtUs, incidents::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(incidents::Column::CreatedAtUs)
            .order_by_desc(incidents::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing incidents"))?;
        let items = rows.into_iter().map(incident_of).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page, |i| (i.created_at, i.id.as_uuid())))
    }

    async fn matching(&self, org_id: OrgId, filter: &IncidentFilter, limit: u64) -> Result<Vec<Incident>, IncidentError> {
        let rows = filtered(org_id, filter)
            .order_by_asc(incidents::Column::TriggeredAtUs)
            .order_by_asc(incidents::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(db("reading incidents for metrics"))?;
        Ok(rows.into_iter().map(incident_of).collect::<Result<Vec<_>, _>>()?)
    }

    async fn timeline(&self, org_id: OrgId, key: IncidentKey) -> Result<Vec<TimelineEntry>, IncidentError> {
        let incident = self.get(org_id, key).await?;
        let rows = incident_timeline::Entity::find()
            .filter(incident_timeline::Column::OrgId.eq(org_id.as_uuid()))
            .filter(incident_timeline::Column::IncidentId.eq(incident.id.as_uuid()))
            .order_by_asc(incident_timeline::Column::Sequence)
            .all(&self.db)
            .await
            .map_err(db("reading a timeline"))?;
        Ok(rows.into_iter().map(entry_of).collect::<Result<Vec<_>, _>>()?)
    }
}
