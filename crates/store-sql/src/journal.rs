//! The journal: what every mutating use case commits beside its effect, inside its
//! transaction. Only [`write_journal`] writes runs and completes idempotency records on the
//! effect's behalf.

use crate::error::{db, Failure};
use crate::idempotency::completion;
use crate::runs::run_row;
use atlas_runs::JournalEntry;
use sea_orm::{DatabaseTransaction, EntityTrait};

/// Inserts the entry's run and, when the entry carries an idempotency outcome, completes the
/// claimed (in-progress) record with the response, all through `txn`. A record that is no
/// longer in progress (taken over after its lease, or already completed) is left alone and
/// logged: the effect still commits.
pub(crate) async fn write_journal(
    txn: &DatabaseTransaction,
    entry: &JournalEntry,
) -> Result<(), Failure> {
    crate::entity::runs::Entity::insert(run_row(&entry.run))
        .exec_without_returning(txn)
        .await
        .map_err(db("recording the run"))?;
    if let Some((scope, response)) = &entry.idempotency {
        let done = completion(scope, response, entry.run.updated_at)
            .exec(txn)
            .await
            .map_err(db("completing the idempotency record"))?;
        if done.rows_affected == 0 {
            tracing::warn!(
                run_id = %entry.run.id,
                route = %scope.route,
                "the idempotency key was no longer claimed by this call; its outcome is not stored for replay"
            );
        }
    }
    Ok(())
}
