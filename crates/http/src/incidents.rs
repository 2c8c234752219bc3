//! The incident routes: create (with dedup folding: the answer's `outcome` says `created`,
//! `appended` or `reopened`), list (filters and a cursor), get by id or reference (with an
//! `ETag`), update (`PATCH`: status moves along the state machine and field edits, `If-Match`),
//! the timeline, and MTTA/MTTR metrics. Scopes `atlas.incidents.read` / `atlas.incidents.write`.
//! Also the one mapping of incident errors to HTTP, which the alert routes share.

use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_incidents::{
    Applied, CreateIncident, Incident, IncidentError, IncidentFilter, IncidentKey, IncidentTimes, MetricsSummary, Outcome, Severity,
    Status, TimelineEntry, UpdateIncident,
};
use atlas_kernel::PageRequest;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa::ToSchema;

/// The handler of an incident route, if `operation` is one.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "incidents.create" => on(filter, create),
        "incidents.list" => on(filter, list),
        "incidents.metrics" => on(filter, metrics),
        "incidents.get" => on(filter, get),
        "incidents.update" => on(filter, update),
        "incidents.timeline" => on(filter, timeline),
        _ => return None,
    })
}

impl From<IncidentError> for ApiError {
    fn from(e: IncidentError) -> Self {
        match e {
            IncidentError::Invalid { field, message } => ApiError::field(field, message),
            IncidentError::NotFound => ApiError::not_found("incident"),
            IncidentError::InvalidTransition { from, to, ref allowed } => {
                let allowed: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
                let hint = if allowed.is_empty() {
                    format!("a {from} incident does not move any more")
                } else {
                    format!("from {from} the incident may move to: {}", allowed.join(", "))
                };
                ApiError::new(ErrorCode::InvalidTransition, e.to_string())
                    .hint(hint)
                    .detail("from", json!(from))
                    .detail("to", json!(to))
                    .detail("allowed", json!(allowed))
            }
            IncidentError::VersionConflict { expected, current } => {
                ApiError::new(ErrorCode::VersionConflict, format!("the incident is at version {current}, not {expected}"))
                    .hint("read the incident again and retry with its ETag")
                    .detail("current_version", json!(current))
            }
            IncidentError::Store(s) => ApiError::internal(s),
        }
    }
}

macro_rules! begin {
    ($state:expr, $op:literal, $caller:expr, $headers:expr, $raw:expr) => {
        match Mutation::begin(&$state, spec($op), &$caller, &$headers, $raw).await {
            Ok(Started::Execute(m)) => m,
            Ok(Started::Answer(r)) => return r,
            Err(e) => return e.into_response(),
        }
    };
}
pub(crate) use begin;

/// `POST /v1/atlas/incidents` (seed 002's body).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIncidentBody {
    #[schema(example = "Database connection pool exhausted")]
    pub title: String,
    pub severity: Severity,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(example = "prometheus")]
    pub source: Option<String>,
    #[serde(default, alias = "ciIds")]
    pub ci_ids: Vec<String>,
    /// Signals with one key fold into one incident.
    #[serde(default, alias = "dedupKey")]
    pub dedup_key: Option<String>,
    #[serde(default)]
    pub assignee: Option<String>,
    /// The idempotency key, when not sent as the `Idempotency-Key` header.
    #[serde(default)]
    #[allow(dead_code)] // read from the raw body by `Mutation::begin`
    pub idempotency_key: Option<String>,
}

/// `PATCH /v1/atlas/incidents/{id}` (seed 002's body): a status move and/or field edits.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateIncidentBody {
    #[serde(default)]
    pub status: Option<Status>,
    /// Required when `status` is `resolved`.
    #[serde(default, alias = "resolutionNotes")]
    pub resolution_notes: Option<String>,
    #[serde(default, alias = "resolvedBy")]
    pub resolved_by: Option<String>,
    /// A note for the timeline.
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub assignee: Option<String>,
    /// The idempotency key, when not sent as the `Idempotency-Key` header.
    #[serde(default)]
    #[allow(dead_code)] // read from the raw body by `Mutation::begin`
    pub idempotency_key: Option<String>,
}

/// An incident with what the call did to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentAnswer {
    pub outcome: Outcome,
    #[serde(flatten)]
    pub incident: Incident,
}

fn who(caller: &atlas_scopes::Principal) -> String {
    caller.actor.to_string()
}

fn key(text: &str) -> Result<IncidentKey, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("incident"))
}

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The version an `If-Match` header names (`"3"`, `W/"3"` or `3`).
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("if-match") else { return Ok(None) };
    let text = value.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse::<i64>().map(Some).map_err(|_| ApiError::field("If-Match", "must be the incident's ETag, such as \"3\""))
}

fn first(applied: &[Applied]) -> Option<&Applied> {
    applied.first()
}

async fn create(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<CreateIncidentBody>) -> Response {
    let mutation = begin!(state, "incidents.create", caller, headers, &body.raw);
    create_incident(&state, &caller, mutation, body.value).await
}

/// Runs an incident creation (the route's and the `create_incident` tool's).
pub(crate) async fn create_incident(
    state: &AppState,
    caller: &atlas_scopes::Principal,
    mutation: Box<Mutation>,
    b: CreateIncidentBody,
) -> Response {
    let request = CreateIncident {
        title: b.title,
        severity: Some(b.severity),
        description: b.description,
        source: b.source,
        ci_ids: b.ci_ids,
        dedup_key: b.dedup_key,
        assignee: b.assignee,
    };
    let journal = |applied: &Vec<Applied>| {
        let a = first(applied);
        let incident = a.and_then(|a| a.incident.clone());
        let outcome = a.map_or(Outcome::Created, |a| a.outcome);
        let status = if outcome == Outcome::Created { StatusCode::CREATED } else { StatusCode::OK };
        let id = incident.as_ref().map(|i| i.id.to_string());
        let location = incident.as_ref().map(|i| format!("/v1/atlas/incidents/{}", i.id));
        let data = incident.map(|incident| json!(IncidentAnswer { outcome, incident })).unwrap_or_default();
        mutation.entry(None, None, status, &data, id, location)
    };
    match state.incidents.create(caller.org_id, &who(caller), request, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// `?status=&severity=&source=&ci=&from=&to=&limit=&cursor=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    severity: Option<String>,
    source: Option<String>,
    ci: Option<String>,
    ci_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u64>,
    cursor: Option<String>,
    offset: Option<u64>,
}

pub(crate) fn parse_time(field: &str, text: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| ApiError::field(field, "must be an RFC 3339 timestamp such as 2026-04-01T00:00:00Z"))
}

fn parse_severity(text: Option<&str>) -> Result<Option<Severity>, ApiError> {
    text.map(|s| Severity::parse(s).ok_or_else(|| ApiError::field("severity", "must be P1, P2, P3, P4 or P5"))).transpose()
}

/// Incidents with their list, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentList {
    pub incidents: Vec<Incident>,
    pub next_cursor: Option<String>,
}

async fn list(State(state): State<AppState>, Caller(caller): Caller, QueryParams(q): QueryParams<ListQuery>) -> Result<Response, ApiError> {
    if q.offset.is_some() {
        return Err(ApiError::field("offset", "lists page with the opaque cursor in next_cursor, not an offset"));
    }
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let status = q
        .status
        .as_deref()
        .map(|s| Status::parse(&s.to_ascii_lowercase()).ok_or_else(|| ApiError::field("status", "not an incident status")))
        .transpose()?;
    let filter = IncidentFilter {
        status,
        severity: parse_severity(q.severity.as_deref())?,
        source: q.source,
        ci_id: q.ci.or(q.ci_id),
        from: q.from.as_deref().map(|t| parse_time("from", t)).transpose()?,
        to: q.to.as_deref().map(|t| parse_time("to", t)).transpose()?,
    };
    let found = state.incidents.list(caller.org_id, &filter, &page).await?;
    Ok(Envelope::ok(IncidentList { incidents: found.items, next_cursor: found.next_cursor }).into_response())
}

pub(crate) async fn get(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let incident = state.incidents.get(caller.org_id, key(&id)?).await?;
    let tag = etag(incident.version);
    let mut response = Envelope::ok(incident).into_response();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert("etag", v);
    }
    Ok(response)
}

async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<UpdateIncidentBody>,
) -> Response {
    let (key, expected) = match (key(&id), if_match(&headers)) {
        (Ok(k), Ok(v)) => (k, v),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    // The concrete path is in the fingerprint already (`Mutation::begin`); the expected
    // version is not, so it joins the body.
    let mut raw = body.raw.clone();
    if let Some(v) = expected {
        raw["_if_match"] = json!(v);
    }
    let mutation = begin!(state, "incidents.update", caller, headers, &raw);
    let b = body.value;
    let request = UpdateIncident {
        status: b.status,
        resolution_notes: b.resolution_notes,
        resolved_by: b.resolved_by,
        note: b.note,
        title: b.title,
        description: b.description,
        severity: b.severity,
        assignee: b.assignee,
    };
    let journal = |applied: &Vec<Applied>| {
        let a = first(applied);
        let incident = a.and_then(|a| a.incident.clone());
        let id = incident.as_ref().map(|i| i.id.to_string());
        let data = incident.map(|incident| json!(IncidentAnswer { outcome: Outcome::Updated, incident })).unwrap_or_default();
        mutation.entry(None, None, StatusCode::OK, &data, id, None)
    };
    match state.incidents.update(caller.org_id, &who(&caller), key, request, expected, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// An incident's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineAnswer {
    pub incident_id: String,
    pub reference: String,
    pub entries: Vec<TimelineEntry>,
}

async fn timeline(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let key = key(&id)?;
    let incident = state.incidents.get(caller.org_id, key).await?;
    let entries = state.incidents.timeline(caller.org_id, IncidentKey::Id(incident.id)).await?;
    Ok(Envelope::ok(TimelineAnswer { incident_id: incident.id.to_string(), reference: incident.reference.to_string(), entries })
        .into_response())
}

/// `?from=&to=&severity=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MetricsQuery {
    from: Option<String>,
    to: Option<String>,
    severity: Option<String>,
}

/// One incident's MTTA and MTTR.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentMetrics {
    pub id: String,
    pub reference: String,
    pub severity: Severity,
    pub status: Status,
    #[serde(with = "time::serde::rfc3339")]
    pub triggered_at: OffsetDateTime,
    #[serde(flatten)]
    pub times: IncidentTimes,
}

/// MTTA and MTTR, per incident and aggregated (definitions in docs/api.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsAnswer {
    pub mtta_seconds: Option<f64>,
    pub mttr_seconds: Option<f64>,
    pub summary: MetricsSummary,
    pub incidents: Vec<IncidentMetrics>,
    /// More incidents matched than one answer covers (10 000): narrow the window.
    pub truncated: bool,
}

async fn metrics(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<MetricsQuery>,
) -> Result<Response, ApiError> {
    let from = q.from.as_deref().map(|t| parse_time("from", t)).transpose()?;
    let to = q.to.as_deref().map(|t| parse_time("to", t)).transpose()?;
    let severity = parse_severity(q.severity.as_deref())?;
    let atlas_incidents::MetricsReport { each, summary, truncated } = state.incidents.metrics(caller.org_id, from, to, severity).await?;
    let incidents = each
        .into_iter()
        .map(|(i, times)| IncidentMetrics {
            id: i.id.to_string(),
            reference: i.reference.to_string(),
            severity: i.severity,
            status: i.status,
            triggered_at: i.triggered_at,
            times,
        })
        .collect();
    Ok(Envelope::ok(MetricsAnswer {
        mtta_seconds: summary.mtta_seconds,
        mttr_seconds: summary.mttr_seconds,
        summary,
        incidents,
        truncated,
    })
    .into_response())
}
