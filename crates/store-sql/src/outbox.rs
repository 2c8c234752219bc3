//! `Outbox` for [`SqlStore`]: the `outbox` rows `enqueue_outbound` queues beside their
//! messages, claimed by workers under a lease, and their outcomes (`complete`, `retry`,
//! `fail`), each in one transaction with the message's delivery state, the send's run and the
//! webhook events of both (`agent.message_delivery` when the message's delivery state changed,
//! `atlas.run.updated` when the run finished).
//!
//! A claim chooses due, unleased, unfinished rows fairly (at most `per_channel` leased per
//! channel, channels and organizations taking turns, oldest first within a turn: see
//! `crate::fair`) and locks them; on PostgreSQL in one statement (choose, lock with
//! `FOR UPDATE SKIP LOCKED`, lease, mark the messages `sending`), so concurrent claimers each
//! take different rows and never wait for one another, and a claim that finds nothing is one
//! statement; on SQLite without the lock clause, the one connection serialising claims.
//! The lease it writes keeps the row from every other claim until it lapses.
//!
//! Fencing: `complete`, `retry` and `fail` act only for the worker that still holds the row,
//! the one whose claim made the row's current attempt (the attempt number is the lease token).
//! A worker whose lease lapsed and whose row was claimed again gets `Conflict` and changes
//! nothing, so a slow send can never finish (or fail) a row another worker now owns.
//!
//! Retention: `purge_finished` removes finished rows past retention and
//! `purge_pending_statuses` the statuses kept for provider ids no send ever recorded, each by
//! ids chosen first (a bounded batch per call, on an index: `m20250101_000010_retention`).
//!
//! Crash semantics (at-least-once, as the port says): a worker that dies after the provider
//! accepted a send but before `complete` committed leaves its row leased; when the lease lapses
//! the row is claimed again and sent again.

use crate::conversations::{
    begin, commit, deliveries_update, delivery_update, message_from_row, pending_event, per_row, phone_from_column, rollback,
};
use crate::convert::{corrupt, from_json, from_us, to_json, to_us};
use crate::entity::{messages, outbox, pending_statuses, runs};
use crate::error::{db, Failure};
use crate::events::{message_delivery_event, run_finished_event};
use crate::fair::FairClaim;
use crate::journal::{event_row, insert_event_rows, insert_events};
use crate::runs::{finishing, run_from_row};
use crate::SqlStore;
use async_trait::async_trait;
use atlas_conversations::{
    ChannelId, Completion, ConversationError, ConversationId, DeliveryRecord, DeliveryState, Message, MessageError, MessageId, NewOutbound,
    OutboundContent, Outbox, OutboxId, OutboxItem, StatusEvent,
};
use atlas_kernel::{OrgId, StoreError};
use atlas_runs::{OutboxEvent, RunError, RunId, RunStatus};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement,
};
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How a claim chooses rows: at most the channel's cap leased at once, channels and
/// organizations taking turns (see `crate::fair`).
pub(crate) const FAIR_ROWS: FairClaim = FairClaim {
    table: "outbox",
    target: "channel_id",
    joins: "",
    open: "d.finished_at_us IS NULL",
    claimable: "d.finished_at_us IS NULL AND d.next_attempt_at_us <= {now} AND (d.lease_until_us IS NULL OR d.lease_until_us <= {now})",
    leased: "finished_at_us IS NULL AND lease_until_us > {now}",
    order: "next_attempt_at_us, id",
};

/// The outbox's next due instant (`Outbox::next_due`): over the unfinished rows alone, through
/// the partial due index, however many finished rows the table keeps (`crate::plans`).
pub(crate) const OUTBOX_NEXT_DUE: &str = "SELECT MIN(CASE WHEN lease_until_us IS NOT NULL AND lease_until_us > next_attempt_at_us \
     THEN lease_until_us ELSE next_attempt_at_us END) AS due FROM outbox WHERE finished_at_us IS NULL";

/// Inserts the outbox row of `outbound` (attempt 0, due at once), linked to the send's run,
/// through `txn` (the enqueue's transaction).
pub(crate) async fn insert_row(
    txn: &DatabaseTransaction,
    outbound: &NewOutbound,
    conversation_id: ConversationId,
    run_id: RunId,
) -> Result<(), Failure> {
    outbox::Entity::insert(outbox::ActiveModel {
        id: Set(outbound.outbox_id.as_uuid()),
        org_id: Set(outbound.org_id.as_uuid()),
        channel_id: Set(outbound.channel_id.as_uuid()),
        conversation_id: Set(conversation_id.as_uuid()),
        message_id: Set(outbound.message_id.as_uuid()),
        recipient: Set(outbound.to.as_str().to_owned()),
        content: Set(to_json("writing an outbound message's content", &outbound.content)?),
        attempt: Set(0),
        queued_at_us: Set(to_us(outbound.queued_at)),
        next_attempt_at_us: Set(to_us(outbound.queued_at)),
        lease_until_us: Set(None),
        deadline_at_us: Set(to_us(outbound.deadline)),
        finished_at_us: Set(None),
        last_error_code: Set(None),
        last_error_message: Set(None),
        run_id: Set(Some(run_id.as_uuid())),
    })
    .exec_without_returning(txn)
    .await
    .map_err(db("inserting the outbox row"))?;
    Ok(())
}

/// The item a claimed row hands to its worker: the row as the claim left it.
/// Inserts the outbox row of a read receipt unless the message already has one (the unique
/// `ux_outbox_message` decides); true when inserted.
pub(crate) async fn insert_row_once(
    txn: &DatabaseTransaction,
    outbound: &NewOutbound,
    conversation_id: ConversationId,
    run_id: RunId,
) -> Result<bool, Failure> {
    let inserted = outbox::Entity::insert(outbox::ActiveModel {
        id: Set(outbound.outbox_id.as_uuid()),
        org_id: Set(outbound.org_id.as_uuid()),
        channel_id: Set(outbound.channel_id.as_uuid()),
        conversation_id: Set(conversation_id.as_uuid()),
        message_id: Set(outbound.message_id.as_uuid()),
        recipient: Set(outbound.to.as_str().to_owned()),
        content: Set(to_json("writing an outbox row's content", &outbound.content)?),
        attempt: Set(0),
        queued_at_us: Set(to_us(outbound.queued_at)),
        next_attempt_at_us: Set(to_us(outbound.queued_at)),
        lease_until_us: Set(None),
        deadline_at_us: Set(to_us(outbound.deadline)),
        finished_at_us: Set(None),
        last_error_code: Set(None),
        last_error_message: Set(None),
        run_id: Set(Some(run_id.as_uuid())),
    })
    .on_conflict(OnConflict::column(outbox::Column::MessageId).do_nothing().to_owned())
    .exec_without_returning(txn)
    .await
    .map_err(db("inserting the read receipt's outbox row"))?;
    Ok(inserted == 1)
}

/// The outbox row of message `message_id`, if any.
pub(crate) async fn row_of_message(txn: &DatabaseTransaction, message_id: MessageId) -> Result<Option<OutboxId>, Failure> {
    let id = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::Id)
        .filter(outbox::Column::MessageId.eq(message_id.as_uuid()))
        .into_tuple::<Uuid>()
        .one(txn)
        .await
        .map_err(db("reading the message's outbox row"))?;
    Ok(id.map(OutboxId::from_uuid))
}

fn item_from_row(row: outbox::Model) -> Result<OutboxItem, StoreError> {
    const CONTEXT: &str = "reading an outbox row";
    let lease_until = row.lease_until_us.ok_or_else(|| corrupt(CONTEXT, format!("claimed outbox row {} has no lease", row.id)))?;
    Ok(OutboxItem {
        id: OutboxId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        channel_id: ChannelId::from_uuid(row.channel_id),
        conversation_id: ConversationId::from_uuid(row.conversation_id),
        message_id: MessageId::from_uuid(row.message_id),
        to: phone_from_column(CONTEXT, &row.recipient)?,
        content: from_json::<OutboundContent>("reading an outbound message's content", &row.content)?,
        attempt: u32::try_from(row.attempt).map_err(|_| corrupt(CONTEXT, format!("outbox row {} has a negative attempt", row.id)))?,
        queued_at: from_us(row.queued_at_us)?,
        deadline: from_us(row.deadline_at_us)?,
        lease_until: from_us(lease_until)?,
        run_id: row.run_id.map(RunId::from_uuid),
    })
}

impl SqlStore {
    /// The PostgreSQL claim, one statement (atomic without a transaction): chooses the rows
    /// fairly, locks those still claimable one by one through the primary key (`FOR UPDATE SKIP
    /// LOCKED`: rows another claim holds are skipped, never waited for; by key, so the cost does
    /// not depend on the plan PostgreSQL guesses for the backlog), leases them (`attempt + 1`), moves their queued
    /// messages to `sending`, and returns them in claim order. With nothing due (the idle
    /// case) it changes nothing and returns nothing.
    async fn claim_in_one_statement(
        &self,
        now_us: i64,
        limit: u32,
        lease_until_us: i64,
        per_channel: u32,
    ) -> Result<Vec<OutboxItem>, ConversationError> {
        let claimable = FAIR_ROWS.claimable_at(now_us);
        let sql = format!(
            "{ranked}, chosen AS ({chosen}), \
             locked AS (SELECT d.id, c.turn FROM chosen c CROSS JOIN LATERAL \
                        (SELECT d.id FROM outbox d WHERE d.id = c.id AND {claimable} FOR UPDATE SKIP LOCKED) d), \
             leased AS (UPDATE outbox SET lease_until_us = {lease_until_us}, attempt = outbox.attempt + 1 FROM locked \
                        WHERE outbox.id = locked.id RETURNING outbox.*, locked.turn AS claim_turn), \
             sending AS (UPDATE messages SET delivery_state = '{sending}' \
                         WHERE id IN (SELECT message_id FROM leased) AND delivery_state = '{queued}') \
             SELECT * FROM leased ORDER BY claim_turn",
            ranked = FAIR_ROWS.ranked(DbBackend::Postgres, now_us, per_channel, limit),
            chosen = FAIR_ROWS.chosen(limit),
            sending = DeliveryState::Sending.as_str(),
            queued = DeliveryState::Queued.as_str(),
        );
        let rows = self.db.query_all(Statement::from_string(DbBackend::Postgres, sql)).await.map_err(db("claiming outbox rows"))?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let row = outbox::Model::from_query_result(&row, "").map_err(db("reading a claimed outbox row"))?;
            items.push(item_from_row(row)?);
        }
        Ok(items)
    }

    /// The outbox row `id`, locked on PostgreSQL.
    async fn locked_row(&self, txn: &DatabaseTransaction, id: OutboxId) -> Result<Option<outbox::Model>, Failure> {
        self.for_update(outbox::Entity::find_by_id(id.as_uuid())).one(txn).await.map_err(db("reading the outbox row"))
    }

    /// The message of outbox row `row`, locked on PostgreSQL (as `apply_status` locks it).
    async fn locked_message(&self, txn: &DatabaseTransaction, row: &outbox::Model) -> Result<messages::Model, Failure> {
        self.for_update(messages::Entity::find_by_id(row.message_id))
            .one(txn)
            .await
            .map_err(db("reading the outbox row's message"))?
            .ok_or_else(|| corrupt("reading an outbox row", format!("the message of outbox row {} is missing", row.id)).into())
    }

    /// Finishes row `row` at `at`, keeping `error` as its last error when there is one, and
    /// moves its run (when it has one, still pending) to `status`; returns the run's
    /// `atlas.run.updated` event when the run moved. On PostgreSQL one statement (the row's
    /// update feeding the run's, the run read back through `RETURNING`).
    async fn finish(
        &self,
        txn: &DatabaseTransaction,
        row: &outbox::Model,
        error: Option<&MessageError>,
        status: RunStatus,
        at: OffsetDateTime,
    ) -> Result<Option<OutboxEvent>, Failure> {
        let run_error = error.map(|e| RunError { code: e.code.clone(), message: e.message.clone() });
        let finished_run = match row.run_id {
            Some(run_id) if self.is_postgres() => {
                let (code, message) = (error.map(|e| e.code.clone()), error.map(|e| e.message.clone()));
                let sql = "WITH finished AS (\
                               UPDATE outbox SET finished_at_us = $1, lease_until_us = NULL, \
                                   last_error_code = COALESCE($2, last_error_code), last_error_message = COALESCE($3, last_error_message) \
                               WHERE id = $4 RETURNING id\
                           ) \
                           UPDATE runs SET status = $5, error_code = $6, error_message = $7, updated_at_us = $1 \
                           WHERE org_id = $8 AND id = $9 AND status = $10 AND EXISTS (SELECT 1 FROM finished) RETURNING *";
                let values: [sea_orm::Value; 10] = [
                    to_us(at).into(),
                    code.into(),
                    message.into(),
                    row.id.into(),
                    status.as_str().into(),
                    run_error.as_ref().map(|e| e.code.clone()).into(),
                    run_error.map(|e| e.message).into(),
                    row.org_id.into(),
                    run_id.into(),
                    RunStatus::Pending.as_str().into(),
                ];
                let finished = txn
                    .query_one(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
                    .await
                    .map_err(db("finishing the outbox row and its run"))?;
                finished.map(|r| runs::Model::from_query_result(&r, "")).transpose().map_err(db("reading the finished run"))?
            }
            run_id => {
                let mut update = outbox::Entity::update_many()
                    .col_expr(outbox::Column::FinishedAtUs, Expr::value(to_us(at)))
                    .col_expr(outbox::Column::LeaseUntilUs, Expr::value(Option::<i64>::None));
                if let Some(error) = error {
                    update = update
                        .col_expr(outbox::Column::LastErrorCode, Expr::value(error.code.clone()))
                        .col_expr(outbox::Column::LastErrorMessage, Expr::value(error.message.clone()));
                }
                update.filter(outbox::Column::Id.eq(row.id)).exec(txn).await.map_err(db("finishing the outbox row"))?;
                let Some(run_id) = run_id else {
                    return Ok(None);
                };
                let finished = finishing(OrgId::from_uuid(row.org_id), RunId::from_uuid(run_id), status, run_error, at)
                    .exec(txn)
                    .await
                    .map_err(db("finishing the send's run"))?;
                if finished.rows_affected == 1 {
                    Some(
                        runs::Entity::find_by_id(run_id)
                            .one(txn)
                            .await
                            .map_err(db("reading the finished run"))?
                            .ok_or_else(|| corrupt("finishing the send's run", format!("run {run_id} vanished")))?,
                    )
                } else {
                    None
                }
            }
        };
        Ok(finished_run.map(|run| run_finished_event(&run_from_row(run)?)).transpose()?)
    }
}

impl SqlStore {
    /// Records the completions `together` (indices into `completions`, each of another row)
    /// that need nothing but the common case, in one transaction whose statements do not grow
    /// with their number: the rows locked (id order), then their provider ids' locks (as
    /// `apply_status` takes them), then their messages (id order); the pending statuses looked
    /// up; one update of the messages, one of the rows, one of the runs (`RETURNING` them), one
    /// insert of the events. A completion is in the common case when its row is unfinished and
    /// still held under its attempt, its message is there, and no status waits for its provider
    /// id (nor does another completion of the batch carry that id). Returns the recorded ones
    /// with their messages; every other is left to `complete`, alone.
    async fn complete_together(&self, completions: &[Completion], together: &[usize]) -> Result<Vec<(usize, Message)>, Failure> {
        let mut ids: Vec<Uuid> = together.iter().map(|&i| completions[i].id.as_uuid()).collect();
        ids.sort_unstable();
        let txn = begin(&self.db).await?;
        let rows: HashMap<Uuid, outbox::Model> = self
            .for_update(outbox::Entity::find().filter(outbox::Column::Id.is_in(ids)).order_by_asc(outbox::Column::Id))
            .all(&txn)
            .await
            .map_err(db("reading the outbox rows"))?
            .into_iter()
            .map(|row| (row.id, row))
            .collect();
        let mut chosen: Vec<(usize, &outbox::Model)> = together
            .iter()
            .filter_map(|&i| {
                let c = &completions[i];
                rows.get(&c.id.as_uuid()).filter(|row| row.finished_at_us.is_none() && held(row, c.attempt)).map(|row| (i, row))
            })
            .collect();
        let mut provider_ids = std::collections::HashSet::new();
        chosen.retain(|(i, row)| provider_ids.insert((row.org_id, completions[*i].provider_message_id.as_str())));
        if chosen.is_empty() {
            rollback(txn).await?;
            return Ok(Vec::new());
        }
        // Serialises with `apply_status` for these provider ids, as `complete` does.
        self.lock_provider_ids(&txn, provider_ids.iter().copied()).await?;
        let mut message_ids: Vec<Uuid> = chosen.iter().map(|(_, row)| row.message_id).collect();
        message_ids.sort_unstable();
        let mut messages: HashMap<Uuid, messages::Model> = self
            .for_update(messages::Entity::find().filter(messages::Column::Id.is_in(message_ids)).order_by_asc(messages::Column::Id))
            .all(&txn)
            .await
            .map_err(db("reading the outbox rows' messages"))?
            .into_iter()
            .map(|row| (row.id, row))
            .collect();
        let orgs: std::collections::BTreeSet<Uuid> = provider_ids.iter().map(|(org_id, _)| *org_id).collect();
        let waiting: std::collections::HashSet<(Uuid, String)> = pending_statuses::Entity::find()
            .select_only()
            .column(pending_statuses::Column::OrgId)
            .column(pending_statuses::Column::ProviderMessageId)
            .filter(pending_statuses::Column::OrgId.is_in(orgs))
            .filter(pending_statuses::Column::ProviderMessageId.is_in(provider_ids.iter().map(|(_, id)| *id)))
            .into_tuple::<(Uuid, String)>()
            .all(&txn)
            .await
            .map_err(db("reading the pending statuses"))?
            .into_iter()
            .collect();
        let mut recorded: Vec<Recorded<'_>> = Vec::with_capacity(chosen.len());
        for (i, row) in chosen {
            let c = &completions[i];
            if waiting.contains(&(row.org_id, c.provider_message_id.clone())) {
                continue;
            }
            let Some(message_row) = messages.remove(&row.message_id) else {
                continue;
            };
            let mut message = message_from_row(message_row)?;
            let before = record_of(&message)?;
            let mut record = before.clone();
            record.apply(&StatusEvent::new(DeliveryState::Sent, c.at));
            message.provider_message_id = Some(c.provider_message_id.clone());
            message.set_delivery(record.clone());
            recorded.push(Recorded { index: i, row, message, changed: record != before, record });
        }
        if recorded.is_empty() {
            rollback(txn).await?;
            return Ok(Vec::new());
        }
        let records: Vec<(MessageId, DeliveryRecord)> = recorded.iter().map(|r| (r.message.id, r.record.clone())).collect();
        let provider_ids = recorded.iter().map(|r| (r.message.id.as_uuid(), r.message.provider_message_id.clone().into()));
        deliveries_update(&records)
            .col_expr(messages::Column::ProviderMessageId, per_row(messages::Column::Id, provider_ids))
            .exec(&txn)
            .await
            .map_err(db("recording the provider message ids"))?;
        let finished_at = recorded.iter().map(|r| (r.row.id, to_us(completions[r.index].at).into()));
        outbox::Entity::update_many()
            .col_expr(outbox::Column::FinishedAtUs, per_row(outbox::Column::Id, finished_at))
            .col_expr(outbox::Column::LeaseUntilUs, Expr::value(Option::<i64>::None))
            .filter(outbox::Column::Id.is_in(recorded.iter().map(|r| r.row.id)))
            .exec(&txn)
            .await
            .map_err(db("finishing the outbox rows"))?;
        // Each send's run, still pending, `succeeded` when its row finished.
        let runs: Vec<(Uuid, Uuid, i64)> =
            recorded.iter().filter_map(|r| r.row.run_id.map(|run_id| (r.row.org_id, run_id, to_us(completions[r.index].at)))).collect();
        let mut finished_runs: HashMap<Uuid, runs::Model> = HashMap::new();
        if !runs.is_empty() {
            // Each run by its key, and in its row's organization: the organization is checked
            // per run (`org_id = CASE id …`), not as an index condition, so PostgreSQL finds
            // the runs through the primary key (with a plain `org_id = … AND id = …` per run it
            // was seen scanning an organization's whole index of runs).
            let own_org = per_row(runs::Column::Id, runs.iter().map(|(org_id, run_id, _)| (*run_id, (*org_id).into())));
            let which = Condition::all()
                .add(runs::Column::Id.is_in(runs.iter().map(|(_, run_id, _)| *run_id)))
                .add(Expr::col(runs::Column::OrgId).eq(own_org));
            let mut finish = runs::Entity::update_many()
                .col_expr(runs::Column::Status, Expr::value(RunStatus::Succeeded.as_str()))
                .col_expr(runs::Column::ErrorCode, Expr::value(Option::<String>::None))
                .col_expr(runs::Column::ErrorMessage, Expr::value(Option::<String>::None))
                .col_expr(runs::Column::UpdatedAtUs, per_row(runs::Column::Id, runs.iter().map(|(_, run_id, at)| (*run_id, (*at).into()))))
                .filter(runs::Column::Status.eq(RunStatus::Pending.as_str()))
                .filter(which)
                .into_query();
            finish.returning(Query::returning().all());
            for run in txn.query_all(txn.get_database_backend().build(&finish)).await.map_err(db("finishing the sends' runs"))? {
                let run = runs::Model::from_query_result(&run, "").map_err(db("reading a finished run"))?;
                finished_runs.insert(run.id, run);
            }
        }
        let mut events = Vec::new();
        for r in &recorded {
            if r.changed {
                events.extend(message_delivery_event(&r.message, completions[r.index].at)?.map(|event| event_row(r.row.org_id, &event)));
            }
            if let Some(run) = r.row.run_id.and_then(|run_id| finished_runs.remove(&run_id)) {
                events.push(event_row(r.row.org_id, &run_finished_event(&run_from_row(run)?)?));
            }
        }
        insert_event_rows(&txn, events).await?;
        commit(txn, "committing the completions").await?;
        Ok(recorded.into_iter().map(|r| (r.index, r.message)).collect())
    }
}

/// A completion `complete_together` records: its index among the completions, its row as
/// locked, its message and delivery record as recorded, and whether that record changed.
struct Recorded<'a> {
    index: usize,
    row: &'a outbox::Model,
    message: Message,
    record: DeliveryRecord,
    changed: bool,
}

/// Writes `events` (of organization `org_id`), if any, in one statement through `txn`.
async fn write_events(txn: &DatabaseTransaction, org_id: Uuid, events: Vec<OutboxEvent>) -> Result<(), Failure> {
    if events.is_empty() {
        return Ok(());
    }
    insert_events(txn, org_id, &events).await
}

/// Whether the claim that made attempt `attempt` still holds unfinished row `row`: the row is
/// leased (a retry releases it) and no later claim counted another attempt.
fn held(row: &outbox::Model, attempt: u32) -> bool {
    row.lease_until_us.is_some() && i64::from(row.attempt) == i64::from(attempt)
}

/// The delivery record of an outbound message row's message.
fn record_of(message: &Message) -> Result<DeliveryRecord, StoreError> {
    message.delivery().ok_or_else(|| corrupt("reading an outbox row's message", format!("message {} has no delivery state", message.id)))
}

#[async_trait]
impl Outbox for SqlStore {
    async fn claim(
        &self,
        now: OffsetDateTime,
        limit: u32,
        lease: Duration,
        per_channel: u32,
    ) -> Result<Vec<OutboxItem>, ConversationError> {
        let now_us = to_us(now);
        if self.is_postgres() {
            if !FAIR_ROWS.any_claimable(&self.db, now_us).await? {
                return Ok(Vec::new());
            }
            return self.claim_in_one_statement(now_us, limit, to_us(now + lease), per_channel).await;
        }
        // SQLite: chosen outside the transaction (with nothing due, the idle case, a claim is
        // this one statement), then re-checked, leased and marked in one; the one connection
        // serialises claims.
        let chosen = FAIR_ROWS.candidates(&self.db, now_us, limit, per_channel).await?;
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let txn = begin(&self.db).await?;
        // Still claimable once locked: another claim may have taken some since they were chosen.
        let mut query = outbox::Entity::find()
            .filter(outbox::Column::Id.is_in(chosen.clone()))
            .filter(outbox::Column::FinishedAtUs.is_null())
            .filter(outbox::Column::NextAttemptAtUs.lte(now_us))
            .filter(Condition::any().add(outbox::Column::LeaseUntilUs.is_null()).add(outbox::Column::LeaseUntilUs.lte(now_us)));
        if self.is_postgres() {
            query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let mut rows = query.all(&txn).await.map_err(db("claiming outbox rows"))?;
        let turn: std::collections::HashMap<Uuid, usize> = chosen.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        rows.sort_by_key(|row| turn.get(&row.id).copied().unwrap_or(usize::MAX));
        if rows.is_empty() {
            rollback(txn).await?;
            return Ok(Vec::new());
        }
        let lease_until_us = to_us(now + lease);
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let message_ids: Vec<Uuid> = rows.iter().map(|r| r.message_id).collect();
        outbox::Entity::update_many()
            .col_expr(outbox::Column::LeaseUntilUs, Expr::value(lease_until_us))
            .col_expr(outbox::Column::Attempt, Expr::col(outbox::Column::Attempt).add(1))
            .filter(outbox::Column::Id.is_in(ids))
            .exec(&txn)
            .await
            .map_err(db("leasing the claimed outbox rows"))?;
        // `sending` only moves a queued message (DeliveryState::advance never goes back).
        messages::Entity::update_many()
            .col_expr(messages::Column::DeliveryState, Expr::value(DeliveryState::Sending.as_str()))
            .filter(messages::Column::Id.is_in(message_ids))
            .filter(messages::Column::DeliveryState.eq(DeliveryState::Queued.as_str()))
            .exec(&txn)
            .await
            .map_err(db("marking the claimed messages sending"))?;
        let items = rows
            .into_iter()
            .map(|row| item_from_row(outbox::Model { attempt: row.attempt + 1, lease_until_us: Some(lease_until_us), ..row }))
            .collect::<Result<Vec<_>, _>>()?;
        commit(txn, "committing the claim").await?;
        Ok(items)
    }

    async fn next_due(&self) -> Result<Option<OffsetDateTime>, ConversationError> {
        let row = self
            .db
            .query_one(Statement::from_string(self.db.get_database_backend(), OUTBOX_NEXT_DUE))
            .await
            .map_err(db("reading the outbox's next due time"))?;
        let due = match row {
            Some(row) => row.try_get::<Option<i64>>("", "due").map_err(db("reading the outbox's next due time"))?,
            None => None,
        };
        Ok(crate::convert::from_us_opt(due).map_err(Failure::from)?)
    }

    async fn complete(
        &self,
        id: OutboxId,
        attempt: u32,
        provider_message_id: &str,
        at: OffsetDateTime,
    ) -> Result<Message, ConversationError> {
        let txn = begin(&self.db).await?;
        let Some(row) = self.locked_row(&txn, id).await? else {
            rollback(txn).await?;
            return Err(ConversationError::NotFound);
        };
        // Serialises with `apply_status` for this provider id: a status either reached the
        // message already or is pending here.
        self.lock_provider_id(&txn, row.org_id, provider_message_id).await?;
        let message_row = self.locked_message(&txn, &row).await?;
        if row.finished_at_us.is_some() {
            rollback(txn).await?;
            return if message_row.provider_message_id.as_deref() == Some(provider_message_id) {
                Ok(message_from_row(message_row)?)
            } else {
                Err(ConversationError::Conflict("the outbox row already finished"))
            };
        }
        if !held(&row, attempt) {
            rollback(txn).await?;
            return Err(ConversationError::Conflict("the outbox row was released or claimed again"));
        }
        let mut message = message_from_row(message_row)?;
        let before = record_of(&message)?;
        let mut record = before.clone();
        record.apply(&StatusEvent::new(DeliveryState::Sent, at));
        let pending = pending_statuses::Entity::find()
            .filter(pending_statuses::Column::OrgId.eq(row.org_id))
            .filter(pending_statuses::Column::ProviderMessageId.eq(provider_message_id))
            .order_by_asc(pending_statuses::Column::AtUs)
            .order_by_asc(pending_statuses::Column::Id)
            .all(&txn)
            .await
            .map_err(db("reading the pending statuses"))?;
        if !pending.is_empty() {
            for event in pending {
                record.apply(&pending_event(event)?);
            }
            pending_statuses::Entity::delete_many()
                .filter(pending_statuses::Column::OrgId.eq(row.org_id))
                .filter(pending_statuses::Column::ProviderMessageId.eq(provider_message_id))
                .exec(&txn)
                .await
                .map_err(db("deleting the applied pending statuses"))?;
        }
        delivery_update(message.id, &record)
            .col_expr(messages::Column::ProviderMessageId, Expr::value(provider_message_id))
            .exec(&txn)
            .await
            .map_err(db("recording the provider message id"))?;
        message.provider_message_id = Some(provider_message_id.to_owned());
        let changed = record != before;
        message.set_delivery(record);
        let mut events = Vec::new();
        if changed {
            events.extend(message_delivery_event(&message, at)?);
        }
        events.extend(self.finish(&txn, &row, None, RunStatus::Succeeded, at).await?);
        write_events(&txn, row.org_id, events).await?;
        commit(txn, "committing the completion").await?;
        Ok(message)
    }

    async fn complete_many(&self, completions: &[Completion]) -> Vec<Result<Message, ConversationError>> {
        let mut results: Vec<Option<Result<Message, ConversationError>>> = completions.iter().map(|_| None).collect();
        // The first completion of each row may be written together; a later one of the same
        // row is recorded after them, against the row the first left.
        let mut rows = std::collections::HashSet::new();
        let together: Vec<usize> = (0..completions.len()).filter(|&i| rows.insert(completions[i].id)).collect();
        if together.len() > 1 {
            match self.complete_together(completions, &together).await {
                Ok(recorded) => {
                    for (i, message) in recorded {
                        results[i] = Some(Ok(message));
                    }
                }
                Err(e) => tracing::warn!(error = ?e, "completions not recorded together; recording them one by one"),
            }
        }
        let mut out = Vec::with_capacity(completions.len());
        for (c, result) in completions.iter().zip(results) {
            out.push(match result {
                Some(result) => result,
                None => self.complete(c.id, c.attempt, &c.provider_message_id, c.at).await,
            });
        }
        out
    }

    async fn retry(&self, id: OutboxId, attempt: u32, next_at: OffsetDateTime, error: &MessageError) -> Result<(), ConversationError> {
        let txn = begin(&self.db).await?;
        // No row has a negative attempt, so an attempt beyond i32 matches nothing: a conflict.
        let attempt = i32::try_from(attempt).unwrap_or(-1);
        let updated = outbox::Entity::update_many()
            .col_expr(outbox::Column::NextAttemptAtUs, Expr::value(to_us(next_at)))
            .col_expr(outbox::Column::LeaseUntilUs, Expr::value(Option::<i64>::None))
            .col_expr(outbox::Column::LastErrorCode, Expr::value(error.code.clone()))
            .col_expr(outbox::Column::LastErrorMessage, Expr::value(error.message.clone()))
            .filter(outbox::Column::Id.eq(id.as_uuid()))
            .filter(outbox::Column::Attempt.eq(attempt))
            .filter(outbox::Column::FinishedAtUs.is_null())
            .exec(&txn)
            .await
            .map_err(db("scheduling the retry"))?;
        if updated.rows_affected == 0 {
            let exists = outbox::Entity::find_by_id(id.as_uuid()).one(&txn).await.map_err(db("reading the outbox row"))?.is_some();
            rollback(txn).await?;
            return Err(if exists {
                ConversationError::Conflict("the outbox row finished or was claimed again")
            } else {
                ConversationError::NotFound
            });
        }
        commit(txn, "committing the retry").await?;
        Ok(())
    }

    async fn fail(&self, id: OutboxId, attempt: u32, error: &MessageError, at: OffsetDateTime) -> Result<Message, ConversationError> {
        let txn = begin(&self.db).await?;
        let Some(row) = self.locked_row(&txn, id).await? else {
            rollback(txn).await?;
            return Err(ConversationError::NotFound);
        };
        if row.finished_at_us.is_some() {
            rollback(txn).await?;
            return Err(ConversationError::Conflict("the outbox row already finished"));
        }
        if !held(&row, attempt) {
            rollback(txn).await?;
            return Err(ConversationError::Conflict("the outbox row was released or claimed again"));
        }
        let mut message = message_from_row(self.locked_message(&txn, &row).await?)?;
        let mut record = record_of(&message)?;
        let mut events = Vec::new();
        if record.apply(&StatusEvent::failed(at, error.clone())) {
            delivery_update(message.id, &record).exec(&txn).await.map_err(db("failing the message"))?;
            message.set_delivery(record);
            events.extend(message_delivery_event(&message, at)?);
        }
        events.extend(self.finish(&txn, &row, Some(error), RunStatus::Failed, at).await?);
        write_events(&txn, row.org_id, events).await?;
        commit(txn, "committing the failure").await?;
        Ok(message)
    }

    async fn acknowledge(
        &self,
        id: OutboxId,
        attempt: u32,
        error: Option<MessageError>,
        at: OffsetDateTime,
    ) -> Result<(), ConversationError> {
        let txn = begin(&self.db).await?;
        let Some(row) = self.locked_row(&txn, id).await? else {
            rollback(txn).await?;
            return Err(ConversationError::NotFound);
        };
        if row.finished_at_us.is_some() {
            rollback(txn).await?;
            return Err(ConversationError::Conflict("the outbox row already finished"));
        }
        if !held(&row, attempt) {
            rollback(txn).await?;
            return Err(ConversationError::Conflict("the outbox row was released or claimed again"));
        }
        let status = if error.is_some() { RunStatus::Failed } else { RunStatus::Succeeded };
        let events = self.finish(&txn, &row, error.as_ref(), status, at).await?.into_iter().collect();
        write_events(&txn, row.org_id, events).await?;
        commit(txn, "committing the receipt").await?;
        Ok(())
    }

    async fn purge_finished(&self, before: OffsetDateTime, limit: u32) -> Result<u64, ConversationError> {
        let ids: Vec<Uuid> = outbox::Entity::find()
            .select_only()
            .column(outbox::Column::Id)
            .filter(outbox::Column::FinishedAtUs.lt(to_us(before)))
            .limit(u64::from(limit))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db("choosing finished outbox rows to remove"))?;
        if ids.is_empty() {
            return Ok(0);
        }
        let removed = outbox::Entity::delete_many()
            .filter(outbox::Column::Id.is_in(ids))
            .filter(outbox::Column::FinishedAtUs.lt(to_us(before)))
            .exec(&self.db)
            .await
            .map_err(db("removing finished outbox rows"))?;
        Ok(removed.rows_affected)
    }

    async fn purge_pending_statuses(&self, before: OffsetDateTime, limit: u32) -> Result<u64, ConversationError> {
        let ids: Vec<Uuid> = pending_statuses::Entity::find()
            .select_only()
            .column(pending_statuses::Column::Id)
            .filter(pending_statuses::Column::CreatedAtUs.lt(to_us(before)))
            .limit(u64::from(limit))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db("choosing pending statuses to remove"))?;
        if ids.is_empty() {
            return Ok(0);
        }
        let removed = pending_statuses::Entity::delete_many()
            .filter(pending_statuses::Column::Id.is_in(ids))
            .exec(&self.db)
            .await
            .map_err(db("removing pending statuses"))?;
        Ok(removed.rows_affected)
    }
}
