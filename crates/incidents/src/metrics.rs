//! MTTA and MTTR. Per incident: MTTA is its first acknowledgement minus its trigger time; MTTR
//! is its last resolution minus its trigger time, defined while it stands resolved or closed
//! (a reopened incident has none until it is resolved again). Both are whole seconds and never
//! negative (a clock set back reads as zero). Aggregated: the mean over the incidents that have
//! one.

use crate::machine::Status;
use crate::model::Incident;
use serde::Serialize;

/// One incident's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentTimes {
    pub mtta_seconds: Option<i64>,
    pub mttr_seconds: Option<i64>,
}

/// The figures of `incident`.
pub fn incident_times(incident: &Incident) -> IncidentTimes {
    let since_trigger = |at: time::OffsetDateTime| (at - incident.triggered_at).whole_seconds().max(0);
    let resolved = matches!(incident.status, Status::Resolved | Status::Closed);
    IncidentTimes {
        mtta_seconds: incident.acknowledged_at.map(since_trigger),
        mttr_seconds: if resolved { incident.resolved_at.map(since_trigger) } else { None },
    }
}

/// Figures over many incidents.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricsSummary {
    /// Incidents counted.
    pub incidents: u64,
    /// Of which acknowledged (with an MTTA).
    pub acknowledged: u64,
    /// Of which resolved or closed (with an MTTR).
    pub resolved: u64,
    /// Mean MTTA, seconds; `null` when none was acknowledged.
    pub mtta_seconds: Option<f64>,
    /// Mean MTTR, seconds; `null` when none was resolved.
    pub mttr_seconds: Option<f64>,
}

/// The means of `times`.
pub fn aggregate(times: &[IncidentTimes]) -> MetricsSummary {
    let mean = |values: Vec<i64>| -> (u64, Option<f64>) {
        let n = values.len() as u64;
        if n == 0 {
            (0, None)
        } else {
            (n, Some(values.iter().map(|v| *v as f64).sum::<f64>() / n as f64))
        }
    };
    let (acknowledged, mtta) = mean(times.iter().filter_map(|t| t.mtta_seconds).collect());
    let (resolved, mttr) = mean(times.iter().filter_map(|t| t.mttr_seconds).collect());
    MetricsSummary { incidents: times.len() as u64, acknowledged, resolved, mtta_seconds: mtta, mttr_seconds: mttr }
}
