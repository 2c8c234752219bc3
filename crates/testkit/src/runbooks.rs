//! The behavioural suite every `RunbookStore` must pass: runbooks read back as stored and a
//! replace grows the version; an execution is queued only while its runbook is at the planned
//! version (else `PlanStale`); each queued execution is claimed by exactly one of several
//! concurrent claimers, again only after its lease lapses, and finished only by its current
//! claim, with its real requests handed to the claimer and forgotten when it finishes;
//! organizations never see each other's runbooks or executions.

use crate::accounts::journal;
use atlas_kernel::{OrgId, PageRequest};
use atlas_runbooks::{
    ExecutedStep, Execution, ExecutionId, ExecutionStatus, HttpMethod, PlannedRequest, Runbook, RunbookDraft, RunbookError, RunbookId,
    RunbookStore, StepDef, StepKind, StepStatus,
};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// Runs every check of the suite against `store`.
pub async fn suite(store: Arc<dyn RunbookStore>) {
    runbooks_read_back_and_a_replace_grows_the_version(store.clone()).await;
    an_execution_is_queued_only_at_the_planned_version(store.clone()).await;
    each_execution_is_claimed_once_then_again_only_after_its_lease(store.clone()).await;
    only_the_current_claim_finishes_an_execution(store).await;
}

fn at() -> OffsetDateTime {
    time::macros::datetime!(2026-04-01 12:00:00 UTC)
}

fn runbook(org_id: OrgId) -> Runbook {
    Runbook {
        id: RunbookId::generate(),
        org_id,
        name: "restart".into(),
        description: None,
        parameters: Vec::new(),
        steps: vec![StepDef {
            kind: StepKind::Http,
            title: "call".into(),
            method: Some(HttpMethod::Post),
            url: Some("https://ops.example.com/x".into()),
            body: None,
        }],
        version: 1,
        created_at: at(),
        updated_at: at(),
    }
}

fn execution(runbook: &Runbook) -> Execution {
    Execution {
        id: ExecutionId::generate(),
        org_id: runbook.org_id,
        runbook_id: runbook.id,
        runbook_version: runbook.version,
        incident_id: None,
        status: ExecutionStatus::Queued,
        plan_hash: "a".repeat(64),
        parameters: Default::default(),
        steps: vec![ExecutedStep {
            index: 0,
            kind: StepKind::Http,
            title: "call".into(),
            request: None,
            status: StepStatus::Pending,
            response_status: None,
            response_excerpt: None,
            error: None,
        }],
        created_at: at(),
        started_at: None,
        finished_at: None,
    }
}

fn request() -> Vec<Option<PlannedRequest>> {
    vec![Some(PlannedRequest { method: HttpMethod::Post, url: "https://ops.example.com/x?t=s3cret".into(), body: None })]
}

async fn stored(store: &dyn RunbookStore, org: OrgId) -> Runbook {
    let r = runbook(org);
    store.create_runbook(&r, &|_: &Runbook| journal(org, "runbooks.create")).await.expect("create");
    r
}

async fn enqueue(store: &dyn RunbookStore, e: &Execution) -> Result<(), RunbookError> {
    store.enqueue(e, &request(), &["s3cret".to_owned()], &|_: &Execution| journal(e.org_id, "runbooks.execute")).await
}

/// A stored runbook reads back; a replace grows the version; another organization sees none.
pub async fn runbooks_read_back_and_a_replace_grows_the_version(store: Arc<dyn RunbookStore>) {
    let org = OrgId::generate();
    let r = stored(&*store, org).await;
    assert_eq!(store.runbook(org, r.id).await.expect("read"), r);
    let draft = RunbookDraft { name: "restart v2".into(), description: Some("d".into()), parameters: Vec::new(), steps: r.steps.clone() };
    let replaced = store
        .replace_runbook(org, r.id, &draft, at() + Duration::minutes(1), &|_: &Runbook| journal(org, "runbooks.replace"))
        .await
        .expect("replace");
    assert_eq!((replaced.version, replaced.name.as_str()), (2, "restart v2"));
    assert_eq!(store.runbook(org, r.id).await.expect("read").version, 2);
    assert!(matches!(store.runbook(OrgId::generate(), r.id).await, Err(RunbookError::NotFound)));
    let listed = store.runbooks(org, &PageRequest::default()).await.expect("list");
    assert_eq!(listed.items.len(), 1);
}

/// An execution planned from version 1 is refused once the runbook is at version 2.
pub async fn an_execution_is_queued_only_at_the_planned_version(store: Arc<dyn RunbookStore>) {
    let org = OrgId::generate();
    let r = stored(&*store, org).await;
    let planned = execution(&r);
    let draft = RunbookDraft { name: "changed".into(), description: None, parameters: Vec::new(), steps: r.steps.clone() };
    store.replace_runbook(org, r.id, &draft, at(), &|_: &Runbook| journal(org, "runbooks.replace")).await.expect("replace");
    assert!(matches!(enqueue(&*store, &planned).await, Err(RunbookError::PlanStale { .. })), "a plan of version 1 is stale at 2");
    let listed = store.executions(org, r.id, &PageRequest::default()).await.expect("list");
    assert!(listed.items.is_empty(), "nothing was queued");
    let mut current = execution(&r);
    current.runbook_version = 2;
    enqueue(&*store, &current).await.expect("a plan of the current version is queued");
    let listed = store.executions(org, r.id, &PageRequest::default()).await.expect("list");
    assert_eq!(listed.items.iter().map(|e| e.id).collect::<Vec<_>>(), vec![current.id]);
    assert!(store.executions(OrgId::generate(), r.id, &PageRequest::default()).await.expect("list").items.is_empty());
}

/// Six concurrent claimers share queued executions, each claimed exactly once with its real
/// requests; a claimed one comes back only after its lease.
pub async fn each_execution_is_claimed_once_then_again_only_after_its_lease(store: Arc<dyn RunbookStore>) {
    let org = OrgId::generate();
    let r = stored(&*store, org).await;
    let mut queued = Vec::new();
    for _ in 0..8 {
        let e = execution(&r);
        enqueue(&*store, &e).await.expect("enqueue");
        queued.push(e.id);
    }
    let now = OffsetDateTime::now_utc();
    let claimer = {
        let store = store.clone();
        move || {
            let store = store.clone();
            async move { store.claim(now, Duration::minutes(5)).await.expect("claim").map(|c| vec![c]) }
        }
    };
    let claimed = crate::claim_concurrently(6, claimer).await;
    let mine: Vec<_> = claimed.iter().filter(|c| c.execution.org_id == org).collect();
    let mut ids: Vec<ExecutionId> = mine.iter().map(|c| c.execution.id).collect();
    ids.sort();
    queued.sort();
    assert_eq!(ids, queued, "each queued execution claimed exactly once");
    assert!(mine.iter().all(|c| c.requests == request() && c.secrets == ["s3cret"] && c.execution.status == ExecutionStatus::Running));
    assert!(
        store.claim(now + Duration::minutes(4), Duration::minutes(5)).await.expect("claim").is_none_or(|c| c.execution.org_id != org),
        "nothing of this organization is claimable within the lease"
    );
    let again = store.claim(now + Duration::minutes(6), Duration::minutes(5)).await.expect("claim").expect("a lapsed lease is claimable");
    assert_eq!(again.attempt, 2, "the takeover is the second claim");
}

/// After a takeover, the first claimer's finish is refused; the current one's is recorded,
/// and the sealed requests are gone.
pub async fn only_the_current_claim_finishes_an_execution(store: Arc<dyn RunbookStore>) {
    let org = OrgId::generate();
    let r = stored(&*store, org).await;
    let e = execution(&r);
    enqueue(&*store, &e).await.expect("enqueue");
    let far = OffsetDateTime::now_utc() + Duration::days(3650);
    let mut first = None;
    while let Some(c) = store.claim(far, Duration::minutes(5)).await.expect("claim") {
        if c.execution.id == e.id {
            first = Some(c);
            break;
        }
    }
    let first = first.expect("claimed");
    let second = loop {
        let c = store.claim(far + Duration::minutes(6), Duration::minutes(5)).await.expect("claim").expect("the lapsed claim");
        if c.execution.id == e.id {
            break c;
        }
    };
    let mut done = first.execution.clone();
    done.status = ExecutionStatus::Succeeded;
    done.finished_at = Some(far);
    done.steps[0].status = StepStatus::Succeeded;
    let entry = journal(org, "runbooks.execution.finish");
    assert!(!store.finish(&done, first.attempt, &entry).await.expect("finish"), "a stale claim cannot finish");
    assert!(store.finish(&done, second.attempt, &journal(org, "runbooks.execution.finish")).await.expect("finish"));
    let read = store.execution(org, e.id).await.expect("read");
    assert_eq!((read.status, read.steps[0].status), (ExecutionStatus::Succeeded, StepStatus::Succeeded));
    assert!(matches!(store.execution(OrgId::generate(), e.id).await, Err(RunbookError::NotFound)));
}
