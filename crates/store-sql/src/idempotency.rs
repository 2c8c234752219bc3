//! `IdempotencyStore` for [`SqlStore`]. A claim is an `INSERT … ON CONFLICT (storage_key) DO
//! NOTHING`: exactly one of N concurrent requests inserts and executes. The others read the
//! record and apply [`atlas_idempotency::decide`]; an expired record (past retention, or an
//! abandoned claim) is taken over with a compare-and-set `UPDATE` that matches the record as it
//! was read, so of N requests that all saw it expired, one takes it over. The outcome is
//! normally stored by the use case's own transaction (see `write_journal`), so this store
//! `commits_with_effect`.

use crate::convert::{corrupt, from_us, to_us};
use crate::entity::idempotency_records as idem;
use crate::error::db;
use crate::SqlStore;
use async_trait::async_trait;
use atlas_idempotency::{
    decide, Begin, Decision, Fingerprint, IdempotencyError, IdempotencyRecord, IdempotencyScope, IdempotencyStore, RecordState,
    StoredResponse, CLAIM_LEASE, RETENTION,
};
use atlas_kernel::StoreError;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, UpdateMany};
use time::OffsetDateTime;

/// How many times `begin` re-reads a record that changed between its read and its write.
const MAX_ATTEMPTS: usize = 8;

/// The record a row stores.
fn record_from_row(row: &idem::Model) -> Result<IdempotencyRecord, StoreError> {
    const CONTEXT: &str = "reading an idempotency record";
    let state = match row.state.as_str() {
        idem::IN_PROGRESS => RecordState::InProgress {
            lease_until: from_us(row.lease_until_us.ok_or_else(|| corrupt(CONTEXT, "an in-progress record without a lease".into()))?)?,
        },
        idem::COMPLETED => RecordState::Completed(StoredResponse {
            status: row
                .response_status
                .and_then(|s| u16::try_from(s).ok())
                .ok_or_else(|| corrupt(CONTEXT, "a completed record without a valid status".into()))?,
            body: row.response_body.clone().unwrap_or_default(),
            location: row.response_location.clone(),
            etag: row.response_etag.clone(),
        }),
        other => return Err(corrupt(CONTEXT, format!("unknown record state `{other}`"))),
    };
    Ok(IdempotencyRecord { fingerprint: Fingerprint::from_stored(row.fingerprint.clone()), state, created_at: from_us(row.created_at_us)? })
}

/// A fresh in-progress claim of `scope` by the request fingerprinted `fingerprint`.
fn claim(scope: &IdempotencyScope, storage_key: &str, fingerprint: &Fingerprint, now: OffsetDateTime) -> idem::ActiveModel {
    idem::ActiveModel {
        storage_key: Set(storage_key.to_owned()),
        org_id: Set(scope.org_id.as_uuid()),
        fingerprint: Set(fingerprint.as_str().to_owned()),
        state: Set(idem::IN_PROGRESS.to_owned()),
        lease_until_us: Set(Some(to_us(now + CLAIM_LEASE))),
        response_status: Set(None),
        response_body: Set(None),
        response_location: Set(None),
        response_etag: Set(None),
        created_at_us: Set(to_us(now)),
        updated_at_us: Set(to_us(now)),
    }
}

/// The `UPDATE` that completes the in-progress record of `scope` with `response`; a record that
/// is no longer in progress is left alone. Shared by `complete` and the journal.
pub(crate) fn completion(scope: &IdempotencyScope, response: &StoredResponse, at: OffsetDateTime) -> UpdateMany<idem::Entity> {
    idem::Entity::update_many()
        .col_expr(idem::Column::State, Expr::value(idem::COMPLETED))
        .col_expr(idem::Column::LeaseUntilUs, Expr::value(Option::<i64>::None))
        .col_expr(idem::Column::ResponseStatus, Expr::value(i32::from(response.status)))
        .col_expr(idem::Column::ResponseBody, Expr::value(response.body.clone()))
        .col_expr(idem::Column::ResponseLocation, Expr::value(response.location.clone()))
        .col_expr(idem::Column::ResponseEtag, Expr::value(response.etag.clone()))
        .col_expr(idem::Column::UpdatedAtUs, Expr::value(to_us(at)))
        .filter(idem::Column::StorageKey.eq(scope.storage_key()))
        .filter(idem::Column::OrgId.eq(scope.org_id.as_uuid()))
        .filter(idem::Column::State.eq(idem::IN_PROGRESS))
}

#[async_trait]
impl IdempotencyStore for SqlStore {
    async fn begin(&self, scope: &IdempotencyScope, fingerprint: &Fingerprint, now: OffsetDateTime) -> Result<Begin, IdempotencyError> {
        let storage_key = scope.storage_key();
        let fresh = claim(scope, &storage_key, fingerprint, now);
        for _ in 0..MAX_ATTEMPTS {
            let inserted = idem::Entity::insert(fresh.clone())
                .on_conflict(OnConflict::column(idem::Column::StorageKey).do_nothing().to_owned())
                .exec_without_returning(&self.db)
                .await
                .map_err(db("claiming an idempotency key"))?;
            if inserted > 0 {
                return Ok(Decision::Execute);
            }
            let Some(row) = idem::Entity::find_by_id(storage_key.clone())
                .filter(idem::Column::OrgId.eq(scope.org_id.as_uuid()))
                .one(&self.db)
                .await
                .map_err(db("reading an idempotency record"))?
            else {
                // Released or purged since the insert: claim again.
                continue;
            };
            match decide(Some(&record_from_row(&row)?), fingerprint, now) {
                Decision::Expired => {
                    let taken = idem::Entity::update_many()
                        .set(fresh.clone())
                        .filter(idem::Column::StorageKey.eq(storage_key.as_str()))
                        .filter(idem::Column::OrgId.eq(scope.org_id.as_uuid()))
                        .filter(idem::Column::Fingerprint.eq(row.fingerprint.as_str()))
                        .filter(idem::Column::State.eq(row.state.as_str()))
                        .filter(idem::Column::CreatedAtUs.eq(row.created_at_us))
                        .filter(idem::Column::UpdatedAtUs.eq(row.updated_at_us))
                        .exec(&self.db)
                        .await
                        .map_err(db("taking over an expired idempotency key"))?;
                    if taken.rows_affected > 0 {
                        return Ok(Decision::Expired);
                    }
                    // Someone else changed the record first: read it again.
                }
                decision => return Ok(decision),
            }
        }
        Err(StoreError::new("claiming an idempotency key", "the record kept changing under contention").into())
    }

    async fn complete(&self, scope: &IdempotencyScope, response: &StoredResponse, now: OffsetDateTime) -> Result<(), IdempotencyError> {
        completion(scope, response, now).exec(&self.db).await.map_err(db("completing an idempotency record"))?;
        Ok(())
    }

    async fn release(&self, scope: &IdempotencyScope) -> Result<(), IdempotencyError> {
        idem::Entity::delete_many()
            .filter(idem::Column::StorageKey.eq(scope.storage_key()))
            .filter(idem::Column::OrgId.eq(scope.org_id.as_uuid()))
            .filter(idem::Column::State.eq(idem::IN_PROGRESS))
            .exec(&self.db)
            .await
            .map_err(db("releasing an idempotency key"))?;
        Ok(())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, IdempotencyError> {
        let purged = idem::Entity::delete_many()
            .filter(idem::Column::CreatedAtUs.lte(to_us(now - RETENTION)))
            .exec(&self.db)
            .await
            .map_err(db("purging expired idempotency records"))?;
        Ok(purged.rows_affected)
    }

    fn commits_with_effect(&self) -> bool {
        true
    }
}
