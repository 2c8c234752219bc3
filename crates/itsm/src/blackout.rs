//! Blackout windows, and the scheduling conflict rule: a change's window that overlaps a
//! blackout on any item in its blast radius (its own items, and every item that transitively
//! depends on one of them) is refused, each violation naming the blackout, the item and the
//! path from the changed item to it.

use atlas_cmdb::CiId;
use atlas_kernel::{typed_id, OrgId};
use serde::Serialize;
use std::collections::BTreeMap;
use time::OffsetDateTime;

typed_id!(
    /// A blackout window.
    BlackoutId,
    "blk"
);

/// A period during which the listed items must not be changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Blackout {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: BlackoutId,
    #[serde(skip)]
    pub org_id: OrgId,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub ci_ids: Vec<CiId>,
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Blackout {
    /// Whether `[start, end)` meets this blackout's `[start, end)`.
    pub fn overlaps(&self, start: OffsetDateTime, end: OffsetDateTime) -> bool {
        self.start < end && start < self.end
    }
}

/// An item of a blast radius: how far it is from the nearest changed item, and one shortest
/// path from that item to it (a changed item itself: depth 0, path of one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InRadius {
    pub depth: u32,
    pub path: Vec<CiId>,
}

/// One reason a change cannot be scheduled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Violation {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub blackout_id: BlackoutId,
    pub blackout_reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub blackout_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub blackout_end: OffsetDateTime,
    /// The blacked-out item in the blast radius.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub ci_id: CiId,
    /// Hops from the changed item (0: the changed item itself).
    pub depth: u32,
    /// From the changed item to `ci_id`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub path: Vec<CiId>,
}

/// The violations of scheduling `[start, end)` against `blackouts`, given the change's blast
/// radius: one per (overlapping blackout, blacked-out item in the radius), ordered by blackout
/// start, blackout id, then item id.
pub fn violations(start: OffsetDateTime, end: OffsetDateTime, blackouts: &[Blackout], radius: &BTreeMap<CiId, InRadius>) -> Vec<Violation> {
    let mut overlapping: Vec<&Blackout> = blackouts.iter().filter(|b| b.overlaps(start, end)).collect();
    overlapping.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id)));
    let mut found = Vec::new();
    for blackout in overlapping {
        let mut items: Vec<CiId> = blackout.ci_ids.clone();
        items.sort();
        items.dedup();
        for ci_id in items {
            if let Some(at) = radius.get(&ci_id) {
                found.push(Violation {
                    blackout_id: blackout.id,
                    blackout_reason: blackout.reason.clone(),
                    blackout_start: blackout.start,
                    blackout_end: blackout.end,
                    ci_id,
                    depth: at.depth,
                    path: at.path.clone(),
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn only_overlapping_blackouts_on_items_in_the_radius_are_violations() {
        let (a, b, c) = (CiId::generate(), CiId::generate(), CiId::generate());
        let blackout = |ci: CiId, start, end| Blackout {
            id: BlackoutId::generate(),
            org_id: OrgId::generate(),
            ci_ids: vec![ci],
            start,
            end,
            reason: "freeze".into(),
            created_at: start,
        };
        let mut radius = BTreeMap::new();
        radius.insert(a, InRadius { depth: 0, path: vec![a] });
        radius.insert(b, InRadius { depth: 2, path: vec![a, c, b] });
        let blackouts = [
            blackout(b, datetime!(2026-04-01 20:00 UTC), datetime!(2026-04-02 00:00 UTC)),
            blackout(b, datetime!(2026-04-01 22:00 UTC), datetime!(2026-04-01 23:00 UTC)),
            blackout(c, datetime!(2026-04-01 19:00 UTC), datetime!(2026-04-01 21:00 UTC)),
            blackout(a, datetime!(2026-04-01 17:00 UTC), datetime!(2026-04-01 18:00 UTC)),
        ];
        let found = violations(datetime!(2026-04-01 18:00 UTC), datetime!(2026-04-01 22:00 UTC), &blackouts, &radius);
        assert_eq!(found.len(), 1, "the blackout ending at the window's start and the one starting at its end do not overlap: {found:?}");
        assert_eq!(found[0].ci_id, b);
        assert_eq!(found[0].path, vec![a, c, b]);
    }
}
