//! Deterministic root-cause analysis: the candidate causes of an incident are the changes whose
//! implementation started on the incident's items, or on items they depend on (the CMDB
//! upstream), within a look-back window before the incident was triggered, and the earlier
//! incidents on the same items in that window. Each is scored from three visible components:
//!
//! - `time_proximity` = 0.5 ^ (time before the trigger / half-life), 1 at the trigger;
//! - `graph_distance` = 1 / (1 + hops from the incident's item), 1 on the item itself;
//! - `risk`: the change's risk (`low` 0.25, `medium` 0.5, `high` 0.75, `critical` 1), or the
//!   earlier incident's severity (`P1` 1, `P2` 0.75, `P3` 0.5, `P4` 0.25, `P5` 0.1);
//!
//! `score` = 0.5 × time + 0.3 × distance + 0.2 × risk, every figure rounded to 4 decimals.
//! Candidates are ranked by score, then nearer in time, then id: the same input gives the same
//! bytes, and nothing after the trigger is ever listed.

use crate::blackout::InRadius;
use crate::change::{ChangeRequest, RiskLevel};
use async_trait::async_trait;
use atlas_cmdb::CiId;
use atlas_kernel::{OrgId, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};

/// Weight of `time_proximity` in the score.
pub const TIME_WEIGHT: f64 = 0.5;
/// Weight of `graph_distance` in the score.
pub const DISTANCE_WEIGHT: f64 = 0.3;
/// Weight of `risk` in the score.
pub const RISK_WEIGHT: f64 = 0.2;

/// What the analysis needs to know about an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentFacts {
    pub id: String,
    pub reference: String,
    pub title: String,
    /// `P1` … `P5`.
    pub severity: String,
    /// The configuration items the incident is on, as recorded.
    pub ci_ids: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub triggered_at: OffsetDateTime,
}

/// Where incidents are read from (implemented over the incidents store).
#[async_trait]
pub trait IncidentHistory: Send + Sync + std::fmt::Debug {
    /// The incident with this id or reference (`INC-00000001`).
    ///
    /// # Errors
    /// `StoreError` when the backing store fails.
    async fn incident(&self, org_id: OrgId, id_or_reference: &str) -> Result<Option<IncidentFacts>, StoreError>;

    /// The incidents triggered in `[from, to)`.
    ///
    /// # Errors
    /// `StoreError` when the backing store fails.
    async fn triggered_between(&self, org_id: OrgId, from: OffsetDateTime, to: OffsetDateTime) -> Result<Vec<IncidentFacts>, StoreError>;
}

/// The analysis settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RcaConfig {
    /// How far before the trigger candidates are looked for (default 24 h).
    pub look_back: Duration,
    /// The time after which `time_proximity` halves (default 1 h).
    pub half_life: Duration,
    /// How many dependency levels upstream of the incident's items count (default 5).
    pub max_depth: u32,
}

impl Default for RcaConfig {
    fn default() -> Self {
        Self { look_back: Duration::hours(24), half_life: Duration::hours(1), max_depth: 5 }
    }
}

/// What a candidate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CandidateKind {
    Change,
    Incident,
}

/// The three components of a score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Components {
    pub time_proximity: f64,
    pub graph_distance: f64,
    pub risk: f64,
}

/// One candidate cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Candidate {
    pub rank: u32,
    pub kind: CandidateKind,
    /// `chg_…`, or the earlier incident's id.
    pub id: String,
    /// The earlier incident's reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub title: String,
    /// When the change's implementation started, or the earlier incident was triggered.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub seconds_before_trigger: i64,
    /// The item of the candidate nearest the incident's items.
    pub ci_id: String,
    /// Hops from the incident's item (0: the item itself).
    pub distance: u32,
    /// From the incident's item, upstream, to `ci_id`.
    pub path: Vec<String>,
    /// The change's risk level or the incident's severity.
    pub risk: String,
    pub components: Components,
    pub score: f64,
}

/// The window searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Window {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
}

/// The weights of the score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Weights {
    pub time_proximity: f64,
    pub graph_distance: f64,
    pub risk: f64,
}

/// `POST /v1/atlas/rca`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Analysis {
    pub incident: IncidentFacts,
    pub window: Window,
    pub half_life_seconds: i64,
    pub weights: Weights,
    pub candidates: Vec<Candidate>,
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn risk_weight(risk: RiskLevel) -> f64 {
    match risk {
        RiskLevel::Low => 0.25,
        RiskLevel::Medium => 0.5,
        RiskLevel::High => 0.75,
        RiskLevel::Critical => 1.0,
    }
}

fn severity_weight(severity: &str) -> f64 {
    match severity.to_ascii_uppercase().as_str() {
        "P1" => 1.0,
        "P2" => 0.75,
        "P3" => 0.5,
        "P4" => 0.25,
        _ => 0.1,
    }
}

/// The components and score of a candidate `before` the trigger, `distance` hops away.
pub fn score(before: Duration, distance: u32, risk: f64, config: &RcaConfig) -> (Components, f64) {
    let half_life = config.half_life.as_seconds_f64().max(1.0);
    let components = Components {
        time_proximity: round4(0.5_f64.powf(before.as_seconds_f64().max(0.0) / half_life)),
        graph_distance: round4(1.0 / (1.0 + f64::from(distance))),
        risk: round4(risk),
    };
    let total = TIME_WEIGHT * components.time_proximity + DISTANCE_WEIGHT * components.graph_distance + RISK_WEIGHT * components.risk;
    (components, round4(total))
}

/// Ranks the candidates of `incident`. `radius` maps the incident's items (depth 0) and the
/// items they depend on to their distance and path; `changes` and `earlier` may hold anything:
/// only what falls in the window, before the trigger and on the radius is kept.
pub fn analyse(
    incident: &IncidentFacts,
    radius: &BTreeMap<CiId, InRadius>,
    changes: &[ChangeRequest],
    earlier: &[IncidentFacts],
    config: &RcaConfig,
) -> Analysis {
    let trigger = incident.triggered_at;
    let window = Window { from: trigger - config.look_back, to: trigger };
    let in_window = |at: OffsetDateTime| at >= window.from && at <= trigger;
    let mut candidates = Vec::new();
    for change in changes {
        let Some(at) = change.times.implementing_at.filter(|at| in_window(*at)) else { continue };
        let nearest = change.ci_ids.iter().filter_map(|ci| radius.get(ci).map(|r| (r.depth, *ci, r))).min_by_key(|(d, ci, _)| (*d, *ci));
        let Some((distance, ci_id, reach)) = nearest else { continue };
        let before = trigger - at;
        let (components, score) = score(before, distance, risk_weight(change.risk_level), config);
        candidates.push(Candidate {
            rank: 0,
            kind: CandidateKind::Change,
            id: change.id.to_string(),
            reference: None,
            title: change.title.clone(),
            at,
            seconds_before_trigger: before.whole_seconds(),
            ci_id: ci_id.to_string(),
            distance,
            path: reach.path.iter().map(ToString::to_string).collect(),
            risk: change.risk_level.as_str().to_owned(),
            components,
            score,
        });
    }
    for other in earlier {
        if other.id == incident.id || other.triggered_at >= trigger || !in_window(other.triggered_at) {
            continue;
        }
        let mut shared: Vec<&String> = other.ci_ids.iter().filter(|ci| incident.ci_ids.contains(ci)).collect();
        shared.sort();
        let Some(ci_id) = shared.first() else { continue };
        let before = trigger - other.triggered_at;
        let (components, score) = score(before, 0, severity_weight(&other.severity), config);
        candidates.push(Candidate {
            rank: 0,
            kind: CandidateKind::Incident,
            id: other.id.clone(),
            reference: Some(other.reference.clone()),
            title: other.title.clone(),
            at: other.triggered_at,
            seconds_before_trigger: before.whole_seconds(),
            ci_id: (*ci_id).clone(),
            distance: 0,
            path: vec![(*ci_id).clone()],
            risk: other.severity.clone(),
            components,
            score,
        });
    }
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then(b.at.cmp(&a.at)).then(a.id.cmp(&b.id)));
    for (i, c) in candidates.iter_mut().enumerate() {
        c.rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
    Analysis {
        incident: incident.clone(),
        window,
        half_life_seconds: config.half_life.whole_seconds(),
        weights: Weights { time_proximity: TIME_WEIGHT, graph_distance: DISTANCE_WEIGHT, risk: RISK_WEIGHT },
        candidates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::tests::change;
    use crate::change::ChangeType;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn incident(ci: CiId, at: OffsetDateTime) -> IncidentFacts {
        IncidentFacts {
            id: "inc_1".into(),
            reference: "INC-00000001".into(),
            title: "Checkout errors".into(),
            severity: "P1".into(),
            ci_ids: vec![ci.to_string()],
            triggered_at: at,
        }
    }

    fn implemented(ci: CiId, at: OffsetDateTime, risk: RiskLevel) -> ChangeRequest {
        let mut c = change(ChangeType::Normal, 1);
        c.ci_ids = vec![ci];
        c.risk_level = risk;
        c.times.implementing_at = Some(at);
        c
    }

    #[test]
    fn a_change_on_a_dependency_30_minutes_before_outranks_one_2_hours_before() {
        let trigger = datetime!(2026-04-01 12:00 UTC);
        let (app, db) = (CiId::generate(), CiId::generate());
        let mut radius = BTreeMap::new();
        radius.insert(app, InRadius { depth: 0, path: vec![app] });
        radius.insert(db, InRadius { depth: 1, path: vec![app, db] });
        let near = implemented(db, trigger - Duration::minutes(30), RiskLevel::Medium);
        let far = implemented(db, trigger - Duration::hours(2), RiskLevel::Medium);
        let after = implemented(db, trigger + Duration::minutes(1), RiskLevel::Critical);
        let analysis = analyse(&incident(app, trigger), &radius, &[far.clone(), after, near.clone()], &[], &RcaConfig::default());
        let ids: Vec<&str> = analysis.candidates.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, vec![near.id.to_string(), far.id.to_string()], "ranked by proximity; the change after the trigger is absent");
        assert_eq!(analysis.candidates[0].components.graph_distance, 0.5);
        assert_eq!(analysis.candidates[0].components.time_proximity, round4(0.5_f64.sqrt()), "half a half-life");
    }

    proptest! {
        /// Whatever the changes, no candidate is after the trigger or outside the window, the
        /// same input serializes to the same bytes, and scores never increase down the ranking.
        #[test]
        fn analysis_is_deterministic_and_never_lists_the_future(
            offsets in proptest::collection::vec((-2000i64..3000, 0usize..3, 0usize..4), 0..12),
        ) {
            let trigger = datetime!(2026-04-01 12:00 UTC);
            let items: Vec<CiId> = (0..3).map(|_| CiId::generate()).collect();
            let mut radius = BTreeMap::new();
            for (i, ci) in items.iter().enumerate().take(2) {
                radius.insert(*ci, InRadius { depth: i as u32, path: items[..=i].to_vec() });
            }
            let risks = [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High, RiskLevel::Critical];
            let changes: Vec<ChangeRequest> = offsets
                .iter()
                .map(|(minutes, item, risk)| implemented(items[*item], trigger - Duration::minutes(*minutes), risks[*risk]))
                .collect();
            let config = RcaConfig::default();
            let a = analyse(&incident(items[0], trigger), &radius, &changes, &[], &config);
            let b = analyse(&incident(items[0], trigger), &radius, &changes, &[], &config);
            prop_assert_eq!(serde_json::to_vec(&a).unwrap(), serde_json::to_vec(&b).unwrap());
            for c in &a.candidates {
                prop_assert!(c.at <= trigger && c.at >= trigger - config.look_back);
                prop_assert!(c.ci_id != items[2].to_string(), "an item outside the radius is never a candidate");
            }
            for pair in a.candidates.windows(2) {
                prop_assert!(pair[0].score >= pair[1].score);
            }
            let expected = offsets.iter().filter(|(m, item, _)| *m >= 0 && *m <= 24 * 60 && *item < 2).count();
            prop_assert_eq!(a.candidates.len(), expected);
        }
    }
}
