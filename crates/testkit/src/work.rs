//! The behavioural suite every `WorkStore` must pass: projects (key unique per organization,
//! `If-Match`, soft deletes), tasks (ranks, filters, a cursor stable under inserts), the
//! dependency graph (in-order edges move nothing, out-of-order edges re-rank the region, a
//! duplicate is a no-op, cycles refused with their path, across projects too), the blocked
//! completion, parent cycles, organizations that never see each other's work, the graph
//! agreeing with the in-memory reference over a random sequence of changes, and concurrent
//! edge changes that never both commit a cycle.
//!
//! Each check works in organizations of its own, so the checks may share one store.

use crate::runs::sample_run;
use atlas_kernel::{OrgId, PageRequest};
use atlas_runs::{JournalEntry, RunStatus};
use atlas_tasks::{
    DependencyGraph, GraphError, Priority, Project, ProjectId, ProjectPatch, ProjectRef, Task, TaskFilter, TaskId, TaskPatch, TaskStatus,
    WorkError, WorkStore,
};
use std::collections::BTreeSet;
use time::{Duration, OffsetDateTime};

/// Runs every check of the suite against `store`.
pub async fn suite(store: &dyn WorkStore) {
    projects_have_unique_keys_versions_and_soft_deletes(store).await;
    tasks_take_increasing_ranks_and_list_with_filters(store).await;
    task_lists_page_with_a_cursor_stable_under_inserts(store).await;
    dependencies_keep_the_order_and_refuse_cycles_with_their_path(store).await;
    a_blocked_task_cannot_be_done_until_its_blockers_are(store).await;
    parent_links_never_form_a_cycle(store).await;
    another_organization_sees_none_of_the_work(store).await;
    the_graph_agrees_with_the_in_memory_reference(store).await;
    concurrent_edges_never_both_close_a_cycle(store, 20).await;
}

fn base_time() -> OffsetDateTime {
    time::macros::datetime!(2026-02-01 09:00:00.000001 UTC)
}

/// A journal entry for any outcome: a succeeded run of `org`, no idempotency outcome.
pub fn journal<T>(org_id: OrgId, operation: &'static str) -> impl Fn(&T) -> JournalEntry + Send + Sync {
    move |_: &T| JournalEntry {
        run: sample_run(org_id, operation, RunStatus::Succeeded, base_time()),
        idempotency: None,
        events: Vec::new(),
    }
}

/// A project of `org` with `key`.
pub fn project(org_id: OrgId, key: &str, at: OffsetDateTime) -> Project {
    Project {
        id: ProjectId::generate(),
        org_id,
        key: key.into(),
        name: format!("Project {key}"),
        description: None,
        version: 1,
        created_at: at,
        updated_at: at,
    }
}

/// A `todo` task of `project`.
pub fn task(project: &Project, title: &str, at: OffsetDateTime) -> Task {
    Task {
        id: TaskId::generate(),
        org_id: project.org_id,
        project_id: project.id,
        parent_task_id: None,
        title: title.into(),
        description: None,
        status: TaskStatus::Todo,
        priority: Priority::Normal,
        due_on: None,
        assignee: None,
        rank: 0,
        version: 1,
        created_at: at,
        updated_at: at,
        completed_at: None,
    }
}

async fn new_project(store: &dyn WorkStore, org: OrgId, key: &str) -> Project {
    let p = project(org, key, base_time());
    store.create_project(&p, &journal(org, "projects.create")).await.unwrap_or_else(|e| panic!("creating project {key}: {e:?}"));
    p
}

async fn new_task(store: &dyn WorkStore, project: &Project, title: &str, at: OffsetDateTime) -> Task {
    store
        .create_task(&task(project, title, at), &journal(project.org_id, "tasks.create"))
        .await
        .unwrap_or_else(|e| panic!("creating task {title}: {e:?}"))
}

async fn depend(store: &dyn WorkStore, org: OrgId, task: TaskId, on: TaskId) -> Result<bool, WorkError> {
    store.add_dependency(org, task, on, base_time(), &journal(org, "tasks.dependencies.add")).await.map(|d| d.added)
}

async fn rank(store: &dyn WorkStore, org: OrgId, id: TaskId) -> i64 {
    store.task(org, id).await.expect("reading a task").expect("the task is live").task.rank
}

async fn set_status(store: &dyn WorkStore, org: OrgId, id: TaskId, status: TaskStatus) -> Result<Task, WorkError> {
    let patch = TaskPatch { status: Some(status), ..TaskPatch::default() };
    store.update_task(org, id, &patch, None, base_time(), &journal(org, "tasks.set_status")).await
}

/// Keys are unique among an organization's live projects (not across organizations, and a
/// deleted project's key is free again); a stale version is refused; a deleted project is gone.
pub async fn projects_have_unique_keys_versions_and_soft_deletes(store: &dyn WorkStore) {
    let (org, other) = (OrgId::generate(), OrgId::generate());
    let web = new_project(store, org, "web").await;
    let again = store.create_project(&project(org, "web", base_time()), &journal(org, "projects.create")).await;
    assert!(matches!(again, Err(WorkError::DuplicateKey)), "a second live project with the key is refused, got {again:?}");
    new_project(store, other, "web").await;
    let by_key = store.project(org, &ProjectRef::Key("web".into())).await.unwrap().expect("found by key");
    let by_id = store.project(org, &ProjectRef::Id(web.id)).await.unwrap().expect("found by id");
    assert_eq!(by_key, by_id);
    assert_eq!(by_id, web, "a project reads back as written");

    let patch = ProjectPatch { name: Some("Website".into()), ..ProjectPatch::default() };
    let stale = store.update_project(org, &ProjectRef::Id(web.id), &patch, Some(7), base_time(), &journal(org, "projects.update")).await;
    assert!(matches!(stale, Err(WorkError::VersionConflict { current: 1 })), "a stale If-Match is refused, got {stale:?}");
    let updated =
        store.update_project(org, &ProjectRef::Id(web.id), &patch, Some(1), base_time(), &journal(org, "projects.update")).await.unwrap();
    assert_eq!((updated.name.as_str(), updated.version), ("Website", 2));
    let unconditional = store
        .update_project(org, &ProjectRef::Key("web".into()), &patch, None, base_time(), &journal(org, "projects.update"))
        .await
        .unwrap();
    assert_eq!(unconditional.version, 3, "without If-Match the write applies");

    let t = new_task(store, &web, "inside", base_time()).await;
    let deleted = store.delete_project(org, &ProjectRef::Id(web.id), base_time(), &journal(org, "projects.delete")).await.unwrap();
    assert_eq!(
        deleted.tasks.iter().map(|d| (d.id, d.version)).collect::<Vec<_>>(),
        vec![(t.id, t.version + 1)],
        "the deleted tasks, each a version on"
    );
    assert_eq!(store.project(org, &ProjectRef::Id(web.id)).await.unwrap(), None, "a deleted project is hidden");
    assert!(store.task(org, t.id).await.unwrap().is_none(), "its tasks are deleted with it");
    let page = store.projects(org, &PageRequest::default()).await.unwrap();
    assert!(page.items.is_empty(), "a deleted project is not listed");
    new_project(store, org, "web").await;
    let deleted_again = store.delete_project(org, &ProjectRef::Id(web.id), base_time(), &journal(org, "projects.delete")).await;
    assert!(matches!(deleted_again, Err(WorkError::NotFound(_))), "deleting twice finds nothing");
}

/// New tasks take increasing ranks; lists filter by project, status, priority, assignee and
/// parent.
pub async fn tasks_take_increasing_ranks_and_list_with_filters(store: &dyn WorkStore) {
    let org = OrgId::generate();
    let (a, b) = (new_project(store, org, "a").await, new_project(store, org, "b").await);
    let first = new_task(store, &a, "first", base_time()).await;
    let second = new_task(store, &b, "second", base_time() + Duration::seconds(1)).await;
    assert!(first.rank < second.rank, "a new task goes to the end of the organization's order");
    let mut urgent = task(&a, "urgent", base_time() + Duration::seconds(2));
    urgent.priority = Priority::Urgent;
    urgent.assignee = Some("ana".into());
    urgent.parent_task_id = Some(first.id);
    let urgent = store.create_task(&urgent, &journal(org, "tasks.create")).await.unwrap();
    let mut foreign_parent = task(&b, "wrong parent", base_time());
    foreign_parent.parent_task_id = Some(first.id);
    let refused = store.create_task(&foreign_parent, &journal(org, "tasks.create")).await;
    assert!(matches!(refused, Err(WorkError::Invalid { field: "parent_task_id", .. })), "a parent in another project is refused");
    let mut deleted_project = task(&a, "nowhere", base_time());
    deleted_project.project_id = ProjectId::generate();
    assert!(matches!(store.create_task(&deleted_project, &journal(org, "tasks.create")).await, Err(WorkError::NotFound("project"))));

    let list = |filter: TaskFilter| async move {
        store.tasks(org, &filter, &PageRequest::default()).await.unwrap().items.into_iter().map(|t| t.id).collect::<Vec<_>>()
    };
    assert_eq!(list(TaskFilter::default()).await, vec![urgent.id, second.id, first.id], "newest first");
    assert_eq!(list(TaskFilter { project_id: Some(a.id), ..TaskFilter::default() }).await, vec![urgent.id, first.id]);
    assert_eq!(list(TaskFilter { priority: Some(Priority::Urgent), ..TaskFilter::default() }).await, vec![urgent.id]);
    assert_eq!(list(TaskFilter { assignee: Some("ana".into()), ..TaskFilter::default() }).await, vec![urgent.id]);
    assert_eq!(list(TaskFilter { parent_task_id: Some(first.id), ..TaskFilter::default() }).await, vec![urgent.id]);
    set_status(store, org, second.id, TaskStatus::InProgress).await.unwrap();
    assert_eq!(list(TaskFilter { status: Some(TaskStatus::InProgress), ..TaskFilter::default() }).await, vec![second.id]);
    let read = store.task(org, urgent.id).await.unwrap().unwrap().task;
    assert_eq!(read, urgent, "a task reads back as created");
}

/// Paging through tasks with a cursor while new tasks arrive yields every old task once.
pub async fn task_lists_page_with_a_cursor_stable_under_inserts(store: &dyn WorkStore) {
    let org = OrgId::generate();
    let p = new_project(store, org, "paged").await;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(new_task(store, &p, &format!("t{i}"), base_time() + Duration::milliseconds(i)).await.id);
    }
    let mut seen = Vec::new();
    let mut page = PageRequest { limit: 7, after: None };
    let mut inserted = 0;
    loop {
        let found = store.tasks(org, &TaskFilter::default(), &page).await.unwrap();
        seen.extend(found.items.iter().map(|t| t.id));
        new_task(store, &p, "late", base_time() + Duration::seconds(60 + inserted)).await;
        inserted += 1;
        match found.next_cursor {
            Some(c) => page.after = Some(atlas_kernel::Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created, "every task before the first page, once each, newest first; none of the later ones");
}

/// The graph's rules on a store: in-order edges move nothing, out-of-order ones re-rank, a
/// duplicate is a no-op, cycles (self, three nodes, across projects) are refused with their
/// path and leave nothing behind, removal works, and a deleted task stops blocking.
pub async fn dependencies_keep_the_order_and_refuse_cycles_with_their_path(store: &dyn WorkStore) {
    let org = OrgId::generate();
    let (p, q) = (new_project(store, org, "p").await, new_project(store, org, "q").await);
    let a = new_task(store, &p, "a", base_time()).await;
    let b = new_task(store, &p, "b", base_time()).await;
    let c = new_task(store, &q, "c", base_time()).await;
    // b depends on a: in order.
    let added = store.add_dependency(org, b.id, a.id, base_time(), &journal(org, "deps")).await.unwrap();
    assert!(added.added && added.reranked == 0, "an in-order edge moves nothing: {added:?}");
    assert_eq!(added.task.version, 2, "the dependent's version moves on");
    assert!(!depend(store, org, b.id, a.id).await.unwrap(), "a duplicate is a no-op");
    assert_eq!(store.task(org, b.id).await.unwrap().unwrap().task.version, 2, "a no-op changes no version");
    // a depends on c (c ranks after a): out of order, c moves before a.
    let moved = store.add_dependency(org, a.id, c.id, base_time(), &journal(org, "deps")).await.unwrap();
    assert!(moved.reranked > 0, "an out-of-order edge re-ranks the region");
    let (ra, rb, rc) = (rank(store, org, a.id).await, rank(store, org, b.id).await, rank(store, org, c.id).await);
    assert!(rc < ra && ra < rb, "ranks respect every edge: c {rc} < a {ra} < b {rb}");
    // c depends on b: a three-node cycle across two projects.
    let cycle = depend(store, org, c.id, b.id).await;
    match cycle {
        Err(WorkError::Cycle { path }) => assert_eq!(path, vec![c.id, b.id, a.id, c.id], "the path runs c → b → a → c"),
        other => panic!("a cycle must be refused, got {other:?}"),
    }
    assert!(matches!(depend(store, org, a.id, a.id).await, Err(WorkError::Cycle { path }) if path == vec![a.id, a.id]));
    let deps = store.dependencies(org, c.id).await.unwrap();
    assert!(deps.is_empty(), "the refused edge left nothing behind");
    assert_eq!(rank(store, org, c.id).await, rc, "nor moved a rank");
    // Removal, and a deleted task stops blocking.
    store.remove_dependency(org, a.id, c.id, base_time(), &journal(org, "deps")).await.unwrap();
    assert!(matches!(
        store.remove_dependency(org, a.id, c.id, base_time(), &journal(org, "deps")).await,
        Err(WorkError::NotFound("dependency"))
    ));
    assert_eq!(store.task(org, b.id).await.unwrap().unwrap().blocked_by, vec![a.id]);
    store.delete_task(org, a.id, base_time(), &journal(org, "tasks.delete")).await.unwrap();
    assert!(store.task(org, b.id).await.unwrap().unwrap().blocked_by.is_empty(), "a deleted task blocks nobody");
    assert!(store.task(org, a.id).await.unwrap().is_none(), "a deleted task is hidden");
    assert!(matches!(depend(store, org, b.id, a.id).await, Err(WorkError::NotFound("task"))), "nor can it be depended on");
}

/// Completing a task with unfinished dependencies is refused with them; once they are done
/// (or cancelled) it succeeds.
pub async fn a_blocked_task_cannot_be_done_until_its_blockers_are(store: &dyn WorkStore) {
    let org = OrgId::generate();
    let p = new_project(store, org, "blocked").await;
    let (a, b, c) = (
        new_task(store, &p, "a", base_time()).await,
        new_task(store, &p, "b", base_time()).await,
        new_task(store, &p, "c", base_time()).await,
    );
    depend(store, org, c.id, a.id).await.unwrap();
    depend(store, org, c.id, b.id).await.unwrap();
    match set_status(store, org, c.id, TaskStatus::Done).await {
        Err(WorkError::Blocked { blocked_by }) => assert_eq!(blocked_by, vec![a.id, b.id], "both blockers, in order"),
        other => panic!("a blocked completion must be refused, got {other:?}"),
    }
    set_status(store, org, c.id, TaskStatus::InProgress).await.expect("other moves are allowed");
    set_status(store, org, a.id, TaskStatus::Done).await.unwrap();
    set_status(store, org, b.id, TaskStatus::Cancelled).await.unwrap();
    let done = set_status(store, org, c.id, TaskStatus::Done).await.expect("nothing blocks it any more");
    assert_eq!(done.status, TaskStatus::Done);
    assert!(done.completed_at.is_some());
    let stale = store.update_task(org, c.id, &TaskPatch::default(), Some(1), base_time(), &journal(org, "tasks.update")).await;
    assert!(matches!(stale, Err(WorkError::VersionConflict { .. })), "a stale version is refused, got {stale:?}");
}

/// A task cannot become its own ancestor.
pub async fn parent_links_never_form_a_cycle(store: &dyn WorkStore) {
    let org = OrgId::generate();
    let p = new_project(store, org, "tree").await;
    let a = new_task(store, &p, "a", base_time()).await;
    let mut b = task(&p, "b", base_time());
    b.parent_task_id = Some(a.id);
    let b = store.create_task(&b, &journal(org, "tasks.create")).await.unwrap();
    let mut c = task(&p, "c", base_time());
    c.parent_task_id = Some(b.id);
    let c = store.create_task(&c, &journal(org, "tasks.create")).await.unwrap();
    let patch = TaskPatch { parent_task_id: Some(Some(c.id)), ..TaskPatch::default() };
    match store.update_task(org, a.id, &patch, None, base_time(), &journal(org, "tasks.update")).await {
        Err(WorkError::Cycle { path }) => assert_eq!(path, vec![a.id, c.id, b.id, a.id]),
        other => panic!("a parent cycle must be refused, got {other:?}"),
    }
    assert_eq!(store.task(org, a.id).await.unwrap().unwrap().task.parent_task_id, None);
}

/// Nothing of one organization is visible to, or changeable by, another.
pub async fn another_organization_sees_none_of_the_work(store: &dyn WorkStore) {
    let (org, other) = (OrgId::generate(), OrgId::generate());
    let p = new_project(store, org, "mine").await;
    let a = new_task(store, &p, "a", base_time()).await;
    let theirs = new_project(store, other, "theirs").await;
    let t = new_task(store, &theirs, "t", base_time()).await;
    assert_eq!(store.project(other, &ProjectRef::Id(p.id)).await.unwrap(), None);
    assert!(store.task(other, a.id).await.unwrap().is_none());
    assert!(store
        .tasks(other, &TaskFilter { project_id: Some(p.id), ..TaskFilter::default() }, &PageRequest::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(matches!(depend(store, other, t.id, a.id).await, Err(WorkError::NotFound(_))), "no edge to another organization's task");
    assert!(matches!(set_status(store, other, a.id, TaskStatus::Done).await, Err(WorkError::NotFound(_))));
    assert!(matches!(store.delete_task(other, a.id, base_time(), &journal(other, "tasks.delete")).await, Err(WorkError::NotFound(_))));
    assert!(matches!(store.notes(other, a.id, &PageRequest::default()).await, Err(WorkError::NotFound(_))));
    assert!(store.project_tasks(other, p.id).await.unwrap().tasks.is_empty());
}

/// A random sequence of adds and removes on the store decides every edge as the in-memory
/// reference does, and the stored ranks respect every stored edge after it.
pub async fn the_graph_agrees_with_the_in_memory_reference(store: &dyn WorkStore) {
    let org = OrgId::generate();
    let p = new_project(store, org, "random").await;
    let mut tasks = Vec::new();
    let mut reference = DependencyGraph::new();
    for i in 0..12 {
        let t = new_task(store, &p, &format!("n{i}"), base_time()).await;
        reference.add_task(t.id);
        tasks.push(t.id);
    }
    // A fixed pseudo-random sequence (xorshift), so a failure reproduces.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut edges: BTreeSet<(TaskId, TaskId)> = BTreeSet::new();
    for _ in 0..120 {
        let (t, d) = (tasks[next(12)], tasks[next(12)]);
        if next(5) == 0 {
            let removed = store.remove_dependency(org, t, d, base_time(), &journal(org, "deps")).await.is_ok();
            assert_eq!(removed, reference.remove_dependency(t, d), "removal of {t} -> {d}");
            edges.remove(&(t, d));
            continue;
        }
        let stored = depend(store, org, t, d).await;
        let expected = reference.add_dependency(t, d);
        match (&stored, &expected) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{t} -> {d}: added or duplicate alike"),
            (Err(WorkError::Cycle { path }), Err(GraphError::Cycle(cycle))) => {
                assert_eq!(path.first(), Some(&t));
                assert_eq!(path.last(), Some(&t));
                assert_eq!(path.get(1), Some(&d));
                assert!(cycle.path.len() >= 2, "the reference refuses it too");
                for pair in path[1..].windows(2) {
                    assert!(edges.contains(&(pair[0], pair[1])), "every step of the reported path is a stored edge");
                }
            }
            other => panic!("{t} -> {d}: store and reference disagree: {other:?}"),
        }
        if matches!(stored, Ok(true)) {
            edges.insert((t, d));
        }
    }
    for (t, d) in &edges {
        assert!(rank(store, org, *d).await < rank(store, org, *t).await, "the stored ranks respect {t} -> {d}");
    }
    let graph = store.project_tasks(org, p.id).await.unwrap();
    let stored_edges: BTreeSet<(TaskId, TaskId)> = graph.edges.iter().map(|e| (e.task, e.depends_on)).collect();
    assert_eq!(stored_edges, edges, "the stored edges are the reference's");
}

/// Two requests that together would close a cycle, run at the same time, `trials` times: never
/// do both commit.
pub async fn concurrent_edges_never_both_close_a_cycle(store: &dyn WorkStore, trials: usize) {
    let org = OrgId::generate();
    let p = new_project(store, org, "race").await;
    for trial in 0..trials {
        let a = new_task(store, &p, &format!("a{trial}"), base_time()).await;
        let b = new_task(store, &p, &format!("b{trial}"), base_time()).await;
        let c = new_task(store, &p, &format!("c{trial}"), base_time()).await;
        depend(store, org, b.id, a.id).await.unwrap();
        // Either "a depends on c" or "c depends on b" may commit, never both (a → c → b → a).
        let (first, second) = tokio::join!(depend(store, org, a.id, c.id), depend(store, org, c.id, b.id));
        let committed = [first.is_ok(), second.is_ok()].iter().filter(|ok| **ok).count();
        assert_eq!(committed, 1, "trial {trial}: exactly one of the two edges commits: {first:?} / {second:?}");
        for refused in [first, second].into_iter().filter_map(Result::err) {
            assert!(matches!(refused, WorkError::Cycle { .. }), "the other is refused as a cycle, got {refused:?}");
        }
    }
}
