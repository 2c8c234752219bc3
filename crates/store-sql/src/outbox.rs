//! `Outbox` for [`SqlStore`]: the `outbox` rows `enqueue_outbound` queues beside their
//! messages, claimed by workers under a lease, and their outcomes (`complete`, `retry`,
//! `fail`), each in one transaction with the message's delivery state, the send's run and the
//! webhook events of both (`agent.message_delivery` when the message's delivery state changed,
//! `atlas.run.updated` when the run finished).
//!
//! A claim chooses due, unleased, unfinished rows fairly (at most `per_channel` leased per
//! channel, channels and organizations taking turns, oldest first within a turn: see
//! `crate::fair`) and locks them; on PostgreSQL `FOR UPDATE SKIP LOCKED`, so concurrent
//! claimers each take different rows and never wait for one another; on SQLite without the
//! lock clause, the one connection serialising claims.
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

use crate::conversations::{begin, commit, delivery_update, message_from_row, pending_event, phone_from_column, rollback};
use crate::convert::{corrupt, from_json, from_us, to_json, to_us};
use crate::entity::{messages, outbox, pending_statuses, runs};
use crate::error::{db, Failure};
use crate::events::{message_delivery_changed, run_finished};
use crate::fair::FairClaim;
use crate::runs::{finishing, run_from_row};
use crate::SqlStore;
use async_trait::async_trait;
use atlas_conversations::{
    ChannelId, ConversationError, ConversationId, DeliveryRecord, DeliveryState, Message, MessageError, MessageId, NewOutbound,
    OutboundContent, Outbox, OutboxId, OutboxItem, StatusEvent,
};
use atlas_kernel::{OrgId, StoreError};
use atlas_runs::{RunError, RunId, RunStatus};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How a claim chooses rows: at most the channel's cap leased at once, channels and
/// organizations taking turns (see `crate::fair`).
const FAIR_ROWS: FairClaim = FairClaim {
    table: "outbox",
    target: "channel_id",
    joins: "",
    claimable: "d.finished_at_us IS NULL AND d.next_attempt_at_us <= {now} AND (d.lease_until_us IS NULL OR d.lease_until_us <= {now})",
    leased: "finished_at_us IS NULL AND lease_until_us > {now}",
    order: "next_attempt_at_us, id",
};

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

    /// Finishes row `row` at `at`, keeping `error` as its last error when there is one.
    async fn finish_row(
        txn: &DatabaseTransaction,
        row: &outbox::Model,
        error: Option<&MessageError>,
        at: OffsetDateTime,
    ) -> Result<(), Failure> {
        let mut update = outbox::Entity::update_many()
            .col_expr(outbox::Column::FinishedAtUs, Expr::value(to_us(at)))
            .col_expr(outbox::Column::LeaseUntilUs, Expr::value(Option::<i64>::None));
        if let Some(error) = error {
            update = update
                .col_expr(outbox::Column::LastErrorCode, Expr::value(error.code.clone()))
                .col_expr(outbox::Column::LastErrorMessage, Expr::value(error.message.clone()));
        }
        update.filter(outbox::Column::Id.eq(row.id)).exec(txn).await.map_err(db("finishing the outbox row"))?;
        Ok(())
    }

    /// Moves the row's run (when it has one, still pending) to `status`, and writes its
    /// `atlas.run.updated` event when it did.
    async fn finish_run(
        txn: &DatabaseTransaction,
        row: &outbox::Model,
        status: RunStatus,
        error: Option<RunError>,
        at: OffsetDateTime,
    ) -> Result<(), Failure> {
        let Some(run_id) = row.run_id else {
            return Ok(());
        };
        let finished = finishing(OrgId::from_uuid(row.org_id), RunId::from_uuid(run_id), status, error, at)
            .exec(txn)
            .await
            .map_err(db("finishing the send's run"))?;
        if finished.rows_affected == 1 {
            let run = runs::Entity::find_by_id(run_id)
                .one(txn)
                .await
                .map_err(db("reading the finished run"))?
                .ok_or_else(|| corrupt("finishing the send's run", format!("run {run_id} vanished")))?;
            run_finished(txn, &run_from_row(run)?).await?;
        }
        Ok(())
    }
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
        let txn = begin(&self.db).await?;
        let chosen = FAIR_ROWS.candidates(&txn, now_us, limit, per_channel).await?;
        if chosen.is_empty() {
            rollback(txn).await?;
            return Ok(Vec::new());
        }
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
        if changed {
            message_delivery_changed(&txn, &message, at).await?;
        }
        Self::finish_row(&txn, &row, None, at).await?;
        Self::finish_run(&txn, &row, RunStatus::Succeeded, None, at).await?;
        commit(txn, "committing the completion").await?;
        Ok(message)
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
        if record.apply(&StatusEvent::failed(at, error.clone())) {
            delivery_update(message.id, &record).exec(&txn).await.map_err(db("failing the message"))?;
            message.set_delivery(record);
            message_delivery_changed(&txn, &message, at).await?;
        }
        Self::finish_row(&txn, &row, Some(error), at).await?;
        let run_error = RunError { code: error.code.clone(), message: error.message.clone() };
        Self::finish_run(&txn, &row, RunStatus::Failed, Some(run_error), at).await?;
        commit(txn, "committing the failure").await?;
        Ok(message)
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
