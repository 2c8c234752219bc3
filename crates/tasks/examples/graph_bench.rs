//! The domain half of the graph benchmark (docs/benchmarks.md): adding one dependency, with its
//! cycle check, to an in-memory graph of 100,000 tasks and 300,000 edges, p50 and p99, next to
//! a naive whole-graph search in the same run. Run:
//! `cargo run --release -p atlas-tasks --example graph_bench`. (`benches/src/bin/graph.rs` runs
//! the same and then measures the API on PostgreSQL.)

use atlas_tasks::{DependencyGraph, GraphError, TaskId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

const GROUPS: usize = 1_000;
const PER_GROUP: usize = 100;
const TASKS: usize = GROUPS * PER_GROUP;
const CROSS_EDGES: usize = 6_000;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn id(i: usize) -> TaskId {
    TaskId::from_uuid(uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + i as u128))
}

/// The edges (task, depends_on) as indexes; every one goes from a lower index to a higher.
fn edges(rng: &mut Rng) -> Vec<(usize, usize)> {
    let mut edges = Vec::with_capacity(300_000);
    for g in 0..GROUPS {
        for i in 1..PER_GROUP {
            let mut chosen = HashSet::new();
            for _ in 0..3.min(i) {
                let mut j = rng.below(i);
                while chosen.contains(&j) {
                    j = rng.below(i);
                }
                chosen.insert(j);
                edges.push((g * PER_GROUP + i, g * PER_GROUP + j));
            }
        }
    }
    let mut cross = HashSet::new();
    while cross.len() < CROSS_EDGES {
        let (a, b) = (rng.below(TASKS), rng.below(TASKS));
        if a / PER_GROUP != b / PER_GROUP {
            cross.insert((a.max(b), a.min(b)));
        }
    }
    edges.extend(cross);
    edges
}

/// Candidate edges: two tasks of one group, either direction, not already an edge.
fn candidates(rng: &mut Rng, existing: &HashSet<(usize, usize)>, n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let g = rng.below(GROUPS);
        let (i, j) = (rng.below(PER_GROUP), rng.below(PER_GROUP));
        let (t, d) = (g * PER_GROUP + i, g * PER_GROUP + j);
        if i != j && !existing.contains(&(t, d)) {
            out.push((t, d));
        }
    }
    out
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort_unstable();
    let at = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[at].as_secs_f64() * 1_000.0
}

fn summary(name: &str, samples: &mut [Duration]) {
    println!("| {name} | {} | {:.3} ms | {:.3} ms |", samples.len(), percentile(samples, 0.50), percentile(samples, 0.99));
}

/// A depth-first search over an adjacency list: whether `from` depends on `to`.
fn search(adjacency: &HashMap<usize, Vec<usize>>, from: usize, to: usize) -> bool {
    let mut seen = HashSet::from([from]);
    let mut stack = vec![from];
    while let Some(n) = stack.pop() {
        for &d in adjacency.get(&n).map(Vec::as_slice).unwrap_or(&[]) {
            if d == to {
                return true;
            }
            if seen.insert(d) {
                stack.push(d);
            }
        }
    }
    false
}

fn domain(all: &[(usize, usize)], tries: &[(usize, usize)]) {
    let mut graph = DependencyGraph::new();
    for i in 0..TASKS {
        graph.add_task(id(i));
    }
    for &(t, d) in all {
        graph.add_dependency(id(t), id(d)).expect("the generated graph is acyclic");
    }
    println!("domain graph: {} tasks, {} edges", TASKS, graph.edge_count());
    let (mut pk, mut naive_dfs, mut naive_load) = (Vec::new(), Vec::new(), Vec::new());
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut current: Vec<(usize, usize)> = all.to_vec();
    for (n, &(t, d)) in tries.iter().enumerate() {
        let started = Instant::now();
        let naive_cycle = t == d || graph.depends_transitively(id(d), id(t));
        naive_dfs.push(started.elapsed());
        if n < 200 {
            let started = Instant::now();
            let mut adjacency: HashMap<usize, Vec<usize>> = HashMap::with_capacity(TASKS);
            for &(a, b) in &current {
                adjacency.entry(a).or_default().push(b);
            }
            let cycle = search(&adjacency, d, t);
            naive_load.push(started.elapsed());
            assert_eq!(cycle, naive_cycle);
        }
        let before = graph.rank(id(t)) > graph.rank(id(d));
        let started = Instant::now();
        let result = graph.add_dependency(id(t), id(d));
        pk.push(started.elapsed());
        match result {
            Ok(true) => {
                *outcomes.entry(if before { "in order (O(1))" } else { "re-ranked" }).or_default() += 1;
                current.push((t, d));
            }
            Ok(false) => *outcomes.entry("duplicate").or_default() += 1,
            Err(GraphError::Cycle(_)) => *outcomes.entry("cycle refused").or_default() += 1,
            Err(e) => panic!("{e:?}"),
        }
        assert_eq!(naive_cycle, matches!(result, Err(GraphError::Cycle(_))), "the naive search and the graph agree");
    }
    println!("outcomes: {outcomes:?}");
    println!("| measure | samples | p50 | p99 |\n|---|---|---|---|");
    summary("domain: add_dependency (Pearce–Kelly, region only)", &mut pk);
    summary("domain: naive DFS of the whole in-memory graph", &mut naive_dfs);
    summary("domain: naive, adjacency of every edge built, then DFS", &mut naive_load);
}

fn main() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let all = edges(&mut rng);
    let existing: HashSet<(usize, usize)> = all.iter().copied().collect();
    let tries = candidates(&mut rng, &existing, 2_000);
    domain(&all, &tries);
}
