//! Impact analysis as a pure, level-by-level breadth-first [`Traversal`]: the caller feeds it
//! the links leaving its current frontier (from a store, or an in-memory graph) until the
//! frontier is empty, then reads every reached item once, with its depth and one shortest path
//! from the item asked about. Cycles terminate because an item is reached at most once; the
//! item asked about is never listed; `max_depth` stops the expansion.
//!
//! Deterministic: the frontier is kept in id order and links are taken in (from, to) order, so
//! the same graph always gives the same paths.

use crate::model::{CiId, RelationshipType};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which way impact flows along "source depends on target" relationships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Every item that transitively depends on the given one (what breaks if it breaks).
    #[default]
    Downstream,
    /// Every item the given one transitively depends on (what it needs).
    Upstream,
}

impl Direction {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Downstream => "downstream",
            Direction::Upstream => "upstream",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "downstream" => Some(Direction::Downstream),
            "upstream" => Some(Direction::Upstream),
            _ => None,
        }
    }
}

/// One step of impact: `from` reaches `to` in the traversal's direction (downstream: `to`
/// depends on `from`; upstream: `from` depends on `to`), through a relationship of `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Link {
    pub from: CiId,
    pub to: CiId,
    pub kind: RelationshipType,
}

/// An item reached by a traversal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub ci_id: CiId,
    /// Hops from the item asked about (1 for a direct neighbour).
    pub depth: u32,
    /// One shortest path: the item asked about first, this item last.
    pub path: Vec<CiId>,
}

/// A breadth-first traversal in progress.
#[derive(Debug, Clone)]
pub struct Traversal {
    start: CiId,
    max_depth: Option<u32>,
    /// Every reached item (the start included) and the item it was reached from.
    parents: BTreeMap<CiId, Option<CiId>>,
    depths: BTreeMap<CiId, u32>,
    frontier: Vec<CiId>,
    depth: u32,
}

impl Traversal {
    /// A traversal from `start`, expanding at most `max_depth` levels (`None`: until nothing new
    /// is reached).
    pub fn new(start: CiId, max_depth: Option<u32>) -> Self {
        let mut parents = BTreeMap::new();
        parents.insert(start, None);
        let mut depths = BTreeMap::new();
        depths.insert(start, 0);
        let frontier = if max_depth == Some(0) { Vec::new() } else { vec![start] };
        Self { start, max_depth, parents, depths, frontier, depth: 0 }
    }

    /// The items whose outgoing links the traversal needs next, in id order; empty when done.
    pub fn frontier(&self) -> &[CiId] {
        &self.frontier
    }

    /// Takes the links leaving the frontier (others are ignored) and advances one level.
    pub fn absorb(&mut self, links: &[Link]) {
        let mut links: Vec<&Link> = links.iter().filter(|l| self.frontier.binary_search(&l.from).is_ok()).collect();
        links.sort();
        let depth = self.depth + 1;
        let mut next = Vec::new();
        for link in links {
            if self.parents.contains_key(&link.to) {
                continue;
            }
            self.parents.insert(link.to, Some(link.from));
            self.depths.insert(link.to, depth);
            next.push(link.to);
        }
        next.sort();
        self.depth = depth;
        self.frontier = if self.max_depth.is_some_and(|max| depth >= max) { Vec::new() } else { next };
    }

    /// Every reached item except the start, by depth then id, each with one shortest path.
    pub fn finish(self) -> Vec<Reached> {
        let mut reached: Vec<Reached> = self
            .depths
            .iter()
            .filter(|(id, _)| **id != self.start)
            .map(|(id, depth)| {
                let mut path = vec![*id];
                let mut at = *id;
                while let Some(Some(parent)) = self.parents.get(&at) {
                    path.push(*parent);
                    at = *parent;
                }
                path.reverse();
                Reached { ci_id: *id, depth: *depth, path }
            })
            .collect();
        reached.sort_by(|a, b| a.depth.cmp(&b.depth).then(a.ci_id.cmp(&b.ci_id)));
        reached
    }
}

/// Runs a traversal over an in-memory list of links (every link of the graph, in the
/// traversal's direction).
pub fn traverse(start: CiId, max_depth: Option<u32>, links: &[Link]) -> Vec<Reached> {
    let mut traversal = Traversal::new(start, max_depth);
    while !traversal.frontier().is_empty() {
        let frontier = traversal.frontier().to_vec();
        let leaving: Vec<Link> = links.iter().filter(|l| frontier.binary_search(&l.from).is_ok()).copied().collect();
        traversal.absorb(&leaving);
    }
    traversal.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ids(n: usize) -> Vec<CiId> {
        let mut ids: Vec<CiId> = (0..n).map(|i| CiId::from_uuid(uuid::Uuid::from_u128(i as u128 + 1))).collect();
        ids.sort();
        ids
    }

    fn link(from: CiId, to: CiId) -> Link {
        Link { from, to, kind: RelationshipType::DependsOn }
    }

    #[test]
    fn three_levels_with_a_cycle_back_to_the_start_list_each_item_once() {
        let n = ids(4);
        let links = [link(n[0], n[1]), link(n[1], n[2]), link(n[2], n[3]), link(n[3], n[0]), link(n[2], n[1])];
        let reached = traverse(n[0], None, &links);
        let got: Vec<(CiId, u32)> = reached.iter().map(|r| (r.ci_id, r.depth)).collect();
        assert_eq!(got, vec![(n[1], 1), (n[2], 2), (n[3], 3)], "the start is never listed, each item once");
        assert_eq!(reached[2].path, vec![n[0], n[1], n[2], n[3]]);
        let capped = traverse(n[0], Some(2), &links);
        assert_eq!(capped.len(), 2, "max_depth 2 stops before the third level");
        assert!(traverse(n[0], Some(0), &links).is_empty());
    }

    /// The naive reference: shortest hop counts by relaxing every link |V| times.
    fn reference(start: usize, n: usize, edges: &[(usize, usize)], max_depth: Option<u32>) -> BTreeMap<usize, u32> {
        let mut dist: Vec<Option<u32>> = vec![None; n];
        dist[start] = Some(0);
        for _ in 0..n {
            for &(u, v) in edges {
                if let Some(du) = dist[u] {
                    if dist[v].is_none_or(|dv| du + 1 < dv) {
                        dist[v] = Some(du + 1);
                    }
                }
            }
        }
        dist.iter()
            .enumerate()
            .filter_map(|(i, d)| d.map(|d| (i, d)))
            .filter(|(i, d)| *i != start && max_depth.is_none_or(|m| *d <= m))
            .collect()
    }

    proptest! {
        /// On any directed graph (cycles and self-loops included), the traversal reaches
        /// exactly the items the naive reference finds within `max_depth`, at the reference's
        /// distance, each once, never the start, and each path is a real shortest walk.
        #[test]
        fn impact_agrees_with_a_naive_reference(
            n in 1usize..12,
            raw in proptest::collection::vec((0usize..12, 0usize..12), 0..40),
            start in 0usize..12,
            max_depth in proptest::option::of(0u32..6),
        ) {
            let start = start % n;
            let edges: Vec<(usize, usize)> = raw.into_iter().map(|(a, b)| (a % n, b % n)).collect();
            let nodes = ids(n);
            let links: Vec<Link> = edges.iter().map(|&(a, b)| link(nodes[a], nodes[b])).collect();
            let reached = traverse(nodes[start], max_depth, &links);
            let expected = reference(start, n, &edges, max_depth);
            let got: BTreeMap<usize, u32> = reached
                .iter()
                .map(|r| (nodes.iter().position(|x| *x == r.ci_id).unwrap(), r.depth))
                .collect();
            prop_assert_eq!(got.len(), reached.len(), "each item is listed once");
            prop_assert_eq!(&got, &expected);
            let edge_set: BTreeSet<(CiId, CiId)> = links.iter().map(|l| (l.from, l.to)).collect();
            for r in &reached {
                prop_assert_eq!(r.path.len() as u32, r.depth + 1);
                prop_assert_eq!(r.path.first(), Some(&nodes[start]));
                prop_assert_eq!(r.path.last(), Some(&r.ci_id));
                for pair in r.path.windows(2) {
                    prop_assert!(edge_set.contains(&(pair[0], pair[1])), "every hop of a path is a link");
                }
            }
            prop_assert_eq!(traverse(nodes[start], max_depth, &links), reached, "the same graph gives the same answer");
        }
    }
}
