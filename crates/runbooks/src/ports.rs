//! The runbook ports: `RunbookStore` (definitions, executions, the worker's claim and finish)
//! and `StepCaller` (one http step's request, to addresses the SSRF guard already checked).

use crate::model::{Execution, ExecutionId, HttpMethod, Runbook, RunbookDraft, RunbookError, RunbookId};
use crate::plan::PlannedRequest;
use async_trait::async_trait;
use atlas_kernel::{OrgId, Page, PageRequest};
use atlas_runs::{Journal, JournalEntry};
use atlas_webhooks::{Response, SendError, TargetUrl};
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};

/// An execution the worker claimed, with its real requests and the secrets to redact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub execution: Execution,
    /// One per step (`None` for manual steps), secrets in place.
    pub requests: Vec<Option<PlannedRequest>>,
    pub secrets: Vec<String>,
    /// The claim's attempt number; `finish` is refused to a stale claimer.
    pub attempt: i32,
}

/// Runbook storage.
#[async_trait]
pub trait RunbookStore: Send + Sync + std::fmt::Debug {
    /// Inserts a new runbook with its journal entry.
    ///
    /// # Errors
    /// `Store`.
    async fn create_runbook(&self, runbook: &Runbook, journal: &dyn Journal<Runbook, JournalEntry>) -> Result<(), RunbookError>;

    /// Replaces a runbook's content: its version grows by one.
    ///
    /// # Errors
    /// `NotFound`; `Store`.
    async fn replace_runbook(
        &self,
        org_id: OrgId,
        id: RunbookId,
        draft: &RunbookDraft,
        at: OffsetDateTime,
        journal: &dyn Journal<Runbook, JournalEntry>,
    ) -> Result<Runbook, RunbookError>;

    /// One runbook.
    ///
    /// # Errors
    /// `NotFound`; `Store`.
    async fn runbook(&self, org_id: OrgId, id: RunbookId) -> Result<Runbook, RunbookError>;

    /// Runbooks, newest first.
    ///
    /// # Errors
    /// `Store`.
    async fn runbooks(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Runbook>, RunbookError>;

    /// Queues an execution (with its real requests and secrets, kept sealed until it
    /// finishes) if its runbook is still at `execution.runbook_version`.
    ///
    /// # Errors
    /// `PlanStale` when the runbook changed meanwhile; `NotFound`; `Store`.
    async fn enqueue(
        &self,
        execution: &Execution,
        requests: &[Option<PlannedRequest>],
        secrets: &[String],
        journal: &dyn Journal<Execution, JournalEntry>,
    ) -> Result<(), RunbookError>;

    /// A runbook's executions, newest first.
    ///
    /// # Errors
    /// `Store`.
    async fn executions(&self, org_id: OrgId, runbook_id: RunbookId, page: &PageRequest) -> Result<Page<Execution>, RunbookError>;

    /// One execution.
    ///
    /// # Errors
    /// `NotFound`; `Store`.
    async fn execution(&self, org_id: OrgId, id: ExecutionId) -> Result<Execution, RunbookError>;

    /// Claims the oldest queued execution (or a running one whose lease lapsed), marking it
    /// running under a lease until `now + lease`.
    ///
    /// # Errors
    /// `Store`.
    async fn claim(&self, now: OffsetDateTime, lease: Duration) -> Result<Option<Claimed>, RunbookError>;

    /// Records a finished execution (its steps as run, its final status), forgets its sealed
    /// requests, and writes `journal` (the system run and the event), if `attempt` is still the
    /// execution's claim. `false` when it is not.
    ///
    /// # Errors
    /// `Store`.
    async fn finish(&self, execution: &Execution, attempt: i32, journal: &JournalEntry) -> Result<bool, RunbookError>;
}

/// Sends one http step's request.
///
/// The adapter must connect **only** to `addresses` (checked by the SSRF guard) at
/// `url.port()`, never follow redirects, give up after `timeout`, and read a bounded excerpt.
#[async_trait]
pub trait StepCaller: Send + Sync + std::fmt::Debug {
    /// Sends `method url` with `body` (content type and bytes).
    ///
    /// # Errors
    /// A [`SendError`] when no answer arrived; any answer is `Ok`.
    async fn call(
        &self,
        method: HttpMethod,
        url: &TargetUrl,
        addresses: &[IpAddr],
        body: Option<(&'static str, Vec<u8>)>,
        timeout: Duration,
    ) -> Result<Response, SendError>;
}
