//! Incidents, for the operations area: the reference (`INC-00000001`), severities `P1`…`P5`,
//! the state machine (`triggered → open → acknowledged → investigating → resolved → closed`,
//! `resolved → reopened → investigating`, nothing else), the per-incident sequenced timeline,
//! dedup folding (`created`, `appended`, `reopened`), alerts (trigger, acknowledge, resolve,
//! and Prometheus Alertmanager's payload), MTTA and MTTR, the `IncidentStore` port and the
//! `Incidents` use cases over it. Pure: no runtime, database or HTTP.

mod alert;
mod fold;
mod machine;
mod metrics;
mod model;
mod ports;
mod service;

pub use alert::{severity_from_label, Alert, AlertAction, AlertmanagerAlert, AlertmanagerPayload};
pub use fold::{fold, pick_candidate, FoldDecision};
pub use machine::{path_to, Status};
pub use metrics::{aggregate, incident_times, IncidentTimes, MetricsSummary};
pub use model::{
    EntryKind, Incident, IncidentError, IncidentId, IncidentKey, Reference, ReferenceError, Severity, TimelineEntry, MAX_CI_IDS,
    MAX_TEXT_CHARS, MAX_TITLE_CHARS,
};
pub use ports::{Applied, IncidentFilter, IncidentStore, NewIncident, Outcome, Plan, Step, Target};
pub use service::{
    alert_plan, incident_events, CreateIncident, Incidents, IncidentsConfig, MetricsReport, UpdateIncident, DEFAULT_REOPEN_WINDOW,
    MAX_METRICS_INCIDENTS,
};
