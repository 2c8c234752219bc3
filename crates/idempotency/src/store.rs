//! The `IdempotencyStore` port. A store claims a key atomically (so N concurrent requests with
//! one key execute once), records the outcome, and forgets a claim whose request stored nothing.
//!
//! The SQL store commits the outcome in the same transaction as the effect (its
//! `commits_with_effect` is true: the use case's journal entry carries the outcome); other
//! stores are told the outcome after the effect committed, through `complete`.

use crate::{Claim, Decision, Fingerprint, IdempotencyRecord, IdempotencyScope, StoredResponse};
use async_trait::async_trait;
use atlas_kernel::StoreError;
use thiserror::Error;
use time::OffsetDateTime;

/// What `begin` found, and whether the caller now holds the key.
pub type Begin = Decision;

/// Failures of an idempotency store.
#[derive(Debug, Error)]
pub enum IdempotencyError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where idempotency records live.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync + std::fmt::Debug {
    /// Looks the key (`claim.scope`) up and applies [`crate::decide`]; when the decision
    /// executes, atomically claims the key (in progress, leased for [`crate::CLAIM_LEASE`],
    /// fenced by `claim.token`) so no concurrent request with the same key also executes.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn begin(&self, claim: &Claim, fingerprint: &Fingerprint, now: OffsetDateTime) -> Result<Begin, IdempotencyError>;

    /// Records the outcome of a claimed key (used when the store cannot commit with the effect),
    /// only while the record is still this claim's (same token, in progress).
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn complete(&self, claim: &Claim, response: &StoredResponse, now: OffsetDateTime) -> Result<(), IdempotencyError>;

    /// Drops this claim (same token, in progress) when its request stored nothing (auth, scope,
    /// rate-limit and 5xx failures), so a retry runs afresh. A completed record, or a later
    /// claim that took the key over, is left alone.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn release(&self, claim: &Claim) -> Result<(), IdempotencyError>;

    /// Removes records past retention; returns how many.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, IdempotencyError>;

    /// Whether the outcome commits inside the use case's own transaction (the journal entry).
    fn commits_with_effect(&self) -> bool;

    /// Whether the store can take a claim at commit ([`Claim::at_commit`]): the effect's
    /// transaction inserts the completed record and is refused when the key was taken first.
    /// Such a store answers [`lookup`](Self::lookup). Default: no.
    fn claims_at_commit(&self) -> bool {
        false
    }

    /// The record of `scope`, if any, in one indexed read (a replay's only statement). A store
    /// that does not [`claims_at_commit`](Self::claims_at_commit) finds nothing.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn lookup(&self, scope: &IdempotencyScope) -> Result<Option<IdempotencyRecord>, IdempotencyError> {
        let _ = scope;
        Ok(None)
    }
}

/// What [`claim`] decided for a key.
#[derive(Debug)]
pub enum Claimed {
    /// Execute, committing (or completing) this claim with the effect.
    Execute(Claim),
    /// Do not execute: answer with this decision (a replay, a reuse, in progress).
    Answer(Decision),
}

/// Claims `scope` for a request fingerprinted `fingerprint`: with `at_commit` (the store must
/// [`claim at commit`](IdempotencyStore::claims_at_commit)) the key is read once and a free key
/// is left for the effect's own transaction to take ([`Claim::at_commit`]); otherwise, and to
/// take over a record (expired, or an abandoned claim), the store's `begin` holds it first.
///
/// # Errors
/// `Store` when the backing store fails.
pub async fn claim(
    store: &dyn IdempotencyStore,
    scope: IdempotencyScope,
    token: crate::ClaimToken,
    fingerprint: Fingerprint,
    now: OffsetDateTime,
    at_commit: bool,
) -> Result<Claimed, IdempotencyError> {
    if at_commit {
        let record = store.lookup(&scope).await?;
        match crate::decide(record.as_ref(), &fingerprint, now) {
            Decision::Execute => return Ok(Claimed::Execute(Claim::at_commit(scope, token, fingerprint))),
            // Taking a record over is a compare-and-set on the record as read: `begin`'s.
            Decision::Expired => {}
            decision => return Ok(Claimed::Answer(decision)),
        }
    }
    let held = Claim::held(scope, token);
    Ok(match store.begin(&held, &fingerprint, now).await? {
        Decision::Execute | Decision::Expired => Claimed::Execute(held),
        decision => Claimed::Answer(decision),
    })
}
