//! Dedup with an answer: what a new signal with a known `dedup_key` does to the incidents that
//! already carry it. An unresolved one absorbs it (an occurrence is appended); one resolved
//! less than the reopen window ago is reopened; a closed one never absorbs; otherwise a new
//! incident is created.

use crate::machine::Status;
use crate::model::Incident;
use time::{Duration, OffsetDateTime};

/// What a signal does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldDecision {
    /// Add an occurrence to the candidate.
    Append,
    /// Reopen the candidate (`resolved → reopened`).
    Reopen,
    /// Create a new incident.
    Create,
}

/// The incident a dedup key points to among those carrying it: the newest unresolved one,
/// else the newest resolved one (closed ones never count).
pub fn pick_candidate(candidates: &[Incident]) -> Option<&Incident> {
    let newest =
        |status_ok: fn(Status) -> bool| candidates.iter().filter(|i| status_ok(i.status)).max_by_key(|i| (i.created_at, i.reference));
    newest(Status::is_unresolved).or_else(|| newest(|s| s == Status::Resolved))
}

/// The decision for a signal at `now` given the candidate (see [`pick_candidate`]).
pub fn fold(candidate: Option<&Incident>, now: OffsetDateTime, reopen_window: Duration) -> FoldDecision {
    match candidate {
        Some(i) if i.status.is_unresolved() => FoldDecision::Append,
        Some(i) if i.status == Status::Resolved && i.resolved_at.is_some_and(|at| now - at < reopen_window) => FoldDecision::Reopen,
        _ => FoldDecision::Create,
    }
}
