//! `IdempotencyStore` for [`SqlStore`]. A claim is an `INSERT … ON CONFLICT (storage_key) DO
//! NOTHING`: exactly one of N concurrent requests inserts and executes. The others read the
//! record and apply [`atlas_idempotency::decide`]; an expired record (past retention, or an
//! abandoned claim) is taken over with a compare-and-set `UPDATE` that matches the record as it
//! was read, so of N requests that all saw it expired, one takes it over. The outcome is
//! normally stored by the use case's own transaction (see `write_journal`), so this store
//! `commits_with_effect`.
//!
//! Every claim carries its request's token (`claim_token`): completing or releasing matches it,
//! so a request whose lease lapsed never settles the claim that took the key over. A response
//! that shows a secret is stored sealed by the store's secret cipher (`response_sealed`), and
//! opened for the replay; it goes with its record after retention.

use crate::convert::{corrupt, from_us, to_us};
use crate::entity::idempotency_records as idem;
use crate::error::db;
use crate::SqlStore;
use async_trait::async_trait;
use atlas_conversations::SecretCipher;
use atlas_idempotency::{
    decide, Begin, Claim, Decision, Fingerprint, IdempotencyError, IdempotencyRecord, IdempotencyScope, IdempotencyStore, RecordState,
    StoredResponse, CLAIM_LEASE, RETENTION,
};
use atlas_kernel::StoreError;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, UpdateMany};
use time::OffsetDateTime;

/// How many times `begin` re-reads a record that changed between its read and its write.
const MAX_ATTEMPTS: usize = 8;

/// The record a row stores (a sealed body opened with `cipher`).
fn record_from_row(row: &idem::Model, cipher: Option<&dyn SecretCipher>) -> Result<IdempotencyRecord, StoreError> {
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
            body: match (row.response_sealed, cipher) {
                (false, _) => row.response_body.clone().unwrap_or_default(),
                (true, Some(cipher)) => cipher
                    .open(row.response_body.as_deref().unwrap_or_default())
                    .map_err(|_| corrupt(CONTEXT, "a sealed response that the secret key does not open".into()))?,
                (true, None) => return Err(corrupt(CONTEXT, "a sealed response and no cipher to open it".into())),
            },
            location: row.response_location.clone(),
            etag: row.response_etag.clone(),
            shows_secret: row.response_sealed,
        }),
        other => return Err(corrupt(CONTEXT, format!("unknown record state `{other}`"))),
    };
    Ok(IdempotencyRecord { fingerprint: Fingerprint::from_stored(row.fingerprint.clone()), state, created_at: from_us(row.created_at_us)? })
}

/// A fresh in-progress claim by the request fingerprinted `fingerprint`.
fn claim_row(claim: &Claim, storage_key: &str, fingerprint: &Fingerprint, now: OffsetDateTime) -> idem::ActiveModel {
    let scope = &claim.scope;
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
        claim_token: Set(Some(claim.token.to_hex())),
        response_sealed: Set(false),
    }
}

/// The record of a claim taken at commit ([`Claim::at_commit`]), completed with `response`
/// (its body as [`stored_body`] made it): inserted by the effect's own transaction.
pub(crate) fn completed_row(
    claim: &Claim,
    fingerprint: &Fingerprint,
    response: &StoredResponse,
    body: (Vec<u8>, bool),
    at: OffsetDateTime,
) -> idem::ActiveModel {
    let scope = &claim.scope;
    idem::ActiveModel {
        storage_key: Set(scope.storage_key()),
        org_id: Set(scope.org_id.as_uuid()),
        fingerprint: Set(fingerprint.as_str().to_owned()),
        state: Set(idem::COMPLETED.to_owned()),
        lease_until_us: Set(None),
        response_status: Set(Some(i32::from(response.status))),
        response_body: Set(Some(body.0)),
        response_location: Set(response.location.clone()),
        response_etag: Set(response.etag.clone()),
        created_at_us: Set(to_us(at)),
        updated_at_us: Set(to_us(at)),
        claim_token: Set(Some(claim.token.to_hex())),
        response_sealed: Set(body.1),
    }
}

/// The body as stored: sealed by `cipher` when it shows a secret.
///
/// # Errors
/// A response that shows a secret and no cipher to seal it: it is never stored in the clear.
pub(crate) fn stored_body(response: &StoredResponse, cipher: Option<&dyn SecretCipher>) -> Result<(Vec<u8>, bool), StoreError> {
    match (response.shows_secret, cipher) {
        (false, _) => Ok((response.body.clone(), false)),
        (true, Some(cipher)) => Ok((cipher.seal(&response.body), true)),
        (true, None) => Err(StoreError::new("storing an idempotent answer", "it shows a secret and the store has no cipher to seal it")),
    }
}

/// The `UPDATE` that completes this claim's in-progress record with `response` (its body as
/// [`stored_body`] made it); a record that is no longer in progress, or is another claim's, is
/// left alone. Shared by `complete` and the journal.
pub(crate) fn completion(claim: &Claim, response: &StoredResponse, body: (Vec<u8>, bool), at: OffsetDateTime) -> UpdateMany<idem::Entity> {
    let scope = &claim.scope;
    idem::Entity::update_many()
        .col_expr(idem::Column::State, Expr::value(idem::COMPLETED))
        .col_expr(idem::Column::LeaseUntilUs, Expr::value(Option::<i64>::None))
        .col_expr(idem::Column::ResponseStatus, Expr::value(i32::from(response.status)))
        .col_expr(idem::Column::ResponseBody, Expr::value(body.0))
        .col_expr(idem::Column::ResponseSealed, Expr::value(body.1))
        .col_expr(idem::Column::ResponseLocation, Expr::value(response.location.clone()))
        .col_expr(idem::Column::ResponseEtag, Expr::value(response.etag.clone()))
        .col_expr(idem::Column::UpdatedAtUs, Expr::value(to_us(at)))
        .filter(idem::Column::StorageKey.eq(scope.storage_key()))
        .filter(idem::Column::OrgId.eq(scope.org_id.as_uuid()))
        .filter(idem::Column::State.eq(idem::IN_PROGRESS))
        .filter(idem::Column::ClaimToken.eq(claim.token.to_hex()))
}

#[async_trait]
impl IdempotencyStore for SqlStore {
    async fn begin(&self, claim: &Claim, fingerprint: &Fingerprint, now: OffsetDateTime) -> Result<Begin, IdempotencyError> {
        let scope = &claim.scope;
        let storage_key = scope.storage_key();
        let fresh = claim_row(claim, &storage_key, fingerprint, now);
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
            match decide(Some(&record_from_row(&row, self.secret_cipher.as_deref())?), fingerprint, now) {
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

    async fn complete(&self, claim: &Claim, response: &StoredResponse, now: OffsetDateTime) -> Result<(), IdempotencyError> {
        let body = stored_body(response, self.secret_cipher.as_deref())?;
        completion(claim, response, body, now).exec(&self.db).await.map_err(db("completing an idempotency record"))?;
        Ok(())
    }

    async fn release(&self, claim: &Claim) -> Result<(), IdempotencyError> {
        let scope = &claim.scope;
        idem::Entity::delete_many()
            .filter(idem::Column::StorageKey.eq(scope.storage_key()))
            .filter(idem::Column::OrgId.eq(scope.org_id.as_uuid()))
            .filter(idem::Column::State.eq(idem::IN_PROGRESS))
            .filter(idem::Column::ClaimToken.eq(claim.token.to_hex()))
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

    fn claims_at_commit(&self) -> bool {
        true
    }

    async fn lookup(&self, scope: &IdempotencyScope) -> Result<Option<IdempotencyRecord>, IdempotencyError> {
        let row = idem::Entity::find_by_id(scope.storage_key())
            .filter(idem::Column::OrgId.eq(scope.org_id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading an idempotency record"))?;
        Ok(row.map(|row| record_from_row(&row, self.secret_cipher.as_deref())).transpose()?)
    }
}
