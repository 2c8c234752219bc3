//! Runs, the audit log: every mutating call and every agent tool call records one. A run is
//! written by a [`JournalEntry`] that commits in the same transaction as the call's effect,
//! together with the idempotency outcome, so the log never claims what did not happen.

use async_trait::async_trait;
use atlas_idempotency::{Claim, StoredResponse};
use atlas_kernel::{typed_id, OrgId, Page, PageRequest, StoreError};
use atlas_scopes::Actor;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

typed_id!(
    /// One audited call.
    RunId,
    "run"
);

/// Where a run stands. A send stays `pending` until the provider accepts or refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Succeeded,
    Failed,
}

impl RunStatus {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pending" => Some(RunStatus::Pending),
            "succeeded" => Some(RunStatus::Succeeded),
            "failed" => Some(RunStatus::Failed),
            _ => None,
        }
    }
}

/// Why a run failed: the error code and message its caller saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    pub code: String,
    pub message: String,
}

/// One audited call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub id: RunId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub actor: Actor,
    /// What was done: `keys.create`, `messages.send`, `incidents.update`, …
    pub operation: String,
    pub status: RunStatus,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    /// The resource the call created or changed.
    pub resource_id: Option<String>,
    pub error: Option<RunError>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What a use case commits beside its effect: its run; when the request carried a key and
/// the idempotency store commits with effects, the outcome to replay; and the events its change
/// is news of, for the webhook outbox (written in the same transaction, delivered later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub run: Run,
    pub idempotency: Option<(Claim, StoredResponse)>,
    pub events: Vec<OutboxEvent>,
}

impl JournalEntry {
    /// The entry of a call the server makes itself (an operator command, a provider webhook):
    /// a succeeded run by the system actor on `resource_id`, no idempotency outcome, no event.
    pub fn by_system(org_id: OrgId, operation: &str, resource_id: String, request_id: String, at: OffsetDateTime) -> Self {
        JournalEntry {
            run: Run {
                id: RunId::generate(),
                org_id,
                actor: Actor::System,
                operation: operation.to_owned(),
                status: RunStatus::Succeeded,
                request_id,
                idempotency_key: None,
                resource_id: Some(resource_id),
                error: None,
                created_at: at,
                updated_at: at,
            },
            idempotency: None,
            events: Vec::new(),
        }
    }
}

/// An event for subscribers, as the webhook outbox stores it: the exact payload every delivery
/// of it will carry (signed bytes never change between retries), its type, and the version of
/// the resource it is about, so consumers can drop stale events. Its organization is the run's.
/// (`atlas-webhooks` builds them; this crate only carries them.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub id: uuid::Uuid,
    /// `atlas.event.received`, `agent.message_delivery`, `incident.created`, …
    pub event_type: String,
    pub occurred_at: OffsetDateTime,
    pub resource_id: Option<String>,
    pub version: i64,
    /// `{"type", "timestamp", "data"}` as JSON bytes.
    pub payload: Vec<u8>,
    /// The one webhook endpoint this event is addressed to (an external agent's own
    /// subscription); `None` broadcasts it to every endpoint whose filters match.
    pub to: Option<uuid::Uuid>,
}

/// Builds a call's journal entry from what its store found or created, inside the store's
/// transaction (the ids of an upserted row, whether a token was reused). Every closure
/// `Fn(&T) -> J + Send + Sync` is one, so callers write `&|outcome: &Enqueued| entry_for(outcome)`.
/// (A named trait rather than `dyn Fn` because ports are mocked with mockall, which cannot mock
/// `Fn` arguments.)
pub trait Journal<T, J = JournalEntry>: Send + Sync {
    /// The entry (the run, the idempotency outcome to replay, the events) for `outcome`.
    fn entry(&self, outcome: &T) -> J;
}

impl<T, J, F> Journal<T, J> for F
where
    F: Fn(&T) -> J + Send + Sync,
{
    fn entry(&self, outcome: &T) -> J {
        self(outcome)
    }
}

/// Which runs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub operation: Option<String>,
    pub status: Option<RunStatus>,
    pub resource_id: Option<String>,
    pub created_after: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
}

/// Failures of a run store.
#[derive(Debug, Error)]
pub enum RunsError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where runs live.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RunStore: Send + Sync + std::fmt::Debug {
    /// Commits a journal entry with no other effect (a call refused by a business rule, whose
    /// outcome is still replayed): the run and the idempotency outcome, in one transaction.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn record(&self, entry: &JournalEntry) -> Result<(), RunsError>;

    /// One run of the organization.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn get(&self, org_id: OrgId, id: RunId) -> Result<Option<Run>, RunsError>;

    /// The organization's runs matching `filter`, newest first (creation time, then id).
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn list(&self, org_id: OrgId, filter: &RunFilter, page: &PageRequest) -> Result<Page<Run>, RunsError>;

    /// Moves a pending run to its final status.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn finish(
        &self,
        org_id: OrgId,
        id: RunId,
        status: RunStatus,
        error: Option<RunError>,
        at: OffsetDateTime,
    ) -> Result<(), RunsError>;
}
