//! The `IncidentStore` port: what the incident use cases need from storage. A mutating call is
//! a list of [`Step`]s applied in **one transaction** with the call's journal entry: each step
//! names its target (a dedup key, an incident, or nothing), the store locks and reads the
//! incidents it designates, the step's pure `decide` says what to do ([`Plan`]), and the store
//! writes it (a new incident with the next reference, or the changed incident and its new
//! timeline entries), then the journal (run, idempotency outcome, webhook events).

use crate::machine::Status;
use crate::model::EntryKind;
use crate::model::{Incident, IncidentError, IncidentId, IncidentKey, Reference, Severity, TimelineEntry};
use async_trait::async_trait;
use atlas_kernel::{OrgId, Page, PageRequest};
use atlas_runs::{Journal, JournalEntry};
use serde::Serialize;
use time::OffsetDateTime;

/// What a step designates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Nothing: `decide` sees no incident (a create without a dedup key).
    Nothing,
    /// Every incident carrying this dedup key that is not closed (locked, so signals with one
    /// key are applied one at a time).
    DedupKey(String),
    /// One incident (locked); `decide` sees none when it does not exist.
    Incident(IncidentKey),
}

/// What a step did, as the answer says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Appended,
    Reopened,
    Updated,
    Acknowledged,
    Resolved,
    Dropped,
}

/// A new incident before its reference is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIncident {
    pub id: IncidentId,
    pub org_id: OrgId,
    pub title: String,
    pub description: Option<String>,
    pub severity: Severity,
    pub source: Option<String>,
    pub ci_ids: Vec<String>,
    pub assignee: Option<String>,
    pub dedup_key: Option<String>,
    pub who: String,
    pub at: OffsetDateTime,
}

impl NewIncident {
    /// The incident, `triggered`, with reference `reference`, and its first timeline entry.
    pub fn build(self, reference: Reference) -> (Incident, TimelineEntry) {
        let mut incident = Incident {
            id: self.id,
            org_id: self.org_id,
            reference,
            title: self.title,
            description: self.description,
            severity: self.severity,
            status: Status::Triggered,
            source: self.source,
            ci_ids: self.ci_ids,
            assignee: self.assignee,
            dedup_key: self.dedup_key,
            resolution_notes: None,
            resolved_by: None,
            version: 0,
            occurrences: 1,
            reopen_count: 0,
            last_sequence: 0,
            triggered_at: self.at,
            opened_at: None,
            acknowledged_at: None,
            investigating_at: None,
            resolved_at: None,
            closed_at: None,
            reopened_at: None,
            last_occurrence_at: self.at,
            created_at: self.at,
            updated_at: self.at,
        };
        let entry = incident.record(EntryKind::Created, &self.who, None, Some(Status::Triggered), None, self.at);
        (incident, entry)
    }
}

/// What a step's `decide` says to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Create this incident (the store gives it the organization's next reference).
    Create(Box<NewIncident>),
    /// Write the incident as changed (it was at `previous_version`) and its new entries.
    Change { incident: Box<Incident>, previous_version: i64, entries: Vec<TimelineEntry>, outcome: Outcome },
    /// Change nothing; the answer says why.
    Nothing { outcome: Outcome, reason: String, incident: Option<Box<Incident>> },
}

/// A step's pure decision over the incidents its target designates.
pub type Decide<'a> = dyn Fn(&[Incident]) -> Result<Plan, IncidentError> + Send + Sync + 'a;

/// One step of a mutating call.
pub struct Step<'a> {
    pub target: Target,
    pub decide: &'a Decide<'a>,
}

impl std::fmt::Debug for Step<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step").field("target", &self.target).finish_non_exhaustive()
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub outcome: Outcome,
    pub incident: Option<Incident>,
    /// The timeline entries it added, in order.
    pub entries: Vec<TimelineEntry>,
    /// Why nothing changed (a dropped alert).
    pub reason: Option<String>,
}

/// Which incidents a list shows (all given conditions hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentFilter {
    pub status: Option<Status>,
    pub severity: Option<Severity>,
    pub source: Option<String>,
    /// Incidents naming this configuration item.
    pub ci_id: Option<String>,
    /// Triggered at or after.
    pub from: Option<OffsetDateTime>,
    /// Triggered before.
    pub to: Option<OffsetDateTime>,
}

/// Incident storage.
#[async_trait]
pub trait IncidentStore: Send + Sync + std::fmt::Debug {
    /// Applies `steps` in order and the journal entry of their results, in one transaction;
    /// a step whose `decide` fails rolls everything back and returns its error.
    ///
    /// # Errors
    /// The first `decide` error; `Store`.
    async fn apply(
        &self,
        org_id: OrgId,
        steps: &[Step<'_>],
        journal: &dyn Journal<Vec<Applied>, JournalEntry>,
    ) -> Result<Vec<Applied>, IncidentError>;

    /// One incident.
    ///
    /// # Errors
    /// `NotFound`; `Store`.
    async fn get(&self, org_id: OrgId, key: IncidentKey) -> Result<Incident, IncidentError>;

    /// Incidents, newest first.
    ///
    /// # Errors
    /// `Store`.
    async fn list(&self, org_id: OrgId, filter: &IncidentFilter, page: &PageRequest) -> Result<Page<Incident>, IncidentError>;

    /// Up to `limit` incidents matching `filter`, oldest first (for metrics).
    ///
    /// # Errors
    /// `Store`.
    async fn matching(&self, org_id: OrgId, filter: &IncidentFilter, limit: u64) -> Result<Vec<Incident>, IncidentError>;

    /// An incident's timeline, in sequence order.
    ///
    /// # Errors
    /// `NotFound`; `Store`.
    async fn timeline(&self, org_id: OrgId, key: IncidentKey) -> Result<Vec<TimelineEntry>, IncidentError>;
}
