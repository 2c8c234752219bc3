//! Governance by maturity: the one pure rule that decides what becomes of an agent's reply.
//! `student` and `intern` replies are drafts a person approves; `supervised` replies are sent
//! and flagged for review; `autonomous` replies are sent.

use crate::model::Maturity;
use serde::Serialize;

/// What becomes of an agent's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Kept as a draft; nothing reaches the customer until a person approves it.
    Draft,
    /// Sent, and flagged for a person to review afterwards.
    SendFlagged,
    /// Sent.
    Send,
}

impl Disposition {
    /// Whether the reply reaches the customer without a person acting first.
    pub const fn sends(self) -> bool {
        matches!(self, Disposition::SendFlagged | Disposition::Send)
    }

    /// Whether a person looks at the reply (before or after it is sent).
    pub const fn reviewed(self) -> bool {
        matches!(self, Disposition::Draft | Disposition::SendFlagged)
    }
}

/// The governance rule: what an agent at `level` may do with a reply.
pub const fn govern(level: Maturity) -> Disposition {
    match level {
        Maturity::Student | Maturity::Intern => Disposition::Draft,
        Maturity::Supervised => Disposition::SendFlagged,
        Maturity::Autonomous => Disposition::Send,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An independent reference: the level's rank (0 for student … 3 for autonomous) from its
    /// wire name, and the documented thresholds (sends from rank 2, unreviewed from rank 3).
    fn rank(level: Maturity) -> u8 {
        ["student", "intern", "supervised", "autonomous"].iter().position(|n| *n == level.as_str()).unwrap() as u8
    }

    fn level() -> impl Strategy<Value = Maturity> {
        prop::sample::select(Maturity::ALL.to_vec())
    }

    proptest! {
        /// Monotone in maturity: a more mature agent never loses a freedom a less mature one
        /// has (if the lower level sends, the higher one does; if the higher one is reviewed,
        /// the lower one is).
        #[test]
        fn governance_is_monotone_in_maturity(a in level(), b in level()) {
            let (low, high) = if rank(a) <= rank(b) { (a, b) } else { (b, a) };
            prop_assert!(!govern(low).sends() || govern(high).sends());
            prop_assert!(!govern(high).reviewed() || govern(low).reviewed());
        }

        /// Against the reference thresholds.
        #[test]
        fn governance_matches_the_documented_thresholds(a in level()) {
            prop_assert_eq!(govern(a).sends(), rank(a) >= 2);
            prop_assert_eq!(govern(a).reviewed(), rank(a) <= 2);
        }
    }

    #[test]
    fn the_order_of_levels_is_the_order_of_trust() {
        let mut sorted = Maturity::ALL.to_vec();
        sorted.sort();
        assert_eq!(sorted, Maturity::ALL.to_vec());
        assert_eq!(govern(Maturity::Intern), Disposition::Draft);
        assert_eq!(govern(Maturity::Supervised), Disposition::SendFlagged);
    }
}
