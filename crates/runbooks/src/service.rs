//! The runbook use cases: definitions (create, replace, read), plans (a dry run performs
//! nothing), real runs (queued for the worker, refused with `PlanStale` when the plan the
//! caller saw is no longer the plan), and the worker's step runner: manual steps are listed,
//! http steps are sent in order to addresses the SSRF guard accepts, the first failure skips
//! the rest, and the execution is recorded with every step's status and a redacted excerpt.

use crate::model::{
    ExecutedStep, Execution, ExecutionId, ExecutionStatus, Runbook, RunbookDraft, RunbookError, RunbookId, StepKind, StepStatus,
};
use crate::plan::{plan, redact, secrets_of, Plan, PlannedRequest};
use crate::ports::{Claimed, RunbookStore, StepCaller};
use atlas_kernel::{Clock, OrgId, Page, PageRequest};
use atlas_runs::{Journal, JournalEntry, OutboxEvent};
use atlas_webhooks::{check_addresses, validate_url, Event, EventType, Family, Host, Resolver};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::Duration;

/// What a run is planned from, each named as the API names it.
#[derive(Debug, Clone)]
pub struct RunInputs<'a> {
    /// The incident the run is for (its reference or id), when there is one.
    pub incident_id: Option<String>,
    /// The incident's fields the steps' templates may use (`{{incident.title}}`).
    pub incident: &'a BTreeMap<String, String>,
    /// The caller's parameters, by name.
    pub parameters: &'a BTreeMap<String, String>,
    /// For a real run: the plan the caller saw, which must still be the current one.
    pub plan_hash: Option<&'a str>,
}

/// Settings of the runbook use cases.
#[derive(Debug, Clone, Copy)]
pub struct RunbooksConfig {
    /// Let http steps reach private and loopback addresses (tests, closed networks).
    pub allow_private: bool,
    /// How long one http step may take.
    pub step_timeout: Duration,
    /// How long a claimed execution is held before another worker may take it over.
    pub lease: Duration,
}

impl Default for RunbooksConfig {
    fn default() -> Self {
        Self { allow_private: false, step_timeout: Duration::seconds(10), lease: Duration::minutes(10) }
    }
}

/// What the worker did with one claimed execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRunReport {
    pub execution_id: ExecutionId,
    pub status: ExecutionStatus,
}

/// The runbook use cases.
#[derive(Debug, Clone)]
pub struct Runbooks {
    store: Arc<dyn RunbookStore>,
    caller: Arc<dyn StepCaller>,
    resolver: Arc<dyn Resolver>,
    clock: Arc<dyn Clock>,
    config: RunbooksConfig,
}

fn execution_event(execution: &Execution, name: &str) -> Option<OutboxEvent> {
    let event_type = EventType::open(Family::Runbook, &format!("execution.{name}")).ok()?;
    let data = serde_json::to_value(execution).ok()?;
    let version = match execution.status {
        ExecutionStatus::Queued => 1,
        ExecutionStatus::Running => 2,
        _ => 3,
    };
    let at = execution.finished_at.unwrap_or(execution.created_at);
    Some(Event::new(execution.org_id, event_type, at, data, Some(execution.id.to_string()), version).outbox())
}

impl Runbooks {
    /// The use cases over their ports.
    pub fn new(
        store: Arc<dyn RunbookStore>,
        caller: Arc<dyn StepCaller>,
        resolver: Arc<dyn Resolver>,
        clock: Arc<dyn Clock>,
        config: RunbooksConfig,
    ) -> Self {
        Self { store, caller, resolver, clock, config }
    }

    /// Creates a runbook (version 1).
    ///
    /// # Errors
    /// `Invalid`; `Store`.
    pub async fn create(
        &self,
        org_id: OrgId,
        draft: RunbookDraft,
        journal: &dyn Journal<Runbook, JournalEntry>,
    ) -> Result<Runbook, RunbookError> {
        draft.check()?;
        let now = now_us(&*self.clock);
        let runbook = Runbook {
            id: RunbookId::generate(),
            org_id,
            name: draft.name,
            description: draft.description,
            parameters: draft.parameters,
            steps: draft.steps,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        self.store.create_runbook(&runbook, journal).await?;
        Ok(runbook)
    }

    /// Replaces a runbook's content (its version grows, so earlier plans go stale).
    ///
    /// # Errors
    /// `Invalid`, `NotFound`; `Store`.
    pub async fn replace(
        &self,
        org_id: OrgId,
        id: RunbookId,
        draft: RunbookDraft,
        journal: &dyn Journal<Runbook, JournalEntry>,
    ) -> Result<Runbook, RunbookError> {
        draft.check()?;
        self.store.replace_runbook(org_id, id, &draft, now_us(&*self.clock), journal).await
    }

    /// One runbook.
    ///
    /// # Errors
    /// `NotFound`; `Store`.
    pub async fn get(&self, org_id: OrgId, id: RunbookId) -> Result<Runbook, RunbookError> {
        self.store.runbook(org_id, id).await
    }

    /// Runbooks, newest first.
    ///
    /// # Errors
    /// `Store`.
    pub async fn list(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Runbook>, RunbookError> {
        self.store.runbooks(org_id, page).await
    }

    /// A runbook's executions, newest first.
    ///
    /// # Errors
    /// `NotFound`; `Store`.
    pub async fn executions(&self, org_id: OrgId, id: RunbookId, page: &PageRequest) -> Result<Page<Execution>, RunbookError> {
        self.store.runbook(org_id, id).await?;
        self.store.executions(org_id, id, page).await
    }

    /// One execution.
    ///
    /// # Errors
    /// `NotFound`; `Store`.
    pub async fn execution(&self, org_id: OrgId, id: ExecutionId) -> Result<Execution, RunbookError> {
        self.store.execution(org_id, id).await
    }

    /// The plan for a run (a dry run): nothing is performed or stored.
    ///
    /// # Errors
    /// `NotFound`, `Invalid`; `Store`.
    pub async fn dry_run(&self, org_id: OrgId, id: RunbookId, inputs: &RunInputs<'_>) -> Result<Plan, RunbookError> {
        let runbook = self.store.runbook(org_id, id).await?;
        Ok(plan(&runbook, inputs.incident_id.clone(), inputs.incident, inputs.parameters)?.0)
    }

    /// Queues a real run of the current plan. With `plan_hash`, the current plan must be the
    /// one that hash names.
    ///
    /// # Errors
    /// `PlanStale`, `NotFound`, `Invalid`; `Store`.
    pub async fn execute(
        &self,
        org_id: OrgId,
        id: RunbookId,
        inputs: &RunInputs<'_>,
        journal: &dyn Journal<Execution, JournalEntry>,
    ) -> Result<Execution, RunbookError> {
        let runbook = self.store.runbook(org_id, id).await?;
        let parameters = inputs.parameters;
        let (planned, requests) = plan(&runbook, inputs.incident_id.clone(), inputs.incident, parameters)?;
        if let Some(expected) = inputs.plan_hash {
            if expected != planned.plan_hash {
                return Err(RunbookError::PlanStale { expected: expected.to_owned(), actual: planned.plan_hash });
            }
        }
        let resolved: BTreeMap<String, String> = runbook
            .parameters
            .iter()
            .map(|p| (p.name.clone(), parameters.get(&p.name).cloned().or_else(|| p.default.clone()).unwrap_or_default()))
            .collect();
        let secrets = secrets_of(&runbook, &resolved);
        let execution = Execution {
            id: ExecutionId::generate(),
            org_id,
            runbook_id: runbook.id,
            runbook_version: runbook.version,
            incident_id: planned.incident_id.clone(),
            status: ExecutionStatus::Queued,
            plan_hash: planned.plan_hash.clone(),
            parameters: planned.parameters.clone(),
            steps: planned
                .steps
                .iter()
                .map(|s| ExecutedStep {
                    index: s.index,
                    kind: s.kind,
                    title: s.title.clone(),
                    request: s.request.clone(),
                    status: StepStatus::Pending,
                    response_status: None,
                    response_excerpt: None,
                    error: None,
                })
                .collect(),
            created_at: now_us(&*self.clock),
            started_at: None,
            finished_at: None,
        };
        let with_event = |e: &Execution| {
            let mut entry = journal.entry(e);
            entry.events.extend(execution_event(e, "queued"));
            entry
        };
        self.store.enqueue(&execution, &requests, &secrets, &with_event).await?;
        Ok(execution)
    }

    /// Claims one execution and runs it to the end. `None` when none was waiting.
    ///
    /// # Errors
    /// `Store`.
    pub async fn run_next(&self) -> Result<Option<StepRunReport>, RunbookError> {
        let Some(claimed) = self.store.claim(now_us(&*self.clock), self.config.lease).await? else {
            return Ok(None);
        };
        let Claimed { mut execution, requests, secrets, attempt } = claimed;
        execution.started_at = execution.started_at.or(Some(now_us(&*self.clock)));
        let mut failed = false;
        for (step, request) in execution.steps.iter_mut().zip(requests.iter()) {
            if failed {
                step.status = StepStatus::Skipped;
                continue;
            }
            match (step.kind, request) {
                (StepKind::Manual, _) => step.status = StepStatus::Manual,
                (StepKind::Http, Some(request)) => {
                    self.run_http(step, request, &secrets).await;
                    failed = step.status == StepStatus::Failed;
                }
                (StepKind::Http, None) => {
                    step.status = StepStatus::Failed;
                    step.error = Some("no request was planned for this step".into());
                    failed = true;
                }
            }
        }
        let now = now_us(&*self.clock);
        execution.status = if failed { ExecutionStatus::Failed } else { ExecutionStatus::Succeeded };
        execution.finished_at = Some(now);
        let mut entry =
            JournalEntry::by_system(execution.org_id, "runbooks.execution.finish", execution.id.to_string(), String::new(), now);
        entry.events.extend(execution_event(&execution, execution.status.as_str()));
        let status = execution.status;
        // A finish refused to a stale claimer changes nothing: the worker that took the
        // execution over after the lease records it.
        self.store.finish(&execution, attempt, &entry).await?;
        Ok(Some(StepRunReport { execution_id: execution.id, status }))
    }

    async fn run_http(&self, step: &mut ExecutedStep, request: &PlannedRequest, secrets: &[String]) {
        let fail = |step: &mut ExecutedStep, message: String| {
            step.status = StepStatus::Failed;
            step.error = Some(redact(&message, secrets));
        };
        let url = match validate_url(&request.url) {
            Ok(url) => url,
            Err(e) => return fail(step, format!("refused url: {e}")),
        };
        let addresses = match url.host() {
            Host::Ip(ip) => vec![*ip],
            Host::Domain(name) => match self.resolver.resolve(name, url.port()).await {
                Ok(a) => a,
                Err(e) => return fail(step, format!("could not resolve the host: {e}")),
            },
        };
        if let Err(refusal) = check_addresses(&addresses, self.config.allow_private) {
            return fail(step, format!("refused by the SSRF guard: {refusal}"));
        }
        let body = request.body.as_ref().map(|b| match b {
            serde_json::Value::String(s) => ("text/plain; charset=utf-8", s.clone().into_bytes()),
            other => ("application/json", serde_json::to_vec(other).unwrap_or_default()),
        });
        match self.caller.call(request.method, &url, &addresses, body, self.config.step_timeout).await {
            Ok(response) => {
                step.response_status = Some(response.status);
                step.response_excerpt = Some(redact(response.body_excerpt.text(), secrets));
                if (200..300).contains(&response.status) {
                    step.status = StepStatus::Succeeded;
                } else {
                    fail(step, format!("answered {}", response.status));
                }
            }
            Err(e) => fail(step, format!("{}: {}", e.kind.code(), e.message)),
        }
    }
}

/// The clock's instant truncated to the microsecond, the precision stores keep, so an answer
/// shows the times a later read returns.
fn now_us(clock: &dyn Clock) -> time::OffsetDateTime {
    let now = clock.now();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now)
}
