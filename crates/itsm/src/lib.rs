//! ITSM: change requests with their state machine and approvals under a quorum per type
//! ([`change`]), blackout windows and the scheduling conflict found through the CMDB blast
//! radius ([`blackout`]), the service catalog and its requests ([`catalog`]), deterministic
//! root-cause analysis ([`rca`]); the [`ItsmStore`] port and the use cases over it
//! ([`Changes`], [`ServiceDesk`], [`RootCauses`]). Pure: no runtime, database or HTTP.

pub mod blackout;
pub mod catalog;
pub mod change;
mod incident_records;
pub mod rca;

pub use blackout::{violations, Blackout, BlackoutId, InRadius, Violation};
pub use catalog::{CatalogItem, CatalogItemId, InvalidRequestTransition, RequestStatus, ServiceRequest, ServiceRequestId};
pub use change::{
    Approval, ApprovalId, ChangeId, ChangeRequest, ChangeStatus, ChangeType, Decision, DecisionRefused, InvalidTransition, RiskLevel,
    StatusTimes,
};
pub use incident_records::{IncidentRecords, MAX_EARLIER_INCIDENTS};
pub use rca::{Analysis, IncidentFacts, IncidentHistory, RcaConfig};

use async_trait::async_trait;
use atlas_cmdb::{CiId, Cmdb, CmdbError, Direction};
use atlas_kernel::{Clock, OrgId, Page, PageRequest, StoreError};
use atlas_runs::{Journal, JournalEntry};
use std::collections::BTreeMap;
use std::sync::Arc;
use thiserror::Error;
use time::OffsetDateTime;

/// How many times a use case re-reads a record whose version moved on under it.
const CAS_ATTEMPTS: usize = 3;
/// The longest title or name, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The longest free text (plans, descriptions, comments), in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// The most items a change or blackout names.
pub const MAX_CI_IDS: usize = 100;

/// Why an ITSM store call failed.
#[derive(Debug, Error)]
pub enum ItsmStoreError {
    /// The record's version moved on since it was read.
    #[error("the record changed meanwhile")]
    Conflict,
    /// This approver has a decision on the change already.
    #[error("this approver has decided already")]
    AlreadyDecided,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which changes a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    pub status: Option<ChangeStatus>,
}

/// Which service requests a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    pub status: Option<RequestStatus>,
}

/// Where changes, approvals, blackouts, the catalog and service requests live.
#[async_trait]
pub trait ItsmStore: Send + Sync + std::fmt::Debug {
    /// Inserts a new change with its journal entry.
    ///
    /// # Errors
    /// `Store`.
    async fn insert_change(&self, change: &ChangeRequest, journal: &JournalEntry) -> Result<(), ItsmStoreError>;

    /// One change, with its approvals in the order recorded.
    ///
    /// # Errors
    /// `Store`.
    async fn change(&self, org_id: OrgId, id: ChangeId) -> Result<Option<ChangeRequest>, ItsmStoreError>;

    /// Changes, newest first, with their approvals.
    ///
    /// # Errors
    /// `Store`.
    async fn changes(&self, org_id: OrgId, filter: &ChangeFilter, page: &PageRequest) -> Result<Page<ChangeRequest>, ItsmStoreError>;

    /// Writes `change` (status, times, version, updated time) when its stored version is still
    /// `expected_version`, inserting `approval` when given, with the journal entry: all or nothing.
    ///
    /// # Errors
    /// `Conflict` when the version moved on; `AlreadyDecided` when the approver has a
    /// decision on the change; `Store`.
    async fn save_change(
        &self,
        change: &ChangeRequest,
        expected_version: i64,
        approval: Option<&Approval>,
        journal: &JournalEntry,
    ) -> Result<(), ItsmStoreError>;

    /// The changes whose implementation started in `[from, to]`.
    ///
    /// # Errors
    /// `Store`.
    async fn changes_started_between(
        &self,
        org_id: OrgId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<ChangeRequest>, ItsmStoreError>;

    /// Inserts a blackout with its journal entry.
    ///
    /// # Errors
    /// `Store`.
    async fn insert_blackout(&self, blackout: &Blackout, journal: &JournalEntry) -> Result<(), ItsmStoreError>;

    /// Blackouts, newest first.
    ///
    /// # Errors
    /// `Store`.
    async fn blackouts(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Blackout>, ItsmStoreError>;

    /// The blackouts overlapping `[start, end)`.
    ///
    /// # Errors
    /// `Store`.
    async fn blackouts_overlapping(
        &self,
        org_id: OrgId,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Result<Vec<Blackout>, ItsmStoreError>;

    /// Inserts a catalog item with its journal entry.
    ///
    /// # Errors
    /// `Store`.
    async fn insert_catalog_item(&self, item: &CatalogItem, journal: &JournalEntry) -> Result<(), ItsmStoreError>;

    /// One catalog item.
    ///
    /// # Errors
    /// `Store`.
    async fn catalog_item(&self, org_id: OrgId, id: CatalogItemId) -> Result<Option<CatalogItem>, ItsmStoreError>;

    /// The catalog, newest first.
    ///
    /// # Errors
    /// `Store`.
    async fn catalog(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<CatalogItem>, ItsmStoreError>;

    /// Inserts a service request with its journal entry.
    ///
    /// # Errors
    /// `Store`.
    async fn insert_request(&self, request: &ServiceRequest, journal: &JournalEntry) -> Result<(), ItsmStoreError>;

    /// One service request.
    ///
    /// # Errors
    /// `Store`.
    async fn request(&self, org_id: OrgId, id: ServiceRequestId) -> Result<Option<ServiceRequest>, ItsmStoreError>;

    /// Service requests, newest first.
    ///
    /// # Errors
    /// `Store`.
    async fn requests(&self, org_id: OrgId, filter: &RequestFilter, page: &PageRequest) -> Result<Page<ServiceRequest>, ItsmStoreError>;

    /// Writes `request` when its stored version is still `expected_version`, with the journal.
    ///
    /// # Errors
    /// `Conflict` when the version moved on; `Store`.
    async fn save_request(&self, request: &ServiceRequest, expected_version: i64, journal: &JournalEntry) -> Result<(), ItsmStoreError>;
}

/// Why an ITSM use case refused or failed. The HTTP layer maps each variant once.
#[derive(Debug, Error)]
pub enum ItsmError {
    /// A field is malformed (`VALIDATION_ERROR` naming `field`).
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The record (or one a field names) is absent (`NOT_FOUND`).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The state machine refuses (`INVALID_TRANSITION`, `details.allowed`).
    #[error("cannot move from {from} to {to}")]
    InvalidTransition { from: &'static str, to: &'static str, allowed: Vec<&'static str> },
    /// The change's window meets a blackout in its blast radius (`CHANGE_CONFLICT`).
    #[error("the change's window meets {} blackout(s) in its blast radius", .0.len())]
    ChangeConflict(Vec<Violation>),
    /// The decision is refused: the approver decided already, or the change is not
    /// `submitted` (`CONFLICT`).
    #[error("{}", match .0 { DecisionRefused::AlreadyDecided => "this approver has decided already; a decision never changes".to_owned(), DecisionRefused::NotSubmitted(s) => format!("the change is {}, not submitted: decisions are closed", s.as_str()) })]
    DecisionRefused(DecisionRefused),
    /// The record changed under the call too often (`CONFLICT`, retryable).
    #[error("the record changed meanwhile; retry")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ItsmStoreError> for ItsmError {
    fn from(e: ItsmStoreError) -> Self {
        match e {
            ItsmStoreError::Conflict => ItsmError::Busy,
            ItsmStoreError::AlreadyDecided => ItsmError::DecisionRefused(DecisionRefused::AlreadyDecided),
            ItsmStoreError::Store(s) => ItsmError::Store(s),
        }
    }
}

impl From<CmdbError> for ItsmError {
    fn from(e: CmdbError) -> Self {
        match e {
            CmdbError::Invalid { field, message } => ItsmError::Invalid { field, message },
            CmdbError::NotFound(what) => ItsmError::NotFound(what),
            CmdbError::Duplicate => ItsmError::Busy,
            CmdbError::Store(s) => ItsmError::Store(s),
        }
    }
}

/// The clock's instant at microsecond precision, as stored: an answer shows the same times a
/// later read does.
fn now(clock: &dyn Clock) -> time::OffsetDateTime {
    let at = clock.now();
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000).unwrap_or(at)
}

fn invalid(field: &'static str, message: impl Into<String>) -> ItsmError {
    ItsmError::Invalid { field, message: message.into() }
}

fn title(field: &'static str, text: &str) -> Result<String, ItsmError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_TITLE_CHARS {
        return Err(invalid(field, format!("1 to {MAX_TITLE_CHARS} characters")));
    }
    Ok(text.to_owned())
}

fn text(field: &'static str, text: Option<String>) -> Result<Option<String>, ItsmError> {
    match text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) {
        Some(t) if t.chars().count() > MAX_TEXT_CHARS => Err(invalid(field, format!("at most {MAX_TEXT_CHARS} characters"))),
        other => Ok(other),
    }
}

/// Approvals needed per change type (standard changes need none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangePolicy {
    pub normal_quorum: u32,
    pub emergency_quorum: u32,
}

impl Default for ChangePolicy {
    /// One approval for normal and emergency changes.
    fn default() -> Self {
        Self { normal_quorum: 1, emergency_quorum: 1 }
    }
}

impl ChangePolicy {
    /// The quorum of a change of `change_type`.
    pub fn quorum(&self, change_type: ChangeType) -> u32 {
        match change_type {
            ChangeType::Standard => 0,
            ChangeType::Normal => self.normal_quorum,
            ChangeType::Emergency => self.emergency_quorum,
        }
    }
}

/// `POST /v1/atlas/itsm/changes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    pub title: String,
    pub description: Option<String>,
    pub change_type: ChangeType,
    pub risk_level: RiskLevel,
    pub requested_start: Option<OffsetDateTime>,
    pub requested_end: Option<OffsetDateTime>,
    pub implementation_plan: Option<String>,
    pub rollback_plan: Option<String>,
    pub requested_by: Option<String>,
    pub ci_ids: Vec<CiId>,
}

/// `POST /v1/atlas/itsm/blackouts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlackout {
    pub ci_ids: Vec<CiId>,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    pub reason: String,
}

/// A recorded decision and the change after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub change: ChangeRequest,
    pub approval: Approval,
}

/// A status change: the change after it, and the state it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub change: ChangeRequest,
    pub from: ChangeStatus,
}

/// The change use cases: changes, approvals, blackouts.
#[derive(Debug, Clone)]
pub struct Changes {
    store: Arc<dyn ItsmStore>,
    cmdb: Arc<Cmdb>,
    clock: Arc<dyn Clock>,
    policy: ChangePolicy,
}

fn distinct(ids: Vec<CiId>) -> Vec<CiId> {
    let mut ids = ids;
    ids.sort();
    ids.dedup();
    ids
}

impl Changes {
    /// The use cases over `store`, finding blast radii through `cmdb`.
    pub fn new(store: Arc<dyn ItsmStore>, cmdb: Arc<Cmdb>, clock: Arc<dyn Clock>, policy: ChangePolicy) -> Self {
        Self { store, cmdb, clock, policy }
    }

    async fn known_items(&self, org_id: OrgId, field: &'static str, ids: Vec<CiId>) -> Result<Vec<CiId>, ItsmError> {
        let ids = distinct(ids);
        if ids.len() > MAX_CI_IDS {
            return Err(invalid(field, format!("at most {MAX_CI_IDS} items")));
        }
        let found = self.cmdb.items_by_id(org_id, &ids).await?;
        if let Some(missing) = ids.iter().find(|id| !found.iter().any(|f| f.id == **id)) {
            return Err(invalid(field, format!("no configuration item {missing}")));
        }
        Ok(ids)
    }

    /// Creates a change in `draft`.
    ///
    /// # Errors
    /// `Invalid` (title, window, texts, unknown items); `Store`.
    pub async fn create(&self, org_id: OrgId, new: NewChange, journal: &dyn Journal<ChangeRequest>) -> Result<ChangeRequest, ItsmError> {
        let title = title("title", &new.title)?;
        if let (Some(start), Some(end)) = (new.requested_start, new.requested_end) {
            if end <= start {
                return Err(invalid("requested_end", "must be after requested_start"));
            }
        }
        let ci_ids = self.known_items(org_id, "ci_ids", new.ci_ids).await?;
        let now = now(self.clock.as_ref());
        let change = ChangeRequest {
            id: ChangeId::generate(),
            org_id,
            title,
            description: text("description", new.description)?,
            change_type: new.change_type,
            risk_level: new.risk_level,
            status: ChangeStatus::Draft,
            requested_start: new.requested_start,
            requested_end: new.requested_end,
            implementation_plan: text("implementation_plan", new.implementation_plan)?,
            rollback_plan: text("rollback_plan", new.rollback_plan)?,
            requested_by: text("requested_by", new.requested_by)?,
            ci_ids,
            quorum: self.policy.quorum(new.change_type),
            approvals: Vec::new(),
            version: 1,
            times: StatusTimes::default(),
            created_at: now,
            updated_at: now,
        };
        self.store.insert_change(&change, &journal.entry(&change)).await?;
        Ok(change)
    }

    /// One change.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn get(&self, org_id: OrgId, id: ChangeId) -> Result<ChangeRequest, ItsmError> {
        self.store.change(org_id, id).await?.ok_or(ItsmError::NotFound("change"))
    }

    /// Changes, newest first.
    ///
    /// # Errors
    /// `Store`.
    pub async fn list(&self, org_id: OrgId, filter: &ChangeFilter, page: &PageRequest) -> Result<Page<ChangeRequest>, ItsmError> {
        Ok(self.store.changes(org_id, filter, page).await?)
    }

    /// The blast radius of changing `ci_ids`: each of them (depth 0) and every item that
    /// transitively depends on one, at its smallest depth, with one shortest path.
    ///
    /// # Errors
    /// `Store`.
    pub async fn blast_radius(&self, org_id: OrgId, ci_ids: &[CiId]) -> Result<BTreeMap<CiId, InRadius>, ItsmError> {
        radius(&self.cmdb, org_id, ci_ids, Direction::Downstream, None).await
    }

    /// `PATCH {"status": to}`. Scheduling checks the requested window against every blackout
    /// on the blast radius.
    ///
    /// # Errors
    /// `InvalidTransition`; `Invalid` when scheduling a change without a window;
    /// `ChangeConflict`; `NotFound`; `Busy`; `Store`.
    pub async fn transition(
        &self,
        org_id: OrgId,
        id: ChangeId,
        to: ChangeStatus,
        journal: &dyn Journal<Moved>,
    ) -> Result<Moved, ItsmError> {
        for _ in 0..CAS_ATTEMPTS {
            let mut change = self.get(org_id, id).await?;
            let (from, expected) = (change.status, change.version);
            change.request(to, now(self.clock.as_ref())).map_err(|e| ItsmError::InvalidTransition {
                from: e.from.as_str(),
                to: e.to.as_str(),
                allowed: e.allowed.iter().map(|s| s.as_str()).collect(),
            })?;
            if to == ChangeStatus::Scheduled {
                let (Some(start), Some(end)) = (change.requested_start, change.requested_end) else {
                    return Err(invalid("requested_start", "a change needs requested_start and requested_end to be scheduled"));
                };
                let blackouts = self.store.blackouts_overlapping(org_id, start, end).await?;
                if !blackouts.is_empty() {
                    let radius = self.blast_radius(org_id, &change.ci_ids).await?;
                    let found = violations(start, end, &blackouts, &radius);
                    if !found.is_empty() {
                        return Err(ItsmError::ChangeConflict(found));
                    }
                }
            }
            let moved = Moved { change, from };
            match self.store.save_change(&moved.change, expected, None, &journal.entry(&moved)).await {
                Ok(()) => return Ok(moved),
                Err(ItsmStoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ItsmError::Busy)
    }

    /// Records `approver`'s decision on a submitted change.
    ///
    /// # Errors
    /// `DecisionRefused`; `Invalid` comment; `NotFound`; `Busy`; `Store`.
    pub async fn decide(
        &self,
        org_id: OrgId,
        id: ChangeId,
        approver: &str,
        decision: Decision,
        comment: Option<String>,
        journal: &dyn Journal<Decided>,
    ) -> Result<Decided, ItsmError> {
        let comment = text("comment", comment)?;
        for _ in 0..CAS_ATTEMPTS {
            let mut change = self.get(org_id, id).await?;
            let expected = change.version;
            let approval =
                change.decide(approver, decision, comment.clone(), now(self.clock.as_ref())).map_err(ItsmError::DecisionRefused)?;
            let decided = Decided { change, approval };
            match self.store.save_change(&decided.change, expected, Some(&decided.approval), &journal.entry(&decided)).await {
                Ok(()) => return Ok(decided),
                Err(ItsmStoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ItsmError::Busy)
    }

    /// Creates a blackout window.
    ///
    /// # Errors
    /// `Invalid` (no items, unknown items, `end` not after `start`, reason); `Store`.
    pub async fn create_blackout(&self, org_id: OrgId, new: NewBlackout, journal: &dyn Journal<Blackout>) -> Result<Blackout, ItsmError> {
        if new.ci_ids.is_empty() {
            return Err(invalid("ci_ids", "name at least one configuration item"));
        }
        if new.end <= new.start {
            return Err(invalid("end", "must be after start"));
        }
        let reason = title("reason", &new.reason)?;
        let ci_ids = self.known_items(org_id, "ci_ids", new.ci_ids).await?;
        let blackout = Blackout {
            id: BlackoutId::generate(),
            org_id,
            ci_ids,
            start: new.start,
            end: new.end,
            reason,
            created_at: now(self.clock.as_ref()),
        };
        self.store.insert_blackout(&blackout, &journal.entry(&blackout)).await?;
        Ok(blackout)
    }

    /// Blackouts, newest first.
    ///
    /// # Errors
    /// `Store`.
    pub async fn blackouts(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Blackout>, ItsmError> {
        Ok(self.store.blackouts(org_id, page).await?)
    }
}

/// Every item reached from `ci_ids` (each at depth 0) in `direction`, at its smallest depth
/// (ties: the first of `ci_ids` in id order), with its path.
async fn radius(
    cmdb: &Cmdb,
    org_id: OrgId,
    ci_ids: &[CiId],
    direction: Direction,
    max_depth: Option<u32>,
) -> Result<BTreeMap<CiId, InRadius>, ItsmError> {
    let mut radius: BTreeMap<CiId, InRadius> = BTreeMap::new();
    for ci in distinct(ci_ids.to_vec()) {
        radius.insert(ci, InRadius { depth: 0, path: vec![ci] });
    }
    for ci in distinct(ci_ids.to_vec()) {
        for reached in cmdb.reach(org_id, ci, direction, max_depth).await? {
            let better = radius.get(&reached.ci_id).is_none_or(|r| reached.depth < r.depth);
            if better {
                radius.insert(reached.ci_id, InRadius { depth: reached.depth, path: reached.path });
            }
        }
    }
    Ok(radius)
}

/// `POST /v1/atlas/itsm/catalog`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCatalogItem {
    pub name: String,
    pub description: Option<String>,
    pub requires_approval: bool,
}

/// `POST /v1/atlas/itsm/requests`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewServiceRequest {
    pub catalog_item_id: CatalogItemId,
    pub requested_by: String,
}

/// A service request's move: the request after it, and the state it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advanced {
    pub request: ServiceRequest,
    pub from: RequestStatus,
}

/// The service catalog and service requests.
#[derive(Debug, Clone)]
pub struct ServiceDesk {
    store: Arc<dyn ItsmStore>,
    clock: Arc<dyn Clock>,
}

impl ServiceDesk {
    /// The use cases over `store`.
    pub fn new(store: Arc<dyn ItsmStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Adds an item to the catalog.
    ///
    /// # Errors
    /// `Invalid`; `Store`.
    pub async fn create_item(
        &self,
        org_id: OrgId,
        new: NewCatalogItem,
        journal: &dyn Journal<CatalogItem>,
    ) -> Result<CatalogItem, ItsmError> {
        let item = CatalogItem {
            id: CatalogItemId::generate(),
            org_id,
            name: title("name", &new.name)?,
            description: text("description", new.description)?,
            requires_approval: new.requires_approval,
            created_at: now(self.clock.as_ref()),
        };
        self.store.insert_catalog_item(&item, &journal.entry(&item)).await?;
        Ok(item)
    }

    /// The catalog, newest first.
    ///
    /// # Errors
    /// `Store`.
    pub async fn catalog(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<CatalogItem>, ItsmError> {
        Ok(self.store.catalog(org_id, page).await?)
    }

    /// Requests a catalog item: `pending_approval`, or `approved` when it needs no approval.
    ///
    /// # Errors
    /// `NotFound("catalog item")`; `Invalid`; `Store`.
    pub async fn request(
        &self,
        org_id: OrgId,
        new: NewServiceRequest,
        journal: &dyn Journal<ServiceRequest>,
    ) -> Result<ServiceRequest, ItsmError> {
        let requested_by = title("requested_by", &new.requested_by)?;
        let item = self.store.catalog_item(org_id, new.catalog_item_id).await?.ok_or(ItsmError::NotFound("catalog item"))?;
        let now = now(self.clock.as_ref());
        let request = ServiceRequest {
            id: ServiceRequestId::generate(),
            org_id,
            catalog_item_id: item.id,
            requested_by,
            status: ServiceRequest::initial_status(&item),
            decided_by: None,
            comment: None,
            version: 1,
            created_at: now,
            updated_at: now,
            decided_at: None,
            fulfilled_at: None,
        };
        self.store.insert_request(&request, &journal.entry(&request)).await?;
        Ok(request)
    }

    /// One service request.
    ///
    /// # Errors
    /// `NotFound`; `Store`.
    pub async fn get(&self, org_id: OrgId, id: ServiceRequestId) -> Result<ServiceRequest, ItsmError> {
        self.store.request(org_id, id).await?.ok_or(ItsmError::NotFound("service request"))
    }

    /// Service requests, newest first.
    ///
    /// # Errors
    /// `Store`.
    pub async fn list(&self, org_id: OrgId, filter: &RequestFilter, page: &PageRequest) -> Result<Page<ServiceRequest>, ItsmError> {
        Ok(self.store.requests(org_id, filter, page).await?)
    }

    /// Decides (`approved`, `rejected`) or fulfils a request.
    ///
    /// # Errors
    /// `InvalidTransition`; `NotFound`; `Busy`; `Store`.
    pub async fn advance(
        &self,
        org_id: OrgId,
        id: ServiceRequestId,
        to: RequestStatus,
        actor: &str,
        comment: Option<String>,
        journal: &dyn Journal<Advanced>,
    ) -> Result<Advanced, ItsmError> {
        let comment = text("comment", comment)?;
        for _ in 0..CAS_ATTEMPTS {
            let mut request = self.get(org_id, id).await?;
            let (from, expected) = (request.status, request.version);
            request.advance(to, actor, comment.clone(), now(self.clock.as_ref())).map_err(|e| ItsmError::InvalidTransition {
                from: e.from.as_str(),
                to: e.to.as_str(),
                allowed: e.allowed.iter().map(|s| s.as_str()).collect(),
            })?;
            let advanced = Advanced { request, from };
            match self.store.save_request(&advanced.request, expected, &journal.entry(&advanced)).await {
                Ok(()) => return Ok(advanced),
                Err(ItsmStoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ItsmError::Busy)
    }
}

/// Root-cause analysis over changes, the CMDB and the incidents.
#[derive(Debug, Clone)]
pub struct RootCauses {
    store: Arc<dyn ItsmStore>,
    cmdb: Arc<Cmdb>,
    incidents: Arc<dyn IncidentHistory>,
    config: RcaConfig,
}

impl RootCauses {
    /// The analysis over `store` (changes), `cmdb` (dependencies) and `incidents`.
    pub fn new(store: Arc<dyn ItsmStore>, cmdb: Arc<Cmdb>, incidents: Arc<dyn IncidentHistory>, config: RcaConfig) -> Self {
        Self { store, cmdb, incidents, config }
    }

    /// Ranks the candidate causes of the incident `id_or_reference`.
    ///
    /// # Errors
    /// `NotFound("incident")`; `Store`.
    pub async fn analyse(&self, org_id: OrgId, id_or_reference: &str) -> Result<Analysis, ItsmError> {
        let incident = self.incidents.incident(org_id, id_or_reference).await?.ok_or(ItsmError::NotFound("incident"))?;
        let items: Vec<CiId> = incident.ci_ids.iter().filter_map(|ci| ci.parse().ok()).collect();
        let radius = radius(&self.cmdb, org_id, &items, Direction::Upstream, Some(self.config.max_depth)).await?;
        let from = incident.triggered_at - self.config.look_back;
        let changes = self.store.changes_started_between(org_id, from, incident.triggered_at).await?;
        let earlier = self.incidents.triggered_between(org_id, from, incident.triggered_at).await?;
        Ok(rca::analyse(&incident, &radius, &changes, &earlier, &self.config))
    }
}
