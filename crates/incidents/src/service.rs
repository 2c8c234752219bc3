//! The incident use cases over an [`IncidentStore`]: create (with dedup folding), update
//! (status moves and field edits, `If-Match`), alerts (one signal or an Alertmanager batch),
//! reads, and metrics. Each mutating use case builds pure decisions, hands them to one store
//! call with the caller's journal, and adds its webhook events (one per timeline entry,
//! carrying the entry's sequence number) to that journal entry.

use crate::alert::{Alert, AlertAction};
use crate::fold::{fold, pick_candidate, FoldDecision};
use crate::machine::{path_to, Status};
use crate::metrics::{aggregate, incident_times, IncidentTimes, MetricsSummary};
use crate::model::{
    check_ci_ids, check_text, EntryKind, Incident, IncidentError, IncidentId, IncidentKey, Severity, TimelineEntry, MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
};
use crate::ports::{Applied, IncidentFilter, IncidentStore, NewIncident, Outcome, Plan, Step, Target};
use atlas_kernel::{Clock, OrgId, Page, PageRequest};
use atlas_runs::{Journal, JournalEntry, OutboxEvent};
use atlas_webhooks::{Event, EventType, Family};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// The reopen window when the operator sets none: one hour.
pub const DEFAULT_REOPEN_WINDOW: Duration = Duration::hours(1);

/// The most incidents one metrics answer covers.
pub const MAX_METRICS_INCIDENTS: u64 = 10_000;

/// Settings of the incident use cases.
#[derive(Debug, Clone, Copy)]
pub struct IncidentsConfig {
    /// A resolved incident whose dedup key fires again within this long is reopened.
    pub reopen_window: Duration,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        Self { reopen_window: DEFAULT_REOPEN_WINDOW }
    }
}

/// MTTA and MTTR over a window: each incident's, the aggregate, and whether more incidents
/// matched than one answer covers.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsReport {
    pub each: Vec<(Incident, IncidentTimes)>,
    pub summary: MetricsSummary,
    pub truncated: bool,
}

/// A create request, checked at the edge for shape, here for content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateIncident {
    pub title: String,
    pub severity: Option<Severity>,
    pub description: Option<String>,
    pub source: Option<String>,
    pub ci_ids: Vec<String>,
    pub dedup_key: Option<String>,
    pub assignee: Option<String>,
}

/// An update: a status move and/or field edits (absent fields stay).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateIncident {
    pub status: Option<Status>,
    pub resolution_notes: Option<String>,
    pub resolved_by: Option<String>,
    pub note: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub severity: Option<Severity>,
    pub assignee: Option<String>,
}

/// The incident use cases.
#[derive(Debug, Clone)]
pub struct Incidents {
    store: Arc<dyn IncidentStore>,
    clock: Arc<dyn Clock>,
    config: IncidentsConfig,
}

fn optional(field: &'static str, value: &Option<String>, max: usize) -> Result<(), IncidentError> {
    value.as_deref().map(|v| check_text(field, v, max)).transpose().map(|_| ())
}

fn event_name(entry: &TimelineEntry) -> &'static str {
    match (entry.kind, entry.to) {
        (EntryKind::Created, _) => "created",
        (EntryKind::Occurrence, _) => "occurrence",
        (EntryKind::Updated, _) => "updated",
        (EntryKind::Transition, Some(to)) => to.as_str(),
        (EntryKind::Transition, None) => "updated",
    }
}

/// The webhook events of `applied`: one per timeline entry, `incident.created`,
/// `incident.occurrence`, `incident.updated` or `incident.<new status>`, with
/// `{"incident", "entry", "sequence"}` as data and the sequence number as version.
pub fn incident_events(org_id: OrgId, applied: &[Applied]) -> Vec<OutboxEvent> {
    let mut events = Vec::new();
    for a in applied {
        let Some(incident) = &a.incident else { continue };
        for entry in &a.entries {
            let Ok(event_type) = EventType::open(Family::Incident, event_name(entry)) else { continue };
            let data = serde_json::json!({"incident": incident, "entry": entry, "sequence": entry.sequence});
            events.push(Event::new(org_id, event_type, entry.at, data, Some(incident.reference.to_string()), entry.sequence).outbox());
        }
    }
    events
}

impl Incidents {
    /// The use cases over `store`.
    pub fn new(store: Arc<dyn IncidentStore>, clock: Arc<dyn Clock>, config: IncidentsConfig) -> Self {
        Self { store, clock, config }
    }

    /// The settings in force.
    pub fn config(&self) -> IncidentsConfig {
        self.config
    }

    async fn apply(
        &self,
        org_id: OrgId,
        steps: &[Step<'_>],
        journal: &dyn Journal<Vec<Applied>, JournalEntry>,
    ) -> Result<Vec<Applied>, IncidentError> {
        let with_events = |applied: &Vec<Applied>| {
            let mut entry = journal.entry(applied);
            entry.events.extend(incident_events(org_id, applied));
            entry
        };
        self.store.apply(org_id, steps, &with_events).await
    }

    /// Creates an incident, or folds it into the one its dedup key points to (see
    /// [`fold`]): the answer's outcome says which.
    ///
    /// # Errors
    /// `Invalid` for bad content; `Store`.
    pub async fn create(
        &self,
        org_id: OrgId,
        who: &str,
        request: CreateIncident,
        journal: &dyn Journal<Vec<Applied>, JournalEntry>,
    ) -> Result<Applied, IncidentError> {
        check_text("title", &request.title, MAX_TITLE_CHARS)?;
        optional("description", &request.description, MAX_TEXT_CHARS)?;
        optional("source", &request.source, 200)?;
        optional("assignee", &request.assignee, 200)?;
        optional("dedup_key", &request.dedup_key, 200)?;
        check_ci_ids(&request.ci_ids)?;
        let severity = request.severity.ok_or(IncidentError::Invalid { field: "severity", message: "required: P1 to P5".into() })?;
        let now = now_us(&*self.clock);
        let window = self.config.reopen_window;
        let new = NewIncident {
            id: IncidentId::generate(),
            org_id,
            title: request.title,
            description: request.description,
            severity,
            source: request.source,
            ci_ids: request.ci_ids,
            assignee: request.assignee,
            dedup_key: request.dedup_key.clone(),
            who: who.to_owned(),
            at: now,
        };
        let decide = move |candidates: &[Incident]| Ok(fold_signal(candidates, &new, who, now, window));
        let target = request.dedup_key.map_or(Target::Nothing, Target::DedupKey);
        let applied = self.apply(org_id, &[Step { target, decide: &decide }], journal).await?;
        applied.into_iter().next().ok_or(IncidentError::NotFound)
    }

    /// Updates an incident: an optional status move (only the machine's moves; `resolved`
    /// needs resolution notes) and field edits, each on the timeline. With `if_match`, the
    /// incident must be at that version.
    ///
    /// # Errors
    /// `NotFound`, `VersionConflict`, `InvalidTransition`, `Invalid`; `Store`.
    pub async fn update(
        &self,
        org_id: OrgId,
        who: &str,
        key: IncidentKey,
        request: UpdateIncident,
        if_match: Option<i64>,
        journal: &dyn Journal<Vec<Applied>, JournalEntry>,
    ) -> Result<Applied, IncidentError> {
        optional("title", &request.title, MAX_TITLE_CHARS)?;
        optional("description", &request.description, MAX_TEXT_CHARS)?;
        optional("assignee", &request.assignee, 200)?;
        optional("resolved_by", &request.resolved_by, 200)?;
        optional("note", &request.note, MAX_TEXT_CHARS)?;
        optional("resolution_notes", &request.resolution_notes, MAX_TEXT_CHARS)?;
        let now = now_us(&*self.clock);
        let decide = |candidates: &[Incident]| {
            let current = candidates.first().ok_or(IncidentError::NotFound)?;
            if let Some(expected) = if_match {
                if expected != current.version {
                    return Err(IncidentError::VersionConflict { expected, current: current.version });
                }
            }
            apply_update(current, who, &request, now)
        };
        let applied = self.apply(org_id, &[Step { target: Target::Incident(key), decide: &decide }], journal).await?;
        applied.into_iter().next().ok_or(IncidentError::NotFound)
    }

    /// Applies alerts in order, in one transaction (see [`alert_plan`]).
    ///
    /// # Errors
    /// `Invalid` for bad content; `Store`.
    pub async fn alerts(
        &self,
        org_id: OrgId,
        who: &str,
        alerts: Vec<Alert>,
        journal: &dyn Journal<Vec<Applied>, JournalEntry>,
    ) -> Result<Vec<Applied>, IncidentError> {
        for a in &alerts {
            check_text("dedup_key", &a.dedup_key, 200)?;
            optional("summary", &a.summary, MAX_TITLE_CHARS)?;
            optional("description", &a.description, MAX_TEXT_CHARS)?;
            optional("source", &a.source, 200)?;
            check_ci_ids(&a.ci_ids)?;
            if a.action == AlertAction::Trigger && a.summary.is_none() {
                return Err(IncidentError::Invalid {
                    field: "summary",
                    message: "a trigger needs a summary (the incident's title)".into(),
                });
            }
        }
        let now = now_us(&*self.clock);
        let window = self.config.reopen_window;
        let deciders: Vec<_> = alerts
            .iter()
            .map(|alert| {
                let alert = alert.clone();
                let who = who.to_owned();
                move |candidates: &[Incident]| Ok(alert_plan(candidates, &alert, org_id, &who, now, window))
            })
            .collect();
        let steps: Vec<Step<'_>> =
            alerts.iter().zip(&deciders).map(|(a, d)| Step { target: Target::DedupKey(a.dedup_key.clone()), decide: d }).collect();
        self.apply(org_id, &steps, journal).await
    }

    /// One incident.
    ///
    /// # Errors
    /// `NotFound`; `Store`.
    pub async fn get(&self, org_id: OrgId, key: IncidentKey) -> Result<Incident, IncidentError> {
        self.store.get(org_id, key).await
    }

    /// Incidents, newest first.
    ///
    /// # Errors
    /// `Store`.
    pub async fn list(&self, org_id: OrgId, filter: &IncidentFilter, page: &PageRequest) -> Result<Page<Incident>, IncidentError> {
        self.store.list(org_id, filter, page).await
    }

    /// An incident's timeline.
    ///
    /// # Errors
    /// `NotFound`; `Store`.
    pub async fn timeline(&self, org_id: OrgId, key: IncidentKey) -> Result<Vec<TimelineEntry>, IncidentError> {
        self.store.timeline(org_id, key).await
    }

    /// MTTA and MTTR of the incidents triggered in `[from, to)` (with `severity`), each and
    /// aggregated, oldest first; at most [`MAX_METRICS_INCIDENTS`] (the flag says when more
    /// matched).
    ///
    /// # Errors
    /// `Invalid` when `to` is not after `from`; `Store`.
    pub async fn metrics(
        &self,
        org_id: OrgId,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
        severity: Option<Severity>,
    ) -> Result<MetricsReport, IncidentError> {
        if let (Some(f), Some(t)) = (from, to) {
            if t <= f {
                return Err(IncidentError::Invalid { field: "to", message: "must be after from".into() });
            }
        }
        let filter = IncidentFilter { severity, from, to, ..IncidentFilter::default() };
        let mut found = self.store.matching(org_id, &filter, MAX_METRICS_INCIDENTS + 1).await?;
        let truncated = found.len() as u64 > MAX_METRICS_INCIDENTS;
        found.truncate(MAX_METRICS_INCIDENTS as usize);
        let each: Vec<(Incident, IncidentTimes)> = found
            .into_iter()
            .map(|i| {
                let t = incident_times(&i);
                (i, t)
            })
            .collect();
        let summary = aggregate(&each.iter().map(|(_, t)| *t).collect::<Vec<_>>());
        Ok(MetricsReport { each, summary, truncated })
    }
}

/// What a new signal (a create or an alert trigger) does, given the incidents carrying its key.
fn fold_signal(candidates: &[Incident], new: &NewIncident, who: &str, now: OffsetDateTime, window: Duration) -> Plan {
    let candidate = pick_candidate(candidates);
    match (fold(candidate, now, window), candidate) {
        (FoldDecision::Append, Some(c)) => {
            let mut incident = c.clone();
            incident.occurrences += 1;
            incident.last_occurrence_at = now;
            let entry = incident.record(
                EntryKind::Occurrence,
                who,
                Some(c.status),
                Some(c.status),
                Some(format!("occurrence {}", incident.occurrences)),
                now,
            );
            Plan::Change { incident: Box::new(incident), previous_version: c.version, entries: vec![entry], outcome: Outcome::Appended }
        }
        (FoldDecision::Reopen, Some(c)) => {
            let mut incident = c.clone();
            incident.occurrences += 1;
            incident.last_occurrence_at = now;
            match incident.transition(Status::Reopened, who, Some("fired again within the reopen window".into()), None, now) {
                Ok(entry) => Plan::Change {
                    incident: Box::new(incident),
                    previous_version: c.version,
                    entries: vec![entry],
                    outcome: Outcome::Reopened,
                },
                Err(_) => Plan::Create(Box::new(new.clone())),
            }
        }
        _ => Plan::Create(Box::new(new.clone())),
    }
}

/// What one alert does given the incidents carrying its dedup key: a trigger folds like a
/// create; an acknowledge walks a `triggered` or `open` incident to `acknowledged`; a resolve
/// walks an unresolved incident to `resolved` (every step on the timeline). An acknowledge or
/// resolve with no unresolved incident to act on is `dropped`, with the reason.
pub fn alert_plan(candidates: &[Incident], alert: &Alert, org_id: OrgId, who: &str, now: OffsetDateTime, window: Duration) -> Plan {
    let unresolved = pick_candidate(candidates).filter(|c| c.status.is_unresolved());
    let dropped = |reason: String, incident: Option<&Incident>| Plan::Nothing {
        outcome: Outcome::Dropped,
        reason,
        incident: incident.map(|i| Box::new(i.clone())),
    };
    match alert.action {
        AlertAction::Trigger => {
            let new = NewIncident {
                id: IncidentId::generate(),
                org_id,
                title: alert.summary.clone().unwrap_or_else(|| alert.dedup_key.clone()),
                description: alert.description.clone(),
                severity: alert.severity.unwrap_or(Severity::P3),
                source: alert.source.clone(),
                ci_ids: alert.ci_ids.clone(),
                assignee: None,
                dedup_key: Some(alert.dedup_key.clone()),
                who: who.to_owned(),
                at: now,
            };
            fold_signal(candidates, &new, who, now, window)
        }
        AlertAction::Acknowledge | AlertAction::Resolve => {
            let Some(current) = unresolved else {
                return dropped("no unresolved incident has this dedup_key".into(), None);
            };
            let (target, outcome) = if alert.action == AlertAction::Acknowledge {
                if !matches!(current.status, Status::Triggered | Status::Open) {
                    return dropped(format!("the incident is already {} (past acknowledged)", current.status), Some(current));
                }
                (Status::Acknowledged, Outcome::Acknowledged)
            } else {
                (Status::Resolved, Outcome::Resolved)
            };
            let Some(walk) = path_to(current.status, target) else {
                return dropped(format!("no legal path from {} to {target}", current.status), Some(current));
            };
            let mut incident = current.clone();
            let mut entries = Vec::new();
            let summary = alert.summary.clone().unwrap_or_else(|| "resolved by its alert".into());
            for step in walk {
                let notes = (step == Status::Resolved).then(|| summary.clone());
                match incident.transition(step, who, Some(format!("alert {}", alert_verb(alert.action))), notes, now) {
                    Ok(entry) => entries.push(entry),
                    Err(e) => return dropped(e.to_string(), Some(current)),
                }
            }
            Plan::Change { incident: Box::new(incident), previous_version: current.version, entries, outcome }
        }
    }
}

fn alert_verb(action: AlertAction) -> &'static str {
    match action {
        AlertAction::Trigger => "trigger",
        AlertAction::Acknowledge => "acknowledge",
        AlertAction::Resolve => "resolve",
    }
}

/// The change an update makes to `current` (the status move first, then the field edits).
fn apply_update(current: &Incident, who: &str, request: &UpdateIncident, now: OffsetDateTime) -> Result<Plan, IncidentError> {
    let mut incident = current.clone();
    let mut entries = Vec::new();
    if let Some(to) = request.status {
        if to == Status::Resolved {
            if let Some(by) = &request.resolved_by {
                incident.resolved_by = Some(by.clone());
            }
        } else if request.resolved_by.is_some() {
            return Err(IncidentError::Invalid { field: "resolved_by", message: "only a move to resolved names who resolved it".into() });
        }
        entries.push(incident.transition(to, who, request.note.clone(), request.resolution_notes.clone(), now)?);
    } else if request.resolution_notes.is_some() || request.resolved_by.is_some() {
        let field = if request.resolution_notes.is_some() { "resolution_notes" } else { "resolved_by" };
        return Err(IncidentError::Invalid { field, message: "goes with \"status\": \"resolved\"".into() });
    }
    let mut changed = Vec::new();
    if let Some(title) = &request.title {
        if *title != incident.title {
            incident.title = title.clone();
            changed.push("title");
        }
    }
    if let Some(d) = &request.description {
        if Some(d) != incident.description.as_ref() {
            incident.description = Some(d.clone());
            changed.push("description");
        }
    }
    if let Some(s) = request.severity {
        if s != incident.severity {
            incident.severity = s;
            changed.push("severity");
        }
    }
    if let Some(a) = &request.assignee {
        if Some(a) != incident.assignee.as_ref() {
            incident.assignee = Some(a.clone());
            changed.push("assignee");
        }
    }
    if !changed.is_empty() {
        let note = match (&request.note, request.status) {
            (Some(n), None) => format!("{}: {n}", changed.join(", ")),
            _ => changed.join(", "),
        };
        let status = incident.status;
        entries.push(incident.record(EntryKind::Updated, who, Some(status), Some(status), Some(note), now));
    } else if request.status.is_none() {
        if let Some(note) = &request.note {
            let status = incident.status;
            entries.push(incident.record(EntryKind::Updated, who, Some(status), Some(status), Some(note.clone()), now));
        } else {
            return Err(IncidentError::Invalid { field: "body", message: "nothing to change: give a status or a field".into() });
        }
    }
    Ok(Plan::Change { incident: Box::new(incident), previous_version: current.version, entries, outcome: Outcome::Updated })
}

#[cfg(test)]
mod tests;

/// The clock's instant truncated to the microsecond, the precision stores keep, so an answer
/// shows the times a later read returns.
fn now_us(clock: &dyn Clock) -> time::OffsetDateTime {
    let now = clock.now();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now)
}
