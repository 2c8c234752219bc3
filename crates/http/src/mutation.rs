//! One mutating call, start to finish: read and validate the idempotency key (header or body,
//! never two different ones), fingerprint the request (method, concrete path, normalised body),
//! claim the key under a fresh token, ask the store whether to execute, replay or refuse, then
//! build the journal entry (run plus outcome) that the use case commits with its effect, and
//! answer with exactly the bytes that were stored. Which answers are stored is
//! [`atlas_idempotency::stores_outcome`]'s decision alone.
//!
//! Two ways to claim: [`Mutation::begin`] claims the key in its own statement before the use
//! case runs (in progress, leased), and [`Mutation::begin_at_commit`] (the sends) reads the key
//! once and, when it is free, lets the use case's own transaction insert the completed record
//! with the effect ([`Claim::at_commit`]): no statement of its own, and a replay is that one
//! indexed read. A concurrent duplicate that loses the insert rolls its effect back and is
//! answered from the winner's record.

use crate::envelope::{json_response, success_body};
use crate::error::{ApiError, ErrorCode};
use crate::request_id;
use crate::routes::RouteSpec;
use crate::state::AppState;
use atlas_idempotency::{
    decide, stores_outcome, Claim, ClaimToken, Claimed, Decision, Fingerprint, IdempotencyKey, IdempotencyScope, StoredResponse,
};
use atlas_kernel::OrgId;
use atlas_runs::{JournalEntry, Run, RunError, RunId, RunStatus};
use atlas_scopes::{Actor, Principal};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Mutex;

/// A success answer as rendered once: status, the envelope bytes sent (and stored for replays),
/// whether they show a secret, `Location`.
type Rendered = (StatusCode, Vec<u8>, bool, Option<String>);

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
    claim: Option<Claim>,
    run_id: RunId,
    operation: String,
    run_status: RunStatus,
    rendered: Mutex<Option<Rendered>>,
}

fn refused_as_reused() -> Response {
    ApiError::new(ErrorCode::IdempotencyKeyReused, "this idempotency key was used for a different request")
        .hint("use a new key for a new request")
        .into_response()
}

fn refused_in_progress() -> Response {
    let mut err = ApiError::new(ErrorCode::IdempotencyInProgress, "a request with this idempotency key is still executing");
    err.retry_after = Some(1);
    err.into_response()
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
    /// Starts a mutation by an authenticated caller, claiming its key (if any) before it runs.
    pub async fn begin(
        state: &AppState,
        spec: &'static RouteSpec,
        caller: &Principal,
        headers: &HeaderMap,
        body: &Value,
    ) -> Result<Started, ApiError> {
        Self::start(state, spec, caller, headers, body, false).await
    }

    /// [`begin`](Self::begin) for a use case whose store commits its journal in the effect's
    /// transaction: the key is read once (a replay or refusal answers from that read), and a
    /// free key is claimed at commit by the use case's own transaction. A store that cannot
    /// ([`IdempotencyStore::claims_at_commit`](atlas_idempotency::IdempotencyStore)), and a
    /// record to take over (expired, or an abandoned claim), fall back to `begin`'s claim.
    pub async fn begin_at_commit(
        state: &AppState,
        spec: &'static RouteSpec,
        caller: &Principal,
        headers: &HeaderMap,
        body: &Value,
    ) -> Result<Started, ApiError> {
        Self::start(state, spec, caller, headers, body, state.idempotency.claims_at_commit()).await
    }

    async fn start(
        state: &AppState,
        spec: &'static RouteSpec,
        caller: &Principal,
        headers: &HeaderMap,
        body: &Value,
        at_commit: bool,
    ) -> Result<Started, ApiError> {
        let key = idempotency_key(headers, body)?;
        let mut mutation = Mutation::unkeyed(state, spec, Some(caller.org_id), caller.actor);
        let Some(key) = key else {
            return Ok(Started::Execute(Box::new(mutation)));
        };
        // The concrete path (ids included): the same key on PATCH /webhooks/A and /webhooks/B is
        // two keys, never a replay of A for B.
        let path = request_id::current_path();
        let path = if path.is_empty() { spec.path.to_owned() } else { path };
        let scope = IdempotencyScope {
            org_id: caller.org_id,
            scope: spec.scope.map(|s| s.as_str().to_owned()).unwrap_or_default(),
            route: format!("{} {}", spec.method, path),
            key,
        };
        let token = ClaimToken::from_entropy(crate::api::entropy());
        let fingerprint = Fingerprint::of(spec.method, &path, body);
        match atlas_idempotency::claim(state.idempotency.as_ref(), scope, token, fingerprint, state.clock.now(), at_commit).await? {
            Claimed::Execute(claim) => {
                mutation.claim = Some(claim);
                Ok(Started::Execute(Box::new(mutation)))
            }
            Claimed::Answer(decision) => Ok(Started::Answer(Self::answer_for(decision))),
        }
    }

    /// The answer to a request whose key is not its to execute.
    fn answer_for(decision: Decision) -> Response {
        match decision {
            Decision::Replay(stored) => replay(stored),
            Decision::Reused => refused_as_reused(),
            Decision::InProgress | Decision::Execute | Decision::Expired => refused_in_progress(),
        }
    }

    /// For a claim taken at commit whose effect did not commit: the record a concurrent request
    /// with the same key committed, as the answer (replay or refusal), if there is one.
    async fn answer_from_winner(&self) -> Option<Response> {
        let claim = self.claim.as_ref()?;
        let fingerprint = claim.at_commit.as_ref()?;
        let record = match self.state.idempotency.lookup(&claim.scope).await {
            Ok(record) => record?,
            Err(e) => {
                tracing::warn!(error = ?e, "idempotency record not read after a refused commit");
                return None;
            }
        };
        match decide(Some(&record), fingerprint, self.state.clock.now()) {
            Decision::Execute | Decision::Expired => None,
            decision => Some(Self::answer_for(decision)),
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
            idempotency_key: self.claim.as_ref().map(|c| c.scope.key.as_str().to_owned()),
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
    /// answer is the same bytes, marked as showing a secret, so the store keeps it sealed under
    /// the server's secret key and a replay returns it verbatim (a client whose first answer
    /// was lost still gets a key it can use).
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
        let shows_secret = secret_field.is_some_and(|pointer| data.pointer(pointer).is_some_and(|v| !v.is_null()));
        let idempotency = self.completion(status, false, &body, shows_secret, location.clone());
        if let Ok(mut rendered) = self.rendered.lock() {
            *rendered = Some((status, body, shows_secret, location));
        }
        let org = org_id.or(self.org_id).unwrap_or_else(|| OrgId::from_uuid(uuid::Uuid::nil()));
        JournalEntry {
            run: self.run(org, actor.unwrap_or(self.actor), self.run_status, resource_id, None),
            idempotency,
            events: Vec::new(),
        }
    }

    /// The outcome the journal commits, when the store commits with effects and the rule says
    /// the answer is stored.
    fn completion(
        &self,
        status: StatusCode,
        retryable: bool,
        body: &[u8],
        shows_secret: bool,
        location: Option<String>,
    ) -> Option<(Claim, StoredResponse)> {
        let claim = self.claim.clone()?;
        if !self.state.idempotency.commits_with_effect() || !stores_outcome(status.as_u16(), retryable) {
            return None;
        }
        Some((claim, StoredResponse { status: status.as_u16(), body: body.to_vec(), location, etag: None, shows_secret }))
    }

    /// Answers with the bytes the journal stored (and tells a store that does not commit with
    /// the effect about the outcome now).
    pub async fn respond(self) -> Response {
        let rendered = self.rendered.lock().ok().and_then(|mut r| r.take());
        let Some((status, body, shows_secret, location)) = rendered else {
            return ApiError::internal("mutation answered without a journal entry").into_response();
        };
        if let Some(claim) = &self.claim {
            if !self.state.idempotency.commits_with_effect() {
                let stored =
                    StoredResponse { status: status.as_u16(), body: body.clone(), location: location.clone(), etag: None, shows_secret };
                if let Err(e) = self.state.idempotency.complete(claim, &stored, self.state.clock.now()).await {
                    tracing::warn!(error = ?e, "idempotency outcome not recorded; a retry will run afresh");
                }
            }
        }
        // The committed work may include a queued message or events: wake the workers.
        self.state.wake.outbox.notify_one();
        self.state.wake.webhooks.notify_one();
        self.state.wake.agents.notify_one();
        let mut response = json_response(status, body);
        if let Some(v) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert("location", v);
        }
        response
    }

    /// Answers with an error. A business-rule refusal is a committed outcome: its failed run and
    /// its replayable answer are recorded together. Anything else ([`stores_outcome`] decides:
    /// credential, scope and limit refusals, rate limits, retryable conflicts, 5xx) stores no
    /// outcome (the claim is released so a retry runs afresh) and records a failed run.
    pub async fn fail(self, error: ApiError) -> Response {
        let run_error = Some(RunError { code: error.code.as_str().to_owned(), message: error.message.clone() });
        let business = stores_outcome(error.code.status().as_u16(), error.retryable);
        let at_commit = self.claim.as_ref().is_some_and(|c| c.at_commit.is_some());
        // A claim taken at commit holds nothing: a failure that stores nothing (a commit refused
        // because a concurrent request with the key committed first among them) is answered
        // from that request's record when there is one, and is no failed run of its own.
        if at_commit && !business {
            if let Some(answer) = self.answer_from_winner().await {
                return answer;
            }
        }
        let mut recorded = true;
        if let Some(org_id) = self.org_id {
            let idempotency = self.completion(error.code.status(), error.retryable, &error.body(), false, None);
            let entry =
                JournalEntry { run: self.run(org_id, self.actor, RunStatus::Failed, None, run_error), idempotency, events: Vec::new() };
            if let Err(e) = self.state.runs.record(&entry).await {
                recorded = false;
                tracing::warn!(error = ?e, "failed run not recorded");
            }
        }
        if at_commit {
            // A refusal whose outcome could not be inserted: the key was taken meanwhile.
            if !recorded {
                if let Some(answer) = self.answer_from_winner().await {
                    return answer;
                }
            }
            return error.into_response();
        }
        if let Some(claim) = &self.claim {
            let stored_elsewhere = business && !self.state.idempotency.commits_with_effect();
            let result = if stored_elsewhere {
                let stored = StoredResponse {
                    status: error.code.status().as_u16(),
                    body: error.body(),
                    location: None,
                    etag: None,
                    shows_secret: false,
                };
                self.state.idempotency.complete(claim, &stored, self.state.clock.now()).await
            } else if business {
                Ok(())
            } else {
                self.state.idempotency.release(claim).await
            };
            if let Err(e) = result {
                tracing::warn!(error = ?e, "idempotency claim not settled; it lapses with its lease");
            }
        }
        error.into_response()
    }
}
