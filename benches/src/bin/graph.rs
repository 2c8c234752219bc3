//! `graph`: adding one dependency (with its cycle check) to a graph of 100,000 tasks and
//! 300,000 edges, p50 and p99, next to a naive whole-graph search in the same run:
//!
//! 1. in the domain crate: `DependencyGraph::add_dependency` (Pearce–Kelly: only the region
//!    between the two ranks is searched), against (a) a depth-first search of the whole
//!    in-memory graph unbounded by ranks and (b) what a store without ranks does per request:
//!    build the adjacency of every edge, then search;
//! 2. through the API on PostgreSQL (`--postgres`): the real server in this process over a fresh
//!    database, the graph bulk-loaded with SQL, then `POST /v1/atlas/tasks/{id}/dependencies`
//!    one request at a time; the naive side reads every edge of the organization from
//!    PostgreSQL and searches them.
//!
//! The graph: 1,000 groups of 100 tasks, each task depending on up to 3 earlier tasks of its
//! group, plus 6,000 edges from earlier to later groups. The candidate edges join two tasks of one
//! group in either direction, so some respect the order (O(1)), some are re-ranked, some close a
//! cycle and are refused. Run: `cargo run --release -p atlas-bench --bin graph` (the domain
//! measures alone) or `… --bin graph -- --postgres` (then the API).

use atlas_api::config::Settings;
use atlas_kernel::SystemClock;
use atlas_tasks::{DependencyGraph, GraphError, TaskId};
use sea_orm::{ConnectionTrait, Statement, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
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

async fn through_the_api(all: &[(usize, usize)], tries: &[(usize, usize)]) {
    let Some(url) = atlas_testkit::services::fresh_postgres_database().await else {
        println!("PostgreSQL unreachable: API figures skipped");
        return;
    };
    // Loopback: no TLS, as the other benchmarks (docs/benchmarks.md).
    let url = format!("{url}{}sslmode=disable", if url.contains('?') { '&' } else { '?' });
    let mut env = BTreeMap::new();
    for (k, v) in [
        ("ATLAS_BIND", "127.0.0.1:0"),
        ("ATLAS_DATABASE_URL", url.as_str()),
        ("ATLAS_SECRET_KEY", "bench-secret-key-that-is-long-enough-0123456789"),
        ("ATLAS_RATE_LIMIT_WRITES", "1000000/min"),
        ("ATLAS_RATE_LIMIT_READS", "1000000/min"),
    ] {
        env.insert(k.to_owned(), v.to_owned());
    }
    let settings = Settings::load(None, &env).expect("settings");
    let server = atlas_api::start_with_clock(&settings, Arc::new(SystemClock)).await.expect("server starts");
    let key = server.first_admin_key.clone().expect("a fresh database prints the admin key");
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, body: Option<serde_json::Value>| {
        let mut request = http.request(method, format!("{base}{path}")).bearer_auth(&key);
        if let Some(b) = body {
            request = request.json(&b);
        }
        async move {
            let response = request.send().await.expect("the server answers");
            let status = response.status();
            (status, response.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let (_, runs) = call(reqwest::Method::GET, "/v1/atlas/runs?operation=orgs.create".into(), None).await;
    let org = runs["data"]["runs"][0]["resource_id"].as_str().expect("the organization").to_owned();
    let org = uuid::Uuid::parse_str(org.trim_start_matches("org_")).expect("an org id");
    let (_, project) =
        call(reqwest::Method::POST, "/v1/atlas/projects".into(), Some(serde_json::json!({"key": "bench", "name": "Bench"}))).await;
    let project = uuid::Uuid::parse_str(project["data"]["id"].as_str().unwrap().trim_start_matches("prj_")).unwrap();

    let db = server.wiring.store.connection();
    let started = Instant::now();
    for chunk in (0..TASKS).collect::<Vec<_>>().chunks(2_000) {
        let mut values: Vec<Value> = Vec::new();
        let mut rows = Vec::new();
        for &i in chunk {
            let n = values.len();
            rows.push(format!("(${}, ${}, ${}, ${}, 'todo', 'normal', ${}, 1, 0, 0)", n + 1, n + 2, n + 3, n + 4, n + 5));
            values.extend([id(i).as_uuid().into(), org.into(), project.into(), format!("task {i}").into(), (i as i64 + 1).into()]);
        }
        let text = format!(
            r#"INSERT INTO tasks (id, org_id, project_id, title, status, priority, "rank", version, created_at_us, updated_at_us) VALUES {}"#,
            rows.join(", ")
        );
        db.execute(Statement::from_sql_and_values(sea_orm::DatabaseBackend::Postgres, text, values)).await.expect("loading tasks");
    }
    for chunk in all.chunks(5_000) {
        let mut values: Vec<Value> = Vec::new();
        let mut rows = Vec::new();
        for &(t, d) in chunk {
            let n = values.len();
            rows.push(format!("(${}, ${}, ${}, 0)", n + 1, n + 2, n + 3));
            values.extend([org.into(), id(t).as_uuid().into(), id(d).as_uuid().into()]);
        }
        let text = format!("INSERT INTO task_dependencies (org_id, task_id, depends_on_id, created_at_us) VALUES {}", rows.join(", "));
        db.execute(Statement::from_sql_and_values(sea_orm::DatabaseBackend::Postgres, text, values)).await.expect("loading edges");
    }
    db.execute_unprepared("ANALYZE").await.expect("analyze");
    println!("loaded {} tasks and {} edges into PostgreSQL in {:.1} s", TASKS, all.len(), started.elapsed().as_secs_f64());

    let mut outcomes: BTreeMap<u16, usize> = BTreeMap::new();
    let mut samples = Vec::new();
    for (n, &(t, d)) in tries.iter().enumerate() {
        let path = format!("/v1/atlas/tasks/{}/dependencies", id(t));
        let started = Instant::now();
        let (status, body) = call(reqwest::Method::POST, path, Some(serde_json::json!({"depends_on_task_id": id(d).to_string()}))).await;
        let took = started.elapsed();
        assert!([200, 201, 422].contains(&status.as_u16()), "{status}: {body}");
        *outcomes.entry(status.as_u16()).or_default() += 1;
        if n >= 100 {
            samples.push(took); // the first 100 warm the caches and the pool
        }
    }
    println!("API outcomes by status: {outcomes:?}");
    let mut naive = Vec::new();
    for &(t, d) in tries.iter().take(20) {
        let started = Instant::now();
        let rows = db
            .query_all(Statement::from_sql_and_values(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT task_id, depends_on_id FROM task_dependencies WHERE org_id = $1",
                [org.into()],
            ))
            .await
            .expect("reading every edge");
        let index: HashMap<uuid::Uuid, usize> = (0..TASKS).map(|i| (id(i).as_uuid(), i)).collect();
        let mut adjacency: HashMap<usize, Vec<usize>> = HashMap::with_capacity(TASKS);
        for row in rows {
            let a: uuid::Uuid = row.try_get("", "task_id").unwrap();
            let b: uuid::Uuid = row.try_get("", "depends_on_id").unwrap();
            adjacency.entry(index[&a]).or_default().push(index[&b]);
        }
        let _ = search(&adjacency, d, t);
        naive.push(started.elapsed());
    }
    println!("| measure | samples | p50 | p99 |\n|---|---|---|---|");
    summary("API on PostgreSQL: POST /v1/atlas/tasks/{id}/dependencies", &mut samples);
    summary("PostgreSQL naive: read every edge of the organization, then DFS", &mut naive);
    server.stop().await;
}

#[tokio::main]
async fn main() {
    let postgres = std::env::args().any(|a| a == "--postgres");
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let all = edges(&mut rng);
    let existing: HashSet<(usize, usize)> = all.iter().copied().collect();
    let tries = candidates(&mut rng, &existing, 2_000);
    domain(&all, &tries);
    if postgres {
        through_the_api(&all, &tries[..1_100]).await;
    }
}
