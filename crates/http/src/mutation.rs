//! One mutating call, start to finish: read and validate the idempotency key (header or body,
//! never two different ones), fingerprint the request, ask the store whether to execute,
//! replay or refuse, then build the journal entry (run plus outcome) that the use case commits
//! with its effect, and answer with exactly the bytes that were stored.

use crate::envelope::{json_response, success_body};
use crate::error::{ApiError, ErrorCode};
use crate::request_id;
use crate::routes::RouteSpec;
use crate::state::AppState;
use atlas_idempotency::{Decision, Fingerprint, IdempotencyKey, IdempotencyScope, StoredResponse};
use atlas_kernel::OrgId;
use atlas_runs::{JournalEntry, Run, RunError, RunId, RunStatus};
use atlas_scopes::{Actor, Principal};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Mutex;

/// A success answer as rendered once: status, the envelope bytes sent, the bytes stored for
/// replays (without a shown-once secret), `Location`.
type Rendered = (StatusCode, Vec<u8>, Vec<u8>, Option<String>);

/// What beginning a mutation decided.
#[derive(Debug)]
pub enum Started {
    /// Answer with this (a replay, or a refusal of the key).
    Answer(Response),
    /// Execute.
    Execute(Box<Mutation>),
}

/// A mutating call in flight.
#[derive(Debug)]
pub struct Mutation {
    state: AppState,
    org_id: Option<OrgId>,
    actor: Actor,
    claim: Option<IdempotencyScope>,
    run_id: RunId,
    operation: String,
    run_status: RunStatus,
    rendered: Mutex<Option<Rendered>>,
}

/// The key a request carries, from the header or the body field; both present and different
/// is a VALIDATION_ERROR.
pub fn idempotency_key(headers: &HeaderMap, body: &Value) -> Result<Option<IdempotencyKey>, ApiError> {
    let from_header = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let text = v.to_str().map_err(|_| ApiError::field("Idempotency-Key", "must be printable ASCII"))?;
            Some(IdempotencyKey::parse_header(text).map_err(|e| ApiError::field("Idempotency-Key", e.to_string()))?)
        }
    };
    let from_body = match body.get("idempotency_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(IdempotencyKey::parse(s).map_err(|e| ApiError::field("idempotency_key", e.to_string()))?),
        Some(_) => return Err(ApiError::field("idempotency_key", "must be a string")),
    };
    match (from_header, from_body) {
        (Some(h), Some(b)) if h != b => Err(ApiError::field("idempotency_key", "differs from the Idempotency-Key header; send one key")),
        (h, b) => Ok(h.or(b)),
    }
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = json_response(status, stored.body);
    let headers = response.headers_mut();
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    if let Some(v) = stored.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert("location", v);
    }
    if let Some(v) = stored.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        headers.insert("etag", v);
    }
    response
}

impl Mutation {
    /// Starts a mutation by an authenticated caller.
    pub async fn begin(
        state: &AppState,
        spec: &'static RouteSpec,
        caller: &Principal,
        headers: &HeaderMap,
        body: &Value,
    ) -> Result<Started, ApiError> {
        let key = idempotency_key(headers, body)?;
        let mut mutation = Mutation::unkeyed(state, spec, Some(caller.org_id), caller.actor);
        let Some(key) = key else {
            return Ok(Started::Execute(Box::new(mutation)));
        };
        let scope = IdempotencyScope {
            org_id: caller.org_id,
            scope: spec.scope.map(|s| s.as_str().to_owned()).unwrap_or_default(),
            route: format!("{} {}", spec.method, spec.path),
            key,
        };
        let fingerprint = Fingerprint::of(spec.method, spec.path, body);
        match state.idempotency.begin(&scope, &fingerprint, state.clock.now()).await? {
            Decision::Execute | Decision::Expired => {
                mutation.claim = Some(scope);
                Ok(Started::Execute(Box::new(mutation)))
            }
            Decision::Replay(stored) => Ok(Started::Answer(replay(stored))),
            Decision::Reused => Ok(Started::Answer(
                ApiError::new(ErrorCode::IdempotencyKeyReused, "this idempotency key was used for a different request")
                    .hint("use a new key for a new request")
                    .into_response(),
            )),
            Decision::InProgress => {
                let mut err = ApiError::new(ErrorCode::IdempotencyInProgress, "a request with this idempotency key is still executing");
                err.retry_after = Some(1);
                Ok(Started::Answer(err.into_response()))
            }
        }
    }

    /// A mutation without an idempotency key (credential exchanges, whose tokens are single-use).
    pub fn unkeyed(state: &AppState, spec: &'static RouteSpec, org_id: Option<OrgId>, actor: Actor) -> Self {
        Self {
            state: state.clone(),
            org_id,
            actor,
            claim: None,
            run_id: RunId::generate(),
            operation: spec.operation.to_owned(),
            run_status: RunStatus::Succeeded,
            rendered: Mutex::new(None),
        }
    }

    /// Names the run's operation more precisely than the route does (`actions.reply`).
    pub fn set_operation(&mut self, operation: impl Into<String>) {
        self.operation = operation.into();
    }

    /// Records a successful call's run as `pending`: a send, whose outcome the outbox worker
    /// records when the provider accepts or refuses it.
    pub fn set_pending(&mut self) {
        self.run_status = RunStatus::Pending;
    }

    /// The run as a response shows it before it is stored (`{"id", "operation", "status"}`).
    pub fn run_summary(&self) -> serde_json::Value {
        serde_json::json!({"id": self.run_id.to_string(), "operation": self.operation, "status": self.run_status.as_str()})
    }

    fn run(&self, org_id: OrgId, actor: Actor, status: RunStatus, resource_id: Option<String>, error: Option<RunError>) -> Run {
        let now = self.state.clock.now();
        Run {
            id: self.run_id,
            org_id,
            actor,
            operation: self.operation.clone(),
            status,
            request_id: request_id::current(),
            idempotency_key: self.claim.as_ref().map(|c| c.key.as_str().to_owned()),
            resource_id,
            error,
            created_at: now,
            updated_at: now,
        }
    }

    /// The journal entry for a success: the run, and the response to replay (rendered once, so
    /// the stored bytes are the bytes sent). `org_id` and `actor` override the caller's for
    /// calls that create their own organization (bootstrap).
    pub fn entry(
        &self,
        org_id: Option<OrgId>,
        actor: Option<Actor>,
        status: StatusCode,
        data: &Value,
        resource_id: Option<String>,
        location: Option<String>,
    ) -> JournalEntry {
        self.entry_showing_secret(org_id, actor, status, data, None, resource_id, location)
    }

    /// [`entry`](Self::entry) for an answer that shows a secret once (at the JSON pointer
    /// `secret_field` of `data`: `/key` of a minted key, `/secret` of a webhook): the stored
    /// answer a replay returns carries `null` there and `"secret_shown_once": true`, so a
    /// secret is never kept in the idempotency store nor shown twice.
    #[allow(clippy::too_many_arguments)]
    pub fn entry_showing_secret(
        &self,
        org_id: Option<OrgId>,
        actor: Option<Actor>,
        status: StatusCode,
        data: &Value,
        secret_field: Option<&str>,
        resource_id: Option<String>,
        location: Option<String>,
    ) -> JournalEntry {
        let body = success_body(data);
        let stored = match secret_field {
            Some(pointer) if data.pointer(pointer).is_some() => {
                let mut redacted = data.clone();
                if let Some(secret) = redacted.pointer_mut(pointer) {
                    *secret = Value::Null;
                }
                redacted["secret_shown_once"] = Value::Bool(true);
                success_body(&redacted)
            }
            _ => body.clone(),
        };
        let idempotency = self.completion(status, &stored, location.clone());
        if let Ok(mut rendered) = self.rendered.lock() {
            *rendered = Some((status, body, stored, location));
        }
        let org = org_id.or(self.org_id).unwrap_or_else(|| OrgId::from_uuid(uuid::Uuid::nil()));
        JournalEntry {
            run: self.run(org, actor.unwrap_or(self.actor), self.run_status, resource_id, None),
            idempotency,
            events: Vec::new(),
        }
    }

    fn completion(&self, status: StatusCode, body: &[u8], location: Option<String>) -> Option<(IdempotencyScope, StoredResponse)> {
        let scope = self.claim.clone()?;
        if !self.state.idempotency.commits_with_effect() {
            return None;
        }
        Some((scope, StoredResponse { status: status.as_u16(), body: body.to_vec(), location, etag: None }))
    }

    /// Answers with the bytes the journal stored (and tells a store that does not commit with
    /// the effect about the outcome now).
    pub async fn respond(self) -> Response {
        let rendered = self.rendered.lock().ok().and_then(|mut r| r.take());
        let Some((status, body, stored_body, location)) = rendered else {
            return ApiError::internal("mutation answered without a journal entry").into_response();
        };
        if let Some(scope) = &self.claim {
            if !self.state.idempotency.commits_with_effect() {
                let stored = StoredResponse { status: status.as_u16(), body: stored_body, location: location.clone(), etag: None };
                if let Err(e) = self.state.idempotency.complete(scope, &stored, self.state.clock.now()).await {
                    tracing::warn!(error = ?e, "idempotency outcome not recorded; a retry will run afresh");
                }
            }
        }
        // The committed work may include a queued message or events: wake the workers.
        self.state.wake.outbox.notify_one();
        self.state.wake.webhooks.notify_one();
        let mut response = json_response(status, body);
        if let Some(v) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert("location", v);
        }
        response
    }

    /// Answers with an error. A business-rule refusal is a committed outcome: its failed run and
    /// its replayable answer are recorded together. Anything else stores no outcome (the claim
    /// is released so a retry runs afresh) and records a failed run.
    pub async fn fail(self, error: ApiError) -> Response {
        let run_error = Some(RunError { code: error.code.as_str().to_owned(), message: error.message.clone() });
        let business = error.code.is_business_outcome();
        if let Some(org_id) = self.org_id {
            let idempotency = if business { self.completion(error.code.status(), &error.body(), None) } else { None };
            let entry =
                JournalEntry { run: self.run(org_id, self.actor, RunStatus::Failed, None, run_error), idempotency, events: Vec::new() };
            if let Err(e) = self.state.runs.record(&entry).await {
                tracing::warn!(error = ?e, "failed run not recorded");
            }
        }
        if let Some(scope) = &self.claim {
            let stored_elsewhere = business && !self.state.idempotency.commits_with_effect();
            let result = if stored_elsewhere {
                let stored = StoredResponse { status: error.code.status().as_u16(), body: error.body(), location: None, etag: None };
                self.state.idempotency.complete(scope, &stored, self.state.clock.now()).await
            } else if business {
                Ok(())
            } else {
                self.state.idempotency.release(scope).await
            };
            if let Err(e) = result {
                tracing::warn!(error = ?e, "idempotency claim not settled; it lapses with its lease");
            }
        }
        error.into_response()
    }
}
