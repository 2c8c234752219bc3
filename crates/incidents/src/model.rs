//! The incident and its timeline: identifiers and references, severities, the incident record
//! (with a timestamp per transition), timeline entries, the rules of one move, and the errors.

use crate::machine::Status;
use atlas_kernel::{typed_id, OrgId, StoreError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;
use time::OffsetDateTime;

typed_id!(
    /// One incident.
    IncidentId,
    "inc"
);

/// The longest title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 500;
/// The longest description, notes or other free text, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// The most configuration items one incident names.
pub const MAX_CI_IDS: usize = 100;

/// An incident's human reference, `INC-00000001`: a per-organization sequence, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference(pub u64);

/// Why a string is not a reference.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a reference reads INC- followed by at least eight digits, such as INC-00000001")]
pub struct ReferenceError;

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "INC-{:08}", self.0)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, ReferenceError> {
        let digits = s.strip_prefix("INC-").or_else(|| s.strip_prefix("inc-")).ok_or(ReferenceError)?;
        if digits.len() < 8 || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ReferenceError);
        }
        let n: u64 = digits.parse().map_err(|_| ReferenceError)?;
        if n == 0 {
            return Err(ReferenceError);
        }
        Ok(Reference(n))
    }
}

impl Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How an API path names an incident: its id (`inc_…`) or its reference (`INC-00000001`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentKey {
    Id(IncidentId),
    Reference(Reference),
}

impl FromStr for IncidentKey {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, ReferenceError> {
        if let Ok(id) = s.parse::<IncidentId>() {
            return Ok(IncidentKey::Id(id));
        }
        s.parse().map(IncidentKey::Reference)
    }
}

/// Severity, `P1` (worst) to `P5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Severity {
    #[serde(alias = "p1")]
    P1,
    #[serde(alias = "p2")]
    P2,
    #[serde(alias = "p3")]
    P3,
    #[serde(alias = "p4")]
    P4,
    #[serde(alias = "p5")]
    P5,
}

impl Severity {
    /// Every severity, worst first.
    pub const ALL: [Severity; 5] = [Severity::P1, Severity::P2, Severity::P3, Severity::P4, Severity::P5];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::P1 => "P1",
            Severity::P2 => "P2",
            Severity::P3 => "P3",
            Severity::P4 => "P4",
            Severity::P5 => "P5",
        }
    }

    /// Parses `P1`…`P5` (either case).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An incident as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Incident {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "inc_0190f0c2a5c47b8e9d6f5a4b3c2d1e0f"))]
    pub id: IncidentId,
    #[serde(skip)]
    pub org_id: OrgId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "INC-00000001"))]
    pub reference: Reference,
    pub title: String,
    pub description: Option<String>,
    pub severity: Severity,
    pub status: Status,
    pub source: Option<String>,
    pub ci_ids: Vec<String>,
    pub assignee: Option<String>,
    pub dedup_key: Option<String>,
    pub resolution_notes: Option<String>,
    pub resolved_by: Option<String>,
    /// Grows with every change; `ETag` and `If-Match` carry it.
    pub version: i64,
    /// How many times its dedup key fired (1 at creation).
    pub occurrences: i64,
    pub reopen_count: i64,
    /// The sequence number of its newest timeline entry.
    pub last_sequence: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub triggered_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub opened_at: Option<OffsetDateTime>,
    /// The first acknowledgement (MTTA's end).
    #[serde(with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub investigating_at: Option<OffsetDateTime>,
    /// The last resolution (MTTR's end).
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub reopened_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub last_occurrence_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What a timeline entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// The incident was created (`to` is its first status).
    Created,
    /// Its status moved (`from` → `to`).
    Transition,
    /// Its dedup key fired again while it was unresolved.
    Occurrence,
    /// A field other than the status changed.
    Updated,
}

impl EntryKind {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::Created => "created",
            EntryKind::Transition => "transition",
            EntryKind::Occurrence => "occurrence",
            EntryKind::Updated => "updated",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        [EntryKind::Created, EntryKind::Transition, EntryKind::Occurrence, EntryKind::Updated].into_iter().find(|k| k.as_str() == name)
    }
}

/// One change on an incident's timeline: who, from, to, when, a note, and its sequence number
/// (1, 2, 3, … per incident, no gaps), which the change's webhook event carries too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEntry {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub incident_id: IncidentId,
    pub sequence: i64,
    pub kind: EntryKind,
    /// The credential (`key_…`, `usr_…`) or `system`, or the person the request named
    /// (`resolved_by`).
    pub who: String,
    pub from: Option<Status>,
    pub to: Option<Status>,
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Why an incident use case refused or failed.
#[derive(Debug, Error)]
pub enum IncidentError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("incident not found")]
    NotFound,
    #[error("an incident cannot move from {from} to {to}")]
    InvalidTransition { from: Status, to: Status, allowed: Vec<Status> },
    #[error("the incident is at version {current}, not {expected}")]
    VersionConflict { expected: i64, current: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Incident {
    fn entry(
        &self,
        kind: EntryKind,
        who: &str,
        from: Option<Status>,
        to: Option<Status>,
        note: Option<String>,
        at: OffsetDateTime,
    ) -> TimelineEntry {
        TimelineEntry { incident_id: self.id, sequence: self.last_sequence, kind, who: who.to_owned(), from, to, note, at }
    }

    /// Appends an entry: the next sequence number, a new version, `updated_at`.
    pub fn record(
        &mut self,
        kind: EntryKind,
        who: &str,
        from: Option<Status>,
        to: Option<Status>,
        note: Option<String>,
        at: OffsetDateTime,
    ) -> TimelineEntry {
        self.last_sequence += 1;
        self.version += 1;
        self.updated_at = at;
        self.entry(kind, who, from, to, note, at)
    }

    /// Moves to `to` if the machine allows it, stamping the transition's time. Entering
    /// `resolved` needs resolution notes (already on the incident or given here).
    ///
    /// # Errors
    /// `InvalidTransition` with the allowed targets; `Invalid` for missing resolution notes.
    pub fn transition(
        &mut self,
        to: Status,
        who: &str,
        note: Option<String>,
        resolution_notes: Option<String>,
        at: OffsetDateTime,
    ) -> Result<TimelineEntry, IncidentError> {
        let from = self.status;
        if !from.can_move_to(to) {
            return Err(IncidentError::InvalidTransition { from, to, allowed: from.allowed().to_vec() });
        }
        if to == Status::Resolved {
            let notes = resolution_notes.filter(|n| !n.trim().is_empty());
            match notes {
                Some(n) => self.resolution_notes = Some(n),
                None => {
                    return Err(IncidentError::Invalid {
                        field: "resolution_notes",
                        message: "resolving an incident needs resolution notes".into(),
                    })
                }
            }
        } else if resolution_notes.is_some() {
            return Err(IncidentError::Invalid {
                field: "resolution_notes",
                message: "only a move to resolved takes resolution notes".into(),
            });
        }
        self.status = to;
        match to {
            Status::Open => self.opened_at = Some(at),
            Status::Acknowledged => self.acknowledged_at = self.acknowledged_at.or(Some(at)),
            Status::Investigating => self.investigating_at = Some(at),
            Status::Resolved => self.resolved_at = Some(at),
            Status::Closed => self.closed_at = Some(at),
            Status::Reopened => {
                self.reopened_at = Some(at);
                self.reopen_count += 1;
            }
            Status::Triggered => {}
        }
        Ok(self.record(EntryKind::Transition, who, Some(from), Some(to), note, at))
    }
}

/// Checks free text: trimmed non-empty when required, at most `max` characters.
pub(crate) fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), IncidentError> {
    if value.trim().is_empty() {
        return Err(IncidentError::Invalid { field, message: "must not be empty".into() });
    }
    if value.chars().count() > max {
        return Err(IncidentError::Invalid { field, message: format!("at most {max} characters") });
    }
    Ok(())
}

/// Checks a list of configuration item ids.
pub(crate) fn check_ci_ids(ci_ids: &[String]) -> Result<(), IncidentError> {
    if ci_ids.len() > MAX_CI_IDS {
        return Err(IncidentError::Invalid { field: "ci_ids", message: format!("at most {MAX_CI_IDS} items") });
    }
    if ci_ids.iter().any(|c| c.trim().is_empty() || c.len() > 200) {
        return Err(IncidentError::Invalid { field: "ci_ids", message: "each id is 1 to 200 characters".into() });
    }
    Ok(())
}
