//! Runbooks, for the operations area: definitions with ordered `manual` (a checklist line) and
//! `http` steps (method, URL and body templates with `{{incident.reference}}`-style
//! parameters), plans resolved from an incident and parameters with a `plan_hash` (a dry run
//! returns one and performs nothing), executions that keep the runbook version and the steps
//! as run with secrets redacted, the `RunbookStore` and `StepCaller` ports and the `Runbooks`
//! use cases (including the worker's step runner, which applies the webhook SSRF guard).
//! Pure: no runtime, database or HTTP client.

mod model;
mod plan;
mod ports;
mod service;

pub use model::{
    ExecutedStep, Execution, ExecutionId, ExecutionStatus, HttpMethod, Parameter, Runbook, RunbookDraft, RunbookError, RunbookId, StepDef,
    StepKind, StepStatus, MAX_STEPS,
};
pub use plan::{plan, redact, Plan, PlannedRequest, PlannedStep, REDACTED};
pub use ports::{Claimed, RunbookStore, StepCaller};
pub use service::{RunInputs, Runbooks, RunbooksConfig, StepRunReport};
