//! The alert routes: `POST /v1/atlas/alerts` (one signal: trigger, acknowledge or resolve by
//! `dedup_key`) and `POST /v1/atlas/alerts/alertmanager` (Prometheus Alertmanager's webhook
//! payload, version 4, as Alertmanager sends it: each alert folds into an incident by its
//! fingerprint, `firing` triggers and `resolved` resolves). Every answer says, per signal, what
//! happened: `created`, `appended`, `reopened`, `acknowledged`, `resolved`, or `dropped` with a
//! reason. Scope `atlas.incidents.write`.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{typed, JsonBody};
use crate::incidents::begin;
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_incidents::{Alert, AlertAction, AlertmanagerPayload, Applied, Incident, Outcome, Severity};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

/// The handler of an alert route, if `operation` is one.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "alerts.create" => on(filter, create),
        "alerts.alertmanager" => on(filter, alertmanager),
        _ => return None,
    })
}

/// `POST /v1/atlas/alerts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertBody {
    #[serde(alias = "dedupKey")]
    #[schema(example = "db-pool-exhausted")]
    pub dedup_key: String,
    pub action: AlertAction,
    /// The incident's title (required to trigger).
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// P1…P5 (default P3).
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default, alias = "ciIds")]
    pub ci_ids: Vec<String>,
    /// The idempotency key, when not sent as the `Idempotency-Key` header.
    #[serde(default)]
    #[allow(dead_code)] // read from the raw body by `Mutation::begin`
    pub idempotency_key: Option<String>,
}

/// What one signal did.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertAnswer {
    pub dedup_key: String,
    pub outcome: Outcome,
    /// Why nothing changed (`dropped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub incident: Option<Incident>,
}

/// What an Alertmanager payload did, alert by alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertmanagerAnswer {
    pub results: Vec<AlertAnswer>,
}

fn answer(dedup_key: &str, applied: Option<&Applied>) -> AlertAnswer {
    AlertAnswer {
        dedup_key: dedup_key.to_owned(),
        outcome: applied.map_or(Outcome::Dropped, |a| a.outcome),
        reason: applied.and_then(|a| a.reason.clone()),
        incident: applied.and_then(|a| a.incident.clone()),
    }
}

async fn create(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<AlertBody>) -> Response {
    let mutation = begin!(state, "alerts.create", caller, headers, &body.raw);
    let b = body.value;
    let alert = Alert {
        dedup_key: b.dedup_key.clone(),
        action: b.action,
        summary: b.summary,
        description: b.description,
        severity: b.severity,
        source: b.source,
        ci_ids: b.ci_ids,
    };
    let dedup_key = b.dedup_key;
    let journal = |applied: &Vec<Applied>| {
        let a = answer(&dedup_key, applied.first());
        let id = a.incident.as_ref().map(|i| i.id.to_string());
        mutation.entry(None, None, StatusCode::OK, &json!(a), id, None)
    };
    match state.incidents.alerts(caller.org_id, &caller.actor.to_string(), vec![alert], &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn alertmanager(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<serde_json::Value>,
) -> Response {
    let payload: AlertmanagerPayload = match typed(&body.raw) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let alerts = match payload.signals() {
        Ok(a) => a,
        Err((field, message)) => return ApiError::field(&field, message).into_response(),
    };
    let mutation = begin!(state, "alerts.alertmanager", caller, headers, &body.raw);
    let keys: Vec<String> = alerts.iter().map(|a| a.dedup_key.clone()).collect();
    let journal = |applied: &Vec<Applied>| {
        let results: Vec<AlertAnswer> = keys.iter().enumerate().map(|(i, k)| answer(k, applied.get(i))).collect();
        mutation.entry(None, None, StatusCode::OK, &json!(AlertmanagerAnswer { results }), None, None)
    };
    match state.incidents.alerts(caller.org_id, &caller.actor.to_string(), alerts, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}
