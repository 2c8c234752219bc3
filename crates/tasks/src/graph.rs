//! The dependency graph and its one invariant: it never holds a cycle. Kept incrementally with
//! a dynamic topological order (Pearce and Kelly, "A dynamic topological sort algorithm for
//! directed acyclic graphs", JEA 2006): every task carries a rank, and every dependency ranks
//! below its dependents.
//!
//! Adding "`task` depends on `depends_on`" is the edge `depends_on → task`:
//! - when `rank(depends_on) < rank(task)` the edge already respects the order: O(1), nothing is
//!   searched and nothing moves;
//! - otherwise only the *affected region*, the tasks ranked between the two, is searched: a
//!   forward search from `task` among tasks ranked below `depends_on` (reaching `depends_on`
//!   means a cycle, whose path it reports), a backward search from `depends_on` among tasks
//!   ranked above `task`, and the tasks found are re-ranked among their own ranks (the
//!   backward set first), so nothing outside the region changes.
//!
//! [`plan_insertion`] is that step over any [`GraphView`]: the in-memory [`DependencyGraph`]
//! (embedders, properties, the benchmark) or a [`Region`] a store loaded for the two ranks
//! (only the edges whose both ends rank inside the region: the search never leaves it).
//! [`analyse`] answers a project's order, ready tasks and critical path.

use crate::model::{TaskId, TaskStatus};
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;

/// What the search needs to know about the tasks it visits.
pub trait GraphView {
    /// The rank of `task`, if this view holds it.
    fn rank(&self, task: TaskId) -> Option<i64>;
    /// The tasks that depend directly on `task`.
    fn dependents(&self, task: TaskId) -> &[TaskId];
    /// The tasks `task` depends on directly.
    fn dependencies(&self, task: TaskId) -> &[TaskId];
}

/// How an accepted dependency changes the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insertion {
    /// The edge respects the order already: nothing moves.
    InOrder,
    /// The edge did not: these tasks take these ranks (only tasks whose rank changes).
    Reranked(Vec<(TaskId, i64)>),
}

/// A refused dependency: the cycle it would close, from the task through what it would depend
/// on and back to the task (the first id repeated at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub path: Vec<TaskId>,
}

/// Decides "`task` depends on `depends_on`" over `graph` (both must have ranks in it): the
/// cycle it would close, or how the order changes. Searches only tasks ranked between the two.
///
/// # Errors
/// The [`Cycle`] when the edge would close one (a self-dependency included).
pub fn plan_insertion<G: GraphView + ?Sized>(graph: &G, task: TaskId, depends_on: TaskId) -> Result<Insertion, Cycle> {
    if task == depends_on {
        return Err(Cycle { path: vec![task, task] });
    }
    let (Some(lower), Some(upper)) = (graph.rank(task), graph.rank(depends_on)) else {
        // A view without one of the ranks cannot order them; stores always load both.
        return Ok(Insertion::InOrder);
    };
    if upper < lower {
        return Ok(Insertion::InOrder);
    }
    // Forward from `task` through its dependents ranked below `depends_on`.
    let mut forward: Vec<TaskId> = vec![task];
    let mut came_from: HashMap<TaskId, TaskId> = HashMap::new();
    let mut seen: HashSet<TaskId> = HashSet::from([task]);
    let mut stack = vec![task];
    while let Some(node) = stack.pop() {
        for &next in graph.dependents(node) {
            if next == depends_on {
                // depends_on transitively depends on task: the path task → … → node → depends_on
                // read backwards is the chain of "depends on" from depends_on down to task.
                let mut chain = vec![depends_on, node];
                let mut at = node;
                while let Some(&prev) = came_from.get(&at) {
                    chain.push(prev);
                    at = prev;
                }
                let mut path = vec![task];
                path.extend(chain);
                return Err(Cycle { path });
            }
            let Some(rank) = graph.rank(next) else { continue };
            if rank < upper && seen.insert(next) {
                came_from.insert(next, node);
                forward.push(next);
                stack.push(next);
            }
        }
    }
    // Backward from `depends_on` through its dependencies ranked above `task`.
    let mut backward: Vec<TaskId> = vec![depends_on];
    let mut seen_back: HashSet<TaskId> = HashSet::from([depends_on]);
    let mut stack = vec![depends_on];
    while let Some(node) = stack.pop() {
        for &prev in graph.dependencies(node) {
            let Some(rank) = graph.rank(prev) else { continue };
            if rank > lower && seen_back.insert(prev) {
                backward.push(prev);
                stack.push(prev);
            }
        }
    }
    let rank_of = |t: &TaskId| graph.rank(*t).unwrap_or(i64::MIN);
    backward.sort_by_key(rank_of);
    forward.sort_by_key(rank_of);
    let mut pool: Vec<i64> = backward.iter().chain(forward.iter()).map(rank_of).collect();
    pool.sort_unstable();
    let moves = backward
        .iter()
        .chain(forward.iter())
        .zip(pool)
        .filter(|(t, rank)| graph.rank(**t) != Some(*rank))
        .map(|(t, rank)| (*t, rank))
        .collect();
    Ok(Insertion::Reranked(moves))
}

/// The part of a graph a store loads to decide one insertion: the ranks of the tasks in the
/// region and the edges whose both ends rank inside it.
#[derive(Debug, Clone, Default)]
pub struct Region {
    ranks: HashMap<TaskId, i64>,
    dependents: HashMap<TaskId, Vec<TaskId>>,
    dependencies: HashMap<TaskId, Vec<TaskId>>,
}

impl Region {
    /// An empty region.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a task and its rank.
    pub fn task(&mut self, task: TaskId, rank: i64) {
        self.ranks.insert(task, rank);
    }

    /// Adds the edge "`task` depends on `depends_on`".
    pub fn edge(&mut self, task: TaskId, depends_on: TaskId) {
        self.dependents.entry(depends_on).or_default().push(task);
        self.dependencies.entry(task).or_default().push(depends_on);
    }

    /// How many edges the region holds.
    pub fn edge_count(&self) -> usize {
        self.dependents.values().map(Vec::len).sum()
    }
}

impl GraphView for Region {
    fn rank(&self, task: TaskId) -> Option<i64> {
        self.ranks.get(&task).copied()
    }
    fn dependents(&self, task: TaskId) -> &[TaskId] {
        self.dependents.get(&task).map_or(&[], Vec::as_slice)
    }
    fn dependencies(&self, task: TaskId) -> &[TaskId] {
        self.dependencies.get(&task).map_or(&[], Vec::as_slice)
    }
}

/// Why the in-memory graph refused a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// A task the graph does not hold.
    UnknownTask(TaskId),
    /// The dependency would close this cycle.
    Cycle(Cycle),
}

/// An in-memory dependency graph with its dynamic topological order: what a store keeps in its
/// tables, for embedders, properties and the benchmark.
#[derive(Debug, Clone, Default)]
pub struct DependencyGraph {
    region: Region,
    next_rank: i64,
    edges: usize,
}

impl DependencyGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a task at the end of the order (a new task depends on nothing yet).
    pub fn add_task(&mut self, task: TaskId) {
        if self.region.ranks.contains_key(&task) {
            return;
        }
        self.next_rank += 1;
        self.region.task(task, self.next_rank);
    }

    /// How many edges the graph holds.
    pub fn edge_count(&self) -> usize {
        self.edges
    }

    /// Whether `task` depends directly on `depends_on`.
    pub fn has_dependency(&self, task: TaskId, depends_on: TaskId) -> bool {
        self.region.dependencies(task).contains(&depends_on)
    }

    /// Adds "`task` depends on `depends_on`": `Ok(true)` when added, `Ok(false)` when it was
    /// there already (a no-op).
    ///
    /// # Errors
    /// `UnknownTask`, or `Cycle` with the cycle it would close (nothing changes).
    pub fn add_dependency(&mut self, task: TaskId, depends_on: TaskId) -> Result<bool, GraphError> {
        for t in [task, depends_on] {
            if !self.region.ranks.contains_key(&t) {
                return Err(GraphError::UnknownTask(t));
            }
        }
        if self.has_dependency(task, depends_on) {
            return Ok(false);
        }
        match plan_insertion(&self.region, task, depends_on).map_err(GraphError::Cycle)? {
            Insertion::InOrder => {}
            Insertion::Reranked(moves) => {
                for (t, rank) in moves {
                    self.region.ranks.insert(t, rank);
                }
            }
        }
        self.region.edge(task, depends_on);
        self.edges += 1;
        Ok(true)
    }

    /// Removes "`task` depends on `depends_on`"; `false` when it was not there. The order stays
    /// valid (removing an edge never breaks it).
    pub fn remove_dependency(&mut self, task: TaskId, depends_on: TaskId) -> bool {
        let Some(deps) = self.region.dependencies.get_mut(&task) else { return false };
        let Some(at) = deps.iter().position(|d| *d == depends_on) else { return false };
        deps.swap_remove(at);
        if let Some(dependents) = self.region.dependents.get_mut(&depends_on) {
            if let Some(at) = dependents.iter().position(|d| *d == task) {
                dependents.swap_remove(at);
            }
        }
        self.edges -= 1;
        true
    }

    /// The rank of `task`.
    pub fn rank(&self, task: TaskId) -> Option<i64> {
        self.region.rank(task)
    }

    /// The tasks `task` depends on directly.
    pub fn dependencies(&self, task: TaskId) -> &[TaskId] {
        self.region.dependencies(task)
    }

    /// Every task, dependencies before their dependents.
    pub fn order(&self) -> Vec<TaskId> {
        let mut tasks: Vec<(i64, TaskId)> = self.region.ranks.iter().map(|(t, r)| (*r, *t)).collect();
        tasks.sort_unstable();
        tasks.into_iter().map(|(_, t)| t).collect()
    }

    /// The naive check, for comparison: whether `task` depends on `on` through any path,
    /// searching the whole graph with no regard to ranks.
    pub fn depends_transitively(&self, task: TaskId, on: TaskId) -> bool {
        let mut seen = HashSet::from([task]);
        let mut stack = vec![task];
        while let Some(node) = stack.pop() {
            for &dep in self.region.dependencies(node) {
                if dep == on {
                    return true;
                }
                if seen.insert(dep) {
                    stack.push(dep);
                }
            }
        }
        false
    }
}

impl GraphView for DependencyGraph {
    fn rank(&self, task: TaskId) -> Option<i64> {
        self.region.rank(task)
    }
    fn dependents(&self, task: TaskId) -> &[TaskId] {
        self.region.dependents(task)
    }
    fn dependencies(&self, task: TaskId) -> &[TaskId] {
        self.region.dependencies(task)
    }
}

// ---- a project's order, ready tasks and critical path ---------------------------------------

/// A task of a project as the analysis sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphTask {
    pub id: TaskId,
    pub status: TaskStatus,
    pub due_on: Option<OffsetDateTime>,
    pub rank: i64,
}

/// An edge "`task` depends on `depends_on`" of a project's task, with the status of the task
/// depended on (which may belong to another project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphEdge {
    pub task: TaskId,
    pub depends_on: TaskId,
    pub depends_on_status: TaskStatus,
}

/// A chain of tasks, each depending on the one before.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    pub tasks: Vec<TaskId>,
    /// The earliest due date on the chain.
    pub earliest_due: Option<OffsetDateTime>,
}

/// A project's graph, answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Analysis {
    /// Every task of the project, dependencies before dependents.
    pub order: Vec<TaskId>,
    /// Unfinished tasks whose dependencies are all finished, in order.
    pub ready: Vec<TaskId>,
    /// The longest chain of unfinished tasks (ties: the chain due earliest, then the earliest
    /// in the order).
    pub critical_path: Chain,
    /// The longest chain of unfinished tasks ending at the unfinished task due first (empty when
    /// no unfinished task has a due date): what must happen before the nearest deadline.
    pub critical_path_by_due: Chain,
}

/// Answers a project's order, ready tasks and critical paths from its tasks (any order) and
/// the edges of its tasks.
pub fn analyse(tasks: &[GraphTask], edges: &[GraphEdge]) -> Analysis {
    let mut sorted: Vec<&GraphTask> = tasks.iter().collect();
    sorted.sort_by_key(|t| (t.rank, t.id));
    let by_id: HashMap<TaskId, &GraphTask> = tasks.iter().map(|t| (t.id, t)).collect();
    let mut deps: HashMap<TaskId, Vec<&GraphEdge>> = HashMap::new();
    for e in edges {
        deps.entry(e.task).or_default().push(e);
    }
    let order: Vec<TaskId> = sorted.iter().map(|t| t.id).collect();
    let ready = sorted
        .iter()
        .filter(|t| !t.status.is_finished())
        .filter(|t| deps.get(&t.id).is_none_or(|ds| ds.iter().all(|e| e.depends_on_status.is_finished())))
        .map(|t| t.id)
        .collect();
    // Longest chain ending at each unfinished task, in order (dependencies come first).
    // best[t] = (length, earliest due on the chain, predecessor).
    type Best = (usize, Option<OffsetDateTime>, Option<TaskId>);
    let mut best: HashMap<TaskId, Best> = HashMap::new();
    let earlier = |a: Option<OffsetDateTime>, b: Option<OffsetDateTime>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // A chain is better when longer, then when due earlier (a due date beats none).
    let better = |a: (usize, Option<OffsetDateTime>), b: (usize, Option<OffsetDateTime>)| {
        a.0 > b.0
            || (a.0 == b.0
                && match (a.1, b.1) {
                    (Some(x), Some(y)) => x < y,
                    (Some(_), None) => true,
                    _ => false,
                })
    };
    for t in sorted.iter().filter(|t| !t.status.is_finished()) {
        let mut mine: Best = (1, t.due_on, None);
        for e in deps.get(&t.id).map(Vec::as_slice).unwrap_or(&[]) {
            let Some(&(len, due, _)) = best.get(&e.depends_on) else { continue };
            if !by_id.contains_key(&e.depends_on) {
                continue;
            }
            let candidate = (len + 1, earlier(due, t.due_on));
            if better(candidate, (mine.0, mine.1)) {
                mine = (candidate.0, candidate.1, Some(e.depends_on));
            }
        }
        best.insert(t.id, mine);
    }
    let chain_to = |end: TaskId| {
        let mut tasks = vec![end];
        let mut at = end;
        while let Some(&(_, _, Some(prev))) = best.get(&at) {
            tasks.push(prev);
            at = prev;
        }
        tasks.reverse();
        Chain { earliest_due: best.get(&end).and_then(|b| b.1), tasks }
    };
    let mut critical: Option<TaskId> = None;
    for t in sorted.iter().filter(|t| best.contains_key(&t.id)) {
        let b = best[&t.id];
        match critical {
            None => critical = Some(t.id),
            Some(c) if better((b.0, b.1), (best[&c].0, best[&c].1)) => critical = Some(t.id),
            _ => {}
        }
    }
    let due_first =
        sorted.iter().filter(|t| !t.status.is_finished()).filter_map(|t| t.due_on.map(|d| (d, t.rank, t.id))).min().map(|(_, _, id)| id);
    Analysis {
        order,
        ready,
        critical_path: critical.map(chain_to).unwrap_or_default(),
        critical_path_by_due: due_first.map(chain_to).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ids(n: usize) -> Vec<TaskId> {
        (0..n).map(|i| TaskId::from_uuid(uuid::Uuid::from_u128(i as u128 + 1))).collect()
    }

    /// The naive reference: a set of edges (task, depends_on) and a whole-graph search.
    #[derive(Default, Clone)]
    struct Naive {
        edges: BTreeSet<(usize, usize)>,
    }

    impl Naive {
        /// Whether `from` depends on `to` through one or more edges.
        fn depends(&self, from: usize, to: usize) -> bool {
            let mut seen = BTreeSet::from([from]);
            let mut stack = vec![from];
            while let Some(n) = stack.pop() {
                for &(t, d) in &self.edges {
                    if t == n {
                        if d == to {
                            return true;
                        }
                        if seen.insert(d) {
                            stack.push(d);
                        }
                    }
                }
            }
            false
        }

        fn acyclic(&self, n: usize) -> bool {
            (0..n).all(|i| !self.depends(i, i))
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(usize, usize),
        Remove(usize, usize),
    }

    fn ops(n: usize) -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                4 => (0..n, 0..n).prop_map(|(a, b)| Op::Add(a, b)),
                1 => (0..n, 0..n).prop_map(|(a, b)| Op::Remove(a, b)),
            ],
            0..80,
        )
    }

    fn ranks_respect_every_edge(graph: &DependencyGraph, ids: &[TaskId], naive: &Naive) -> bool {
        naive.edges.iter().all(|&(t, d)| graph.rank(ids[d]) < graph.rank(ids[t]))
    }

    proptest! {
        /// After any sequence of adds and removes the graph is acyclic and holds exactly the
        /// naive reference's edges; an add is refused exactly when the reference says it would
        /// close a cycle, and then the reported path is a real cycle through the new edge; the
        /// ranks and the order respect every edge after every step.
        #[test]
        fn the_graph_agrees_with_a_naive_reference(ops in ops(8)) {
            let ids = ids(8);
            let mut graph = DependencyGraph::new();
            for id in &ids { graph.add_task(*id); }
            let mut naive = Naive::default();
            for op in ops {
                match op {
                    Op::Add(t, d) => {
                        let would_cycle = t == d || naive.depends(d, t);
                        match graph.add_dependency(ids[t], ids[d]) {
                            Ok(added) => {
                                prop_assert!(!would_cycle, "accepted {t} -> {d} though it closes a cycle");
                                prop_assert_eq!(added, naive.edges.insert((t, d)), "a duplicate is a no-op");
                            }
                            Err(GraphError::Cycle(Cycle { path })) => {
                                prop_assert!(would_cycle, "refused {t} -> {d} though no cycle");
                                prop_assert_eq!(path.first(), Some(&ids[t]));
                                prop_assert_eq!(path.get(1), Some(&ids[d]), "the path starts with the new edge");
                                prop_assert_eq!(path.last(), Some(&ids[t]), "the first id is repeated at the end");
                                let index = |id: &TaskId| ids.iter().position(|x| x == id).unwrap();
                                for pair in path[1..].windows(2) {
                                    prop_assert!(naive.edges.contains(&(index(&pair[0]), index(&pair[1]))), "every later step is an existing edge");
                                }
                            }
                            Err(other) => prop_assert!(false, "unexpected {other:?}"),
                        }
                    }
                    Op::Remove(t, d) => {
                        prop_assert_eq!(graph.remove_dependency(ids[t], ids[d]), naive.edges.remove(&(t, d)));
                    }
                }
                prop_assert!(naive.acyclic(ids.len()));
                prop_assert_eq!(graph.edge_count(), naive.edges.len());
                for &(t, d) in &naive.edges { prop_assert!(graph.has_dependency(ids[t], ids[d])); }
                prop_assert!(ranks_respect_every_edge(&graph, &ids, &naive), "a rank is out of order");
                let order = graph.order();
                let position = |id: TaskId| order.iter().position(|x| *x == id).unwrap();
                for &(t, d) in &naive.edges { prop_assert!(position(ids[d]) < position(ids[t]), "the order puts a dependency after its dependent"); }
                let ranks: BTreeSet<i64> = ids.iter().map(|id| graph.rank(*id).unwrap()).collect();
                prop_assert_eq!(ranks.len(), ids.len(), "ranks stay distinct");
            }
        }

        /// A store decides on the region between the two ranks only: the same decision as on
        /// the whole graph.
        #[test]
        fn the_region_between_the_ranks_decides_as_the_whole_graph(ops in ops(10), t in 0usize..10, d in 0usize..10) {
            let ids = ids(10);
            let mut graph = DependencyGraph::new();
            for id in &ids { graph.add_task(*id); }
            for op in ops {
                if let Op::Add(a, b) = op { let _ = graph.add_dependency(ids[a], ids[b]); }
            }
            let whole = plan_insertion(&graph, ids[t], ids[d]);
            let (lo, hi) = {
                let (a, b) = (graph.rank(ids[t]).unwrap(), graph.rank(ids[d]).unwrap());
                (a.min(b), a.max(b))
            };
            let mut region = Region::new();
            for id in &ids {
                let r = graph.rank(*id).unwrap();
                if (lo..=hi).contains(&r) { region.task(*id, r); }
            }
            for id in &ids {
                for dep in graph.dependencies(*id) {
                    if region.rank(*id).is_some() && region.rank(*dep).is_some() { region.edge(*id, *dep); }
                }
            }
            match (plan_insertion(&region, ids[t], ids[d]), whole) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "the same re-ranking"),
                (Err(Cycle { path }), Err(_)) => {
                    prop_assert_eq!((path[0], path[1], *path.last().unwrap()), (ids[t], ids[d], ids[t]));
                    for pair in path[1..].windows(2) {
                        prop_assert!(graph.has_dependency(pair[0], pair[1]), "the region's path is a cycle of the whole graph");
                    }
                }
                (a, b) => prop_assert!(false, "region {a:?} but whole graph {b:?}"),
            }
        }

        /// The ready tasks are exactly the unfinished tasks whose dependencies are all
        /// finished, and the critical path is a chain of unfinished tasks no other chain is
        /// longer than.
        #[test]
        fn ready_and_critical_path_agree_with_a_naive_reference(ops in ops(8), statuses in prop::collection::vec(0u8..4, 8)) {
            let ids = ids(8);
            let mut graph = DependencyGraph::new();
            for id in &ids { graph.add_task(*id); }
            for op in ops { if let Op::Add(a, b) = op { let _ = graph.add_dependency(ids[a], ids[b]); } }
            let status = |i: usize| [TaskStatus::Todo, TaskStatus::InProgress, TaskStatus::Done, TaskStatus::Cancelled][statuses[i] as usize];
            let tasks: Vec<GraphTask> = (0..8).map(|i| GraphTask { id: ids[i], status: status(i), due_on: None, rank: graph.rank(ids[i]).unwrap() }).collect();
            let index = |id: &TaskId| ids.iter().position(|x| x == id).unwrap();
            let edges: Vec<GraphEdge> = (0..8).flat_map(|i| graph.dependencies(ids[i]).iter().map(move |d| (i, *d)).collect::<Vec<_>>())
                .map(|(i, d)| GraphEdge { task: ids[i], depends_on: d, depends_on_status: status(index(&d)) }).collect();
            let analysis = analyse(&tasks, &edges);
            let expected_ready: BTreeSet<usize> = (0..8).filter(|&i| !status(i).is_finished() && graph.dependencies(ids[i]).iter().all(|d| status(index(d)).is_finished())).collect();
            let ready: BTreeSet<usize> = analysis.ready.iter().map(index).collect();
            prop_assert_eq!(ready, expected_ready);
            // Longest chain by brute force over unfinished tasks.
            fn longest(i: usize, ids: &[TaskId], graph: &DependencyGraph, unfinished: &dyn Fn(usize) -> bool) -> usize {
                let index = |id: &TaskId| ids.iter().position(|x| x == id).unwrap();
                1 + graph.dependencies(ids[i]).iter().map(index).filter(|&d| unfinished(d)).map(|d| longest(d, ids, graph, unfinished)).max().unwrap_or(0)
            }
            let unfinished = |i: usize| !status(i).is_finished();
            let expected = (0..8).filter(|&i| unfinished(i)).map(|i| longest(i, &ids, &graph, &unfinished)).max().unwrap_or(0);
            let path = &analysis.critical_path.tasks;
            prop_assert_eq!(path.len(), expected);
            for pair in path.windows(2) { prop_assert!(graph.has_dependency(pair[1], pair[0]), "each task depends on the one before"); }
            for t in path { prop_assert!(unfinished(index(t))); }
        }
    }

    #[test]
    fn a_three_node_cycle_is_refused_with_its_path() {
        let ids = ids(3);
        let (a, b, c) = (ids[0], ids[1], ids[2]);
        let mut graph = DependencyGraph::new();
        for id in &ids {
            graph.add_task(*id);
        }
        assert_eq!(graph.add_dependency(a, b), Ok(true));
        assert_eq!(graph.add_dependency(b, c), Ok(true));
        assert_eq!(graph.add_dependency(a, b), Ok(false), "a duplicate is a no-op");
        assert_eq!(graph.add_dependency(c, a), Err(GraphError::Cycle(Cycle { path: vec![c, a, b, c] })));
        assert_eq!(graph.add_dependency(a, a), Err(GraphError::Cycle(Cycle { path: vec![a, a] })));
        assert_eq!(graph.order(), vec![c, b, a]);
    }

    #[test]
    fn an_edge_in_order_moves_nothing() {
        let ids = ids(3);
        let mut graph = DependencyGraph::new();
        for id in &ids {
            graph.add_task(*id);
        }
        assert_eq!(plan_insertion(&graph, ids[2], ids[0]), Ok(Insertion::InOrder));
        assert!(matches!(plan_insertion(&graph, ids[0], ids[2]), Ok(Insertion::Reranked(m)) if !m.is_empty()));
    }
}
