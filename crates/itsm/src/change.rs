//! Change requests: types (`standard` pre-approved, `normal`, `emergency`), risk, the requested
//! window, plans, the items changed, and the state machine
//! `draft → submitted → approved | rejected`, `approved → scheduled → implementing →
//! implemented | failed`, `implemented | failed | rejected → closed`.
//!
//! `approved` and `rejected` are reached only through approvals: a quorum of approvals (per
//! type; 0 for `standard`, so submitting a standard change approves it at once) or a single
//! rejection. A decision is recorded once per approver and never changes, and none is taken
//! after the change leaves `submitted`.

use atlas_cmdb::CiId;
use atlas_kernel::{typed_id, OrgId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

typed_id!(
    /// A change request.
    ChangeId,
    "chg"
);

typed_id!(
    /// One approver's decision on a change.
    ApprovalId,
    "apr"
);

/// The kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    /// Pre-approved: submitting approves it (quorum 0).
    #[serde(alias = "Standard", alias = "STANDARD")]
    Standard,
    #[serde(alias = "Normal", alias = "NORMAL")]
    Normal,
    #[serde(alias = "Emergency", alias = "EMERGENCY")]
    Emergency,
}

impl ChangeType {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChangeType::Standard => "standard",
            ChangeType::Normal => "normal",
            ChangeType::Emergency => "emergency",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [ChangeType::Standard, ChangeType::Normal, ChangeType::Emergency].into_iter().find(|t| t.as_str() == text)
    }
}

/// How risky a change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    #[serde(alias = "Low", alias = "LOW")]
    Low,
    #[default]
    #[serde(alias = "Medium", alias = "MEDIUM")]
    Medium,
    #[serde(alias = "High", alias = "HIGH")]
    High,
    #[serde(alias = "Critical", alias = "CRITICAL")]
    Critical,
}

impl RiskLevel {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Critical => "critical",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High, RiskLevel::Critical].into_iter().find(|r| r.as_str() == text)
    }
}

/// Where a change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    #[serde(alias = "Draft", alias = "DRAFT")]
    Draft,
    #[serde(alias = "Submitted", alias = "SUBMITTED")]
    Submitted,
    #[serde(alias = "Approved", alias = "APPROVED")]
    Approved,
    #[serde(alias = "Rejected", alias = "REJECTED")]
    Rejected,
    #[serde(alias = "Scheduled", alias = "SCHEDULED")]
    Scheduled,
    #[serde(alias = "Implementing", alias = "IMPLEMENTING")]
    Implementing,
    #[serde(alias = "Implemented", alias = "IMPLEMENTED")]
    Implemented,
    #[serde(alias = "Failed", alias = "FAILED")]
    Failed,
    #[serde(alias = "Closed", alias = "CLOSED")]
    Closed,
}

impl ChangeStatus {
    /// Every status.
    pub const ALL: [ChangeStatus; 9] = [
        ChangeStatus::Draft,
        ChangeStatus::Submitted,
        ChangeStatus::Approved,
        ChangeStatus::Rejected,
        ChangeStatus::Scheduled,
        ChangeStatus::Implementing,
        ChangeStatus::Implemented,
        ChangeStatus::Failed,
        ChangeStatus::Closed,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Draft => "draft",
            ChangeStatus::Submitted => "submitted",
            ChangeStatus::Approved => "approved",
            ChangeStatus::Rejected => "rejected",
            ChangeStatus::Scheduled => "scheduled",
            ChangeStatus::Implementing => "implementing",
            ChangeStatus::Implemented => "implemented",
            ChangeStatus::Failed => "failed",
            ChangeStatus::Closed => "closed",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The states of the machine that follow this one (approvals included).
    pub const fn next(self) -> &'static [ChangeStatus] {
        use ChangeStatus::*;
        match self {
            Draft => &[Submitted],
            Submitted => &[Approved, Rejected],
            Approved => &[Scheduled],
            Scheduled => &[Implementing],
            Implementing => &[Implemented, Failed],
            Implemented | Failed | Rejected => &[Closed],
            Closed => &[],
        }
    }

    /// What `PATCH {"status"}` may move to from here: [`next`](Self::next) without `approved`
    /// and `rejected`, which only approvals decide.
    pub fn requestable(self) -> Vec<ChangeStatus> {
        self.next().iter().copied().filter(|s| !matches!(s, ChangeStatus::Approved | ChangeStatus::Rejected)).collect()
    }
}

/// When a change entered each state it has been in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusTimes {
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub rejected_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub implementing_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub implemented_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<OffsetDateTime>,
}

impl StatusTimes {
    fn stamp(&mut self, status: ChangeStatus, at: OffsetDateTime) {
        let slot = match status {
            ChangeStatus::Draft => return,
            ChangeStatus::Submitted => &mut self.submitted_at,
            ChangeStatus::Approved => &mut self.approved_at,
            ChangeStatus::Rejected => &mut self.rejected_at,
            ChangeStatus::Scheduled => &mut self.scheduled_at,
            ChangeStatus::Implementing => &mut self.implementing_at,
            ChangeStatus::Implemented => &mut self.implemented_at,
            ChangeStatus::Failed => &mut self.failed_at,
            ChangeStatus::Closed => &mut self.closed_at,
        };
        *slot = Some(at);
    }
}

/// An approver's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    #[serde(alias = "Approve", alias = "APPROVE", alias = "approved")]
    Approve,
    #[serde(alias = "Reject", alias = "REJECT", alias = "rejected")]
    Reject,
}

impl Decision {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "approve" => Some(Decision::Approve),
            "reject" => Some(Decision::Reject),
            _ => None,
        }
    }
}

/// One recorded decision: immutable once recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: ApprovalId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub change_id: ChangeId,
    /// The credential that decided (`key_…`, `usr_…`).
    pub approver: String,
    pub decision: Decision,
    pub comment: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
}

/// A change request as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeRequest {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: ChangeId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub title: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    pub risk_level: RiskLevel,
    pub status: ChangeStatus,
    #[serde(with = "time::serde::rfc3339::option")]
    pub requested_start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub requested_end: Option<OffsetDateTime>,
    pub implementation_plan: Option<String>,
    pub rollback_plan: Option<String>,
    pub requested_by: Option<String>,
    /// The configuration items the change touches.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub ci_ids: Vec<CiId>,
    /// Approvals needed (fixed at creation from the type's quorum).
    pub quorum: u32,
    /// Every decision, in the order recorded.
    pub approvals: Vec<Approval>,
    /// 1 at creation, plus one per transition or decision.
    pub version: i64,
    #[serde(flatten)]
    pub times: StatusTimes,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A refused `PATCH {"status"}`: `INVALID_TRANSITION` with what is allowed from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTransition {
    pub from: ChangeStatus,
    pub to: ChangeStatus,
    pub allowed: Vec<ChangeStatus>,
}

/// A refused decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionRefused {
    /// The change is not `submitted` (any more, or yet).
    NotSubmitted(ChangeStatus),
    /// This approver has decided already; a decision never changes.
    AlreadyDecided,
}

impl ChangeRequest {
    fn enter(&mut self, to: ChangeStatus, at: OffsetDateTime) {
        self.status = to;
        self.times.stamp(to, at);
        self.updated_at = at;
        self.version += 1;
    }

    /// Applies `PATCH {"status": to}`: only a [`ChangeStatus::requestable`] state. Submitting a
    /// change whose quorum is 0 (standard) approves it at once.
    ///
    /// # Errors
    /// [`InvalidTransition`] naming what is allowed; the change is left as it was.
    pub fn request(&mut self, to: ChangeStatus, at: OffsetDateTime) -> Result<(), InvalidTransition> {
        let allowed = self.status.requestable();
        if !allowed.contains(&to) {
            return Err(InvalidTransition { from: self.status, to, allowed });
        }
        self.enter(to, at);
        if to == ChangeStatus::Submitted && self.quorum == 0 {
            self.enter(ChangeStatus::Approved, at);
        }
        Ok(())
    }

    /// Records `approver`'s decision: a rejection rejects the change, the approval that
    /// reaches the quorum approves it.
    ///
    /// # Errors
    /// [`DecisionRefused`]; the change is left as it was.
    pub fn decide(
        &mut self,
        approver: &str,
        decision: Decision,
        comment: Option<String>,
        at: OffsetDateTime,
    ) -> Result<Approval, DecisionRefused> {
        if self.status != ChangeStatus::Submitted {
            return Err(DecisionRefused::NotSubmitted(self.status));
        }
        if self.approvals.iter().any(|a| a.approver == approver) {
            return Err(DecisionRefused::AlreadyDecided);
        }
        let approval =
            Approval { id: ApprovalId::generate(), change_id: self.id, approver: approver.to_owned(), decision, comment, decided_at: at };
        self.approvals.push(approval.clone());
        let approvals = self.approvals.iter().filter(|a| a.decision == Decision::Approve).count();
        match decision {
            Decision::Reject => self.enter(ChangeStatus::Rejected, at),
            Decision::Approve if approvals >= self.quorum as usize => self.enter(ChangeStatus::Approved, at),
            Decision::Approve => {
                self.updated_at = at;
                self.version += 1;
            }
        }
        Ok(approval)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The machine as the issue writes it, pair by pair (an independent reference).
    pub(crate) const TABLE: &[(&str, &str)] = &[
        ("draft", "submitted"),
        ("submitted", "approved"),
        ("submitted", "rejected"),
        ("approved", "scheduled"),
        ("scheduled", "implementing"),
        ("implementing", "implemented"),
        ("implementing", "failed"),
        ("implemented", "closed"),
        ("failed", "closed"),
        ("rejected", "closed"),
    ];

    pub(crate) fn change(change_type: ChangeType, quorum: u32) -> ChangeRequest {
        let at = time::macros::datetime!(2026-04-01 12:00 UTC);
        ChangeRequest {
            id: ChangeId::generate(),
            org_id: OrgId::generate(),
            title: "Deploy v2.4.1".into(),
            description: None,
            change_type,
            risk_level: RiskLevel::Medium,
            status: ChangeStatus::Draft,
            requested_start: None,
            requested_end: None,
            implementation_plan: None,
            rollback_plan: None,
            requested_by: None,
            ci_ids: Vec::new(),
            quorum,
            approvals: Vec::new(),
            version: 1,
            times: StatusTimes::default(),
            created_at: at,
            updated_at: at,
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Request(ChangeStatus),
        Decide(u8, Decision),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            proptest::sample::select(ChangeStatus::ALL.to_vec()).prop_map(Step::Request),
            (0u8..3, prop_oneof![Just(Decision::Approve), Just(Decision::Reject)]).prop_map(|(who, d)| Step::Decide(who, d)),
        ]
    }

    proptest! {
        /// From any state reached by any sequence of requests and decisions, `PATCH` accepts
        /// exactly the reference table's successors that approvals do not own, and every state
        /// ever entered follows the previous one in the table.
        #[test]
        fn patch_accepts_exactly_the_reference_table(
            quorum in 0u32..3,
            steps in proptest::collection::vec(step(), 0..20),
        ) {
            let kind = if quorum == 0 { ChangeType::Standard } else { ChangeType::Normal };
            let mut c = change(kind, quorum);
            let at = c.created_at;
            for s in steps {
                let before = c.status;
                let version = c.version;
                match s {
                    Step::Request(to) => {
                        let legal = TABLE.contains(&(before.as_str(), to.as_str())) && !matches!(to, ChangeStatus::Approved | ChangeStatus::Rejected);
                        let result = c.request(to, at);
                        prop_assert_eq!(result.is_ok(), legal, "{:?} -> {:?}", before, to);
                        if let Err(e) = result {
                            prop_assert_eq!(c.status, before);
                            prop_assert_eq!(c.version, version);
                            let expected: Vec<ChangeStatus> = ChangeStatus::ALL.into_iter()
                                .filter(|s| TABLE.contains(&(before.as_str(), s.as_str())) && !matches!(s, ChangeStatus::Approved | ChangeStatus::Rejected))
                                .collect();
                            prop_assert_eq!(e.allowed, expected);
                        } else if to == ChangeStatus::Submitted && quorum == 0 {
                            prop_assert_eq!(c.status, ChangeStatus::Approved, "a standard change is approved on submission");
                        } else {
                            prop_assert_eq!(c.status, to);
                        }
                    }
                    Step::Decide(who, decision) => {
                        let approver = format!("key_{who}");
                        let decided = c.approvals.iter().any(|a| a.approver == approver);
                        let count = c.approvals.len();
                        let result = c.decide(&approver, decision, None, at);
                        prop_assert_eq!(result.is_ok(), before == ChangeStatus::Submitted && !decided);
                        if result.is_err() {
                            prop_assert_eq!(c.approvals.len(), count, "a refused decision records nothing");
                            prop_assert_eq!(c.status, before);
                        } else {
                            let approvals = c.approvals.iter().filter(|a| a.decision == Decision::Approve).count() as u32;
                            let expected = match decision {
                                Decision::Reject => ChangeStatus::Rejected,
                                Decision::Approve if approvals >= quorum => ChangeStatus::Approved,
                                Decision::Approve => ChangeStatus::Submitted,
                            };
                            prop_assert_eq!(c.status, expected);
                        }
                    }
                }
                prop_assert!(c.status == before || TABLE.contains(&(before.as_str(), c.status.as_str()))
                    || (before == ChangeStatus::Draft && c.status == ChangeStatus::Approved && quorum == 0));
            }
        }
    }

    #[test]
    fn a_normal_change_needs_its_quorum_and_one_rejection_rejects() {
        let at = time::macros::datetime!(2026-04-01 12:00 UTC);
        let mut c = change(ChangeType::Normal, 2);
        c.request(ChangeStatus::Submitted, at).unwrap();
        c.decide("key_a", Decision::Approve, None, at).unwrap();
        assert_eq!(c.status, ChangeStatus::Submitted, "one approval of two");
        assert_eq!(c.decide("key_a", Decision::Reject, None, at), Err(DecisionRefused::AlreadyDecided), "a decision never changes");
        c.decide("key_b", Decision::Approve, None, at).unwrap();
        assert_eq!(c.status, ChangeStatus::Approved);
        assert_eq!(c.decide("key_c", Decision::Reject, None, at), Err(DecisionRefused::NotSubmitted(ChangeStatus::Approved)));
        let mut r = change(ChangeType::Emergency, 1);
        r.request(ChangeStatus::Submitted, at).unwrap();
        r.decide("key_a", Decision::Reject, Some("too risky".into()), at).unwrap();
        assert_eq!(r.status, ChangeStatus::Rejected);
    }
}
