//! The incident state machine, exactly: `triggered → open → acknowledged → investigating →
//! resolved → closed` and `resolved → reopened → investigating`. Nothing else moves.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt;

/// Where an incident stands. Accepts the seeds' spellings (`"Resolved"`, `"RESOLVED"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[serde(alias = "Triggered", alias = "TRIGGERED")]
    Triggered,
    #[serde(alias = "Open", alias = "OPEN")]
    Open,
    #[serde(alias = "Acknowledged", alias = "ACKNOWLEDGED")]
    Acknowledged,
    #[serde(alias = "Investigating", alias = "INVESTIGATING")]
    Investigating,
    #[serde(alias = "Resolved", alias = "RESOLVED")]
    Resolved,
    #[serde(alias = "Closed", alias = "CLOSED")]
    Closed,
    #[serde(alias = "Reopened", alias = "REOPENED")]
    Reopened,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 7] =
        [Status::Triggered, Status::Open, Status::Acknowledged, Status::Investigating, Status::Resolved, Status::Closed, Status::Reopened];

    /// The statuses this one may move to, and no other.
    pub const fn allowed(self) -> &'static [Status] {
        match self {
            Status::Triggered => &[Status::Open],
            Status::Open => &[Status::Acknowledged],
            Status::Acknowledged => &[Status::Investigating],
            Status::Investigating => &[Status::Resolved],
            Status::Resolved => &[Status::Closed, Status::Reopened],
            Status::Reopened => &[Status::Investigating],
            Status::Closed => &[],
        }
    }

    /// Whether `self → to` is a legal move.
    pub fn can_move_to(self, to: Status) -> bool {
        self.allowed().contains(&to)
    }

    /// Whether the incident is still being worked on (neither resolved nor closed).
    pub const fn is_unresolved(self) -> bool {
        !matches!(self, Status::Resolved | Status::Closed)
    }

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Triggered => "triggered",
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Investigating => "investigating",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
            Status::Reopened => "reopened",
        }
    }

    /// Parses a wire name (lower case).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shortest legal walk from `from` to `to` (the statuses entered, `to` last; empty when
/// `from == to`), or `None` when `to` cannot be reached.
pub fn path_to(from: Status, to: Status) -> Option<Vec<Status>> {
    if from == to {
        return Some(Vec::new());
    }
    let mut previous: [Option<Status>; 7] = [None; 7];
    let index = |s: Status| Status::ALL.iter().position(|x| *x == s).unwrap_or(0);
    let mut seen = [false; 7];
    seen[index(from)] = true;
    let mut queue = VecDeque::from([from]);
    while let Some(at) = queue.pop_front() {
        for &next in at.allowed() {
            if seen[index(next)] {
                continue;
            }
            seen[index(next)] = true;
            previous[index(next)] = Some(at);
            if next == to {
                let mut walk = vec![to];
                let mut cursor = at;
                while cursor != from {
                    walk.push(cursor);
                    cursor = previous[index(cursor)]?;
                }
                walk.reverse();
                return Some(walk);
            }
            queue.push_back(next);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: the edges written out as pairs, independent of `allowed`.
    const EDGES: [(&str, &str); 7] = [
        ("triggered", "open"),
        ("open", "acknowledged"),
        ("acknowledged", "investigating"),
        ("investigating", "resolved"),
        ("resolved", "closed"),
        ("resolved", "reopened"),
        ("reopened", "investigating"),
    ];

    fn legal(from: Status, to: Status) -> bool {
        EDGES.iter().any(|(a, b)| *a == from.as_str() && *b == to.as_str())
    }

    fn status() -> impl Strategy<Value = Status> {
        (0usize..7).prop_map(|i| Status::ALL[i])
    }

    proptest! {
        /// From any state reached by legal moves from `triggered`, exactly the listed
        /// transitions are accepted and every other target is refused.
        #[test]
        fn from_any_reachable_state_exactly_the_listed_moves_are_accepted(choices in proptest::collection::vec(0usize..7, 0..30), to in status()) {
            let mut at = Status::Triggered;
            for c in choices {
                let options: Vec<Status> = Status::ALL.into_iter().filter(|s| legal(at, *s)).collect();
                if options.is_empty() { break; }
                at = options[c % options.len()];
            }
            prop_assert_eq!(at.can_move_to(to), legal(at, to));
            let listed: Vec<Status> = Status::ALL.into_iter().filter(|s| legal(at, *s)).collect();
            let mut allowed = at.allowed().to_vec();
            allowed.sort();
            prop_assert_eq!(allowed, listed);
        }

        /// A walk found by `path_to` is made of legal moves and ends where asked.
        #[test]
        fn walks_are_legal(from in status(), to in status()) {
            if let Some(walk) = path_to(from, to) {
                let mut at = from;
                for step in &walk {
                    prop_assert!(legal(at, *step));
                    at = *step;
                }
                prop_assert_eq!(at, to);
            }
        }
    }

    #[test]
    fn every_status_is_reachable_from_triggered_and_closed_is_final() {
        for s in Status::ALL {
            assert!(path_to(Status::Triggered, s).is_some(), "{s}");
        }
        assert_eq!(path_to(Status::Triggered, Status::Resolved).unwrap().len(), 4);
        assert!(Status::Closed.allowed().is_empty());
        assert_eq!(path_to(Status::Closed, Status::Open), None);
    }

    #[test]
    fn seed_spellings_are_accepted() {
        for (text, status) in [("\"Resolved\"", Status::Resolved), ("\"INVESTIGATING\"", Status::Investigating), ("\"open\"", Status::Open)]
        {
            assert_eq!(serde_json::from_str::<Status>(text).unwrap(), status);
        }
    }
}
