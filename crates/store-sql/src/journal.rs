//! The journal: what every mutating use case commits beside its effect, inside its
//! transaction. Only [`write_journal`] writes runs and completes idempotency records on the
//! effect's behalf; it also writes the entry's events into the webhook outbox
//! (`webhook_events`), with [`insert_events`], the one writer of that table that adapters
//! emitting events of their own share.

use crate::convert::to_us;
use crate::entity::webhook_events;
use crate::error::{db, Failure};
use crate::idempotency::{completed_row, completion, stored_body};
use crate::runs::run_row;
use atlas_runs::{JournalEntry, OutboxEvent};
use sea_orm::{ActiveValue::Set, DatabaseTransaction, EntityTrait};
use uuid::Uuid;

/// Inserts the entry's run, its events (in the run's organization) and, when the entry carries
/// an idempotency outcome, completes the claimed (in-progress) record with the response, all
/// through `txn`. A record that is no longer in progress (taken over after its lease, or
/// already completed) is left alone and logged: the effect still commits. A claim taken at
/// commit ([`atlas_idempotency::Claim::at_commit`]) inserts its record, completed; when a
/// concurrent request inserted the key first the journal fails ([`key_taken`]), so the effect
/// rolls back and the key's effect happens once.
pub(crate) async fn write_journal(txn: &DatabaseTransaction, entry: &JournalEntry) -> Result<(), Failure> {
    write_journal_sealed(txn, entry, None).await
}

/// [`write_journal`], sealing a stored answer that shows a secret with `cipher` (without one,
/// such an answer is not stored: a retry runs afresh rather than a secret lying in the clear).
pub(crate) async fn write_journal_sealed(
    txn: &DatabaseTransaction,
    entry: &JournalEntry,
    cipher: Option<&dyn atlas_conversations::SecretCipher>,
) -> Result<(), Failure> {
    crate::entity::runs::Entity::insert(run_row(&entry.run)).exec_without_returning(txn).await.map_err(db("recording the run"))?;
    insert_events(txn, entry.run.org_id.as_uuid(), &entry.events).await?;
    if let Some((claim, response)) = &entry.idempotency {
        let Ok(body) = stored_body(response, cipher) else {
            tracing::warn!(run_id = %entry.run.id, "an answer showing a secret and no cipher to seal it: not stored for replay");
            return Ok(());
        };
        if let Some(fingerprint) = &claim.at_commit {
            let inserted =
                crate::entity::idempotency_records::Entity::insert(completed_row(claim, fingerprint, response, body, entry.run.updated_at))
                    .on_conflict(
                        sea_orm::sea_query::OnConflict::column(crate::entity::idempotency_records::Column::StorageKey)
                            .do_nothing()
                            .to_owned(),
                    )
                    .exec_without_returning(txn)
                    .await
                    .map_err(db("recording the idempotency outcome"))?;
            if inserted == 0 {
                return Err(key_taken());
            }
            return Ok(());
        }
        let done =
            completion(claim, response, body, entry.run.updated_at).exec(txn).await.map_err(db("completing the idempotency record"))?;
        if done.rows_affected == 0 {
            tracing::warn!(
                run_id = %entry.run.id,
                route = %claim.scope.route,
                "the idempotency key was no longer claimed by this call; its outcome is not stored for replay"
            );
        }
    }
    Ok(())
}

/// The failure of an effect whose claim was taken at commit by a concurrent request with the
/// same key (that request's outcome is the key's; the caller answers from it).
pub(crate) fn key_taken() -> Failure {
    Failure::Conflict(
        crate::error::Unique::IdempotencyKey,
        atlas_kernel::StoreError::new(
            "recording the idempotency outcome",
            "a concurrent request with this idempotency key committed first",
        ),
    )
}

/// The undispatched outbox row of `event`, in organization `org_id`.
pub(crate) fn event_row(org_id: Uuid, event: &OutboxEvent) -> webhook_events::ActiveModel {
    webhook_events::ActiveModel {
        id: Set(event.id),
        org_id: Set(org_id),
        event_type: Set(event.event_type.clone()),
        resource_id: Set(event.resource_id.clone()),
        version: Set(event.version),
        occurred_at_us: Set(to_us(event.occurred_at)),
        payload: Set(event.payload.clone()),
        fanned_out_at_us: Set(None),
        endpoint_id: Set(event.to),
    }
}

/// Inserts `events` of organization `org_id` into the webhook outbox through `txn`, as one
/// multi-row `INSERT` (nothing when there are none).
pub(crate) async fn insert_events(txn: &DatabaseTransaction, org_id: Uuid, events: &[OutboxEvent]) -> Result<(), Failure> {
    insert_event_rows(txn, events.iter().map(|event| event_row(org_id, event)).collect()).await
}

/// The most rows one `INSERT` carries (8 parameters each, well within both backends' limits).
const EVENTS_PER_INSERT: usize = 1_000;

/// Inserts outbox rows through `txn`: one multi-row `INSERT` (one per thousand rows; nothing
/// when there are none).
pub(crate) async fn insert_event_rows(txn: &DatabaseTransaction, mut rows: Vec<webhook_events::ActiveModel>) -> Result<(), Failure> {
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(EVENTS_PER_INSERT));
        webhook_events::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await
            .map_err(db("writing the events to the webhook outbox"))?;
        rows = rest;
    }
    Ok(())
}
