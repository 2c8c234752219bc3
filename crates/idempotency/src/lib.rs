//! Idempotency: a key the client sends with a mutating request, the scope it lives in
//! (organization, scope, route, key), a fingerprint of the request, and the pure decision
//! (execute, replay, reused, in progress, expired) that every `IdempotencyStore` applies.

mod decision;
mod fingerprint;
mod key;
mod outcome;
mod store;

pub use decision::{decide, Decision, IdempotencyRecord, RecordState, StoredResponse, CLAIM_LEASE, RETENTION};
pub use fingerprint::{canonical_json, Fingerprint};
pub use key::{Claim, ClaimToken, IdempotencyKey, IdempotencyScope, KeyError};
pub use outcome::stores_outcome;
pub use store::{claim, Begin, Claimed, IdempotencyError, IdempotencyStore};
