//! The handlers of the foundation routes: keys, organizations, users and tokens, runs, and
//! the operational endpoints. Each turns a validated request into a use-case call and the
//! outcome into the envelope; none touches a store directly.

use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ClientIp, JsonBody, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::openapi::openapi_document;
use crate::routes::{spec, RouteSpec};
use crate::state::AppState;
use atlas_accounts::{ApiKeyRecord, BootstrapRequest, MintKeyRequest, RotateOutcome, User};
use atlas_kernel::PageRequest;
use atlas_runs::{Run, RunFilter, RunId, RunStatus};
use atlas_scopes::{Actor, KeyId, Scope, ScopeSet};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use ipnet::IpNet;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The handler of a route in the table.
pub fn endpoint(spec: &'static RouteSpec) -> MethodRouter<AppState> {
    let filter = match spec.method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "DELETE" => MethodFilter::DELETE,
        "PUT" => MethodFilter::PUT,
        "PATCH" => MethodFilter::PATCH,
        other => panic!("unsupported method {other}"),
    };
    match spec.operation {
        "keys.create" => on(filter, create_key),
        "keys.list" => on(filter, list_keys),
        "keys.revoke" => on(filter, revoke_key),
        "orgs.create" => on(filter, create_org),
        "auth.bootstrap" => on(filter, bootstrap),
        "auth.token" => on(filter, sign_in),
        "auth.refresh" => on(filter, refresh),
        "runs.list" => on(filter, list_runs),
        "runs.get" => on(filter, get_run),
        "system.openapi" => on(filter, openapi),
        "system.docs" => on(filter, docs),
        "system.health" => on(filter, health),
        "system.ready" => on(filter, ready),
        "system.metrics" => on(filter, metrics),
        other => crate::messaging::endpoint(filter, other)
            .or_else(|| crate::webhooks::endpoint(filter, other))
            .or_else(|| crate::projects::endpoint(filter, other))
            .or_else(|| crate::tasks::endpoint(filter, other))
            .unwrap_or_else(|| panic!("route {other} has no handler")),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn parse_time(field: &str, text: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| ApiError::field(field, "must be an RFC 3339 timestamp such as 2027-01-01T00:00:00Z"))
}

/// `N` random bytes (key, token and secret material).
pub(crate) fn entropy<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

// ---------------------------------------------------------------- keys

/// `POST /v1/atlas/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    /// A name for people.
    pub name: String,
    /// Scopes to grant; each must be held by the caller.
    pub scopes: Vec<String>,
    /// RFC 3339; the key stops working then.
    #[serde(default, alias = "expiresAt")]
    pub expires_at: Option<String>,
    /// CIDRs the key may be used from; empty or absent means anywhere.
    #[serde(default, alias = "allowedIps")]
    pub allowed_ips: Option<Vec<String>>,
    /// The idempotency key, as seed 000 sends it (the `Idempotency-Key` header works too).
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

/// An API key as listed (the secret `key` only in the creation answer).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub name: String,
    pub scopes: Vec<String>,
    pub prefix: String,
    pub expires_at: Option<String>,
    pub allowed_ips: Vec<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl KeyView {
    fn of(record: &ApiKeyRecord, secret: Option<&str>) -> Self {
        Self {
            id: record.id.to_string(),
            key: secret.map(str::to_owned),
            name: record.name.clone(),
            scopes: record.scopes.names().into_iter().map(str::to_owned).collect(),
            prefix: record.prefix.clone(),
            expires_at: record.expires_at.map(rfc3339),
            allowed_ips: record.allowed_ips.iter().map(ToString::to_string).collect(),
            created_at: rfc3339(record.created_at),
            last_used_at: record.last_used_at.map(rfc3339),
            revoked_at: record.revoked_at.map(rfc3339),
        }
    }
}

fn parse_scopes(names: &[String]) -> Result<ScopeSet, ApiError> {
    names.iter().enumerate().map(|(i, n)| Scope::parse(n).map_err(|e| ApiError::field(&format!("scopes[{i}]"), e.to_string()))).collect()
}

fn mint_request(body: CreateKeyBody) -> Result<MintKeyRequest, ApiError> {
    let scopes = parse_scopes(&body.scopes)?;
    if scopes.is_empty() {
        return Err(ApiError::field("scopes", "grant at least one scope"));
    }
    let expires_at = body.expires_at.as_deref().map(|t| parse_time("expires_at", t)).transpose()?;
    let allowed_ips = body
        .allowed_ips
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, cidr)| {
            cidr.parse::<IpNet>()
                .or_else(|_| cidr.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| ApiError::field(&format!("allowed_ips[{i}]"), "must be an IP address or CIDR such as 10.0.0.0/8"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MintKeyRequest { name: body.name, scopes, expires_at, allowed_ips })
}

async fn create_key(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<CreateKeyBody>) -> Response {
    let spec = spec("keys.create");
    let raw = body.raw;
    let request = match mint_request(body.value) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mutation = match Mutation::begin(&state, spec, &caller, &headers, &raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    let journal = |minted: &atlas_accounts::MintedKey| {
        let view = KeyView::of(&minted.record, Some(minted.token.expose()));
        let location = format!("/v1/atlas/keys/{}", minted.record.id);
        mutation.entry_showing_secret(
            None,
            None,
            StatusCode::CREATED,
            &json!(view),
            Some("/key"),
            Some(minted.record.id.to_string()),
            Some(location),
        )
    };
    match state.accounts.mint_key(&caller, request, &entropy(), &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// `?limit=&cursor=`.
#[derive(Debug, Deserialize)]
struct PageQuery {
    limit: Option<u64>,
    cursor: Option<String>,
}

async fn list_keys(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let keys = state.accounts.list_keys(caller.org_id, &page).await?;
    let keys = keys.map(|k| KeyView::of(&k, None));
    Ok(Envelope::ok(json!({"keys": keys.items, "next_cursor": keys.next_cursor})).into_response())
}

async fn revoke_key(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let spec = spec("keys.revoke");
    let Ok(id) = id.parse::<KeyId>() else {
        return ApiError::not_found("key").into_response();
    };
    let raw = json!({ "id": id.to_string() });
    let mutation = match Mutation::begin(&state, spec, &caller, &headers, &raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    let data = json!({ "id": id.to_string(), "revoked": true });
    let entry = mutation.entry(None, None, StatusCode::OK, &data, Some(id.to_string()), None);
    match state.accounts.revoke_key(&caller, id, &entry).await {
        Ok(_) => mutation.respond().await,
        Err(atlas_accounts::AccessError::NotFound) => mutation.fail(ApiError::not_found("key")).await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

// ---------------------------------------------------------------- organizations

/// `POST /v1/atlas/orgs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgBody {
    pub name: String,
    /// The idempotency key, as seed 000 sends it (the `Idempotency-Key` header works too).
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

async fn create_org(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<CreateOrgBody>) -> Response {
    let spec = spec("orgs.create");
    let mutation = match Mutation::begin(&state, spec, &caller, &headers, &body.raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    let journal = |created: &atlas_accounts::NewOrganization| {
        let data = json!({
            "organization": created.organization,
            "key": KeyView::of(&created.admin_key.record, Some(created.admin_key.token.expose())),
        });
        mutation.entry_showing_secret(
            None,
            None,
            StatusCode::CREATED,
            &data,
            Some("/key/key"),
            Some(created.organization.id.to_string()),
            None,
        )
    };
    match state.accounts.create_organization(&body.value.name, ScopeSet::empty(), &entropy(), &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

// ---------------------------------------------------------------- users and tokens

/// `POST /v1/atlas/auth/bootstrap`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BootstrapBody {
    pub email: String,
    /// At least 12 characters.
    pub password: String,
    #[serde(default)]
    pub username: Option<String>,
    /// Defaults to "Default".
    #[serde(default, alias = "organizationName")]
    pub organization_name: Option<String>,
}

/// A user as returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub username: Option<String>,
    pub role: String,
    pub created_at: String,
}

impl UserView {
    fn of(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.clone(),
            username: user.username.clone(),
            role: user.role.as_str().to_owned(),
            created_at: rfc3339(user.created_at),
        }
    }
}

async fn bootstrap(State(state): State<AppState>, body: JsonBody<BootstrapBody>) -> Response {
    let spec = spec("auth.bootstrap");
    let b = body.value;
    let request = BootstrapRequest {
        email: b.email,
        password: b.password,
        username: b.username,
        organization_name: b.organization_name.unwrap_or_else(|| "Default".into()),
    };
    let mutation = Mutation::unkeyed(&state, spec, None, Actor::System);
    let journal = |done: &atlas_accounts::Bootstrapped| {
        let data = json!({
            "user": UserView::of(&done.user),
            "organization": done.organization,
            "key": KeyView::of(&done.admin_key.record, Some(done.admin_key.token.expose())),
        });
        mutation.entry(
            Some(done.organization.id),
            Some(Actor::User(done.user.id)),
            StatusCode::CREATED,
            &data,
            Some(done.user.id.to_string()),
            None,
        )
    };
    match state.accounts.bootstrap(request, &entropy(), &entropy(), &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /v1/atlas/auth/token`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    pub email: String,
    pub password: String,
}

/// `POST /v1/atlas/auth/refresh`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    #[serde(alias = "refreshToken")]
    pub refresh_token: String,
}

/// A session: access token, refresh token and the user.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The access JWT (15 minutes).
    pub token: String,
    pub refresh_token: String,
    pub expires_at: String,
    pub refresh_expires_at: String,
    pub user: UserView,
}

fn session(state: &AppState, issued: &atlas_accounts::IssuedSession) -> Result<Value, ApiError> {
    let (token, expires_at) =
        state.jwt.issue(issued.user.id, issued.user.org_id, issued.user.role, state.clock.now()).map_err(ApiError::internal)?;
    Ok(json!(SessionView {
        token,
        refresh_token: issued.refresh_token.clone(),
        expires_at: rfc3339(expires_at),
        refresh_expires_at: rfc3339(issued.refresh_expires_at),
        user: UserView::of(&issued.user),
    }))
}

async fn sign_in(State(state): State<AppState>, _ip: ClientIp, body: JsonBody<TokenBody>) -> Response {
    let spec = spec("auth.token");
    let mutation = Mutation::unkeyed(&state, spec, None, Actor::System);
    let journal = |user: &User| {
        mutation.entry(Some(user.org_id), Some(Actor::User(user.id)), StatusCode::OK, &json!({}), Some(user.id.to_string()), None)
    };
    match state.accounts.sign_in(&body.value.email, &body.value.password, &entropy(), &journal).await {
        Ok(issued) => match session(&state, &issued) {
            Ok(data) => Envelope::ok(data).into_response(),
            Err(e) => e.into_response(),
        },
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn refresh(State(state): State<AppState>, body: JsonBody<RefreshBody>) -> Response {
    let spec = spec("auth.refresh");
    let mutation = Mutation::unkeyed(&state, spec, None, Actor::System);
    let journal = |outcome: &RotateOutcome| match outcome {
        RotateOutcome::Rotated { user, family } => {
            mutation.entry(Some(user.org_id), Some(Actor::User(user.id)), StatusCode::OK, &json!({}), Some(family.to_string()), None)
        }
        RotateOutcome::Reused { family, org_id } => {
            let mut entry = mutation.entry(Some(*org_id), None, StatusCode::UNAUTHORIZED, &json!({}), Some(family.to_string()), None);
            entry.run.status = RunStatus::Failed;
            entry.run.error =
                Some(atlas_runs::RunError { code: "UNAUTHORIZED".into(), message: "refresh token reuse: family revoked".into() });
            entry
        }
        _ => mutation.entry(None, None, StatusCode::UNAUTHORIZED, &json!({}), None, None),
    };
    match state.accounts.refresh(&body.value.refresh_token, &entropy(), &journal).await {
        Ok(issued) => match session(&state, &issued) {
            Ok(data) => Envelope::ok(data).into_response(),
            Err(e) => e.into_response(),
        },
        Err(e) => ApiError::from(e).into_response(),
    }
}

// ---------------------------------------------------------------- runs

#[derive(Debug, Deserialize)]
struct RunsQuery {
    limit: Option<u64>,
    cursor: Option<String>,
    operation: Option<String>,
    status: Option<String>,
    resource_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

async fn list_runs(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<RunsQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let status = q
        .status
        .as_deref()
        .map(|s| RunStatus::parse(s).ok_or_else(|| ApiError::field("status", "must be one of pending, succeeded, failed")))
        .transpose()?;
    let filter = RunFilter {
        operation: q.operation,
        status,
        resource_id: q.resource_id,
        created_after: q.since.as_deref().map(|t| parse_time("since", t)).transpose()?,
        created_before: q.until.as_deref().map(|t| parse_time("until", t)).transpose()?,
    };
    let runs = state.runs.list(caller.org_id, &filter, &page).await?;
    Ok(Envelope::ok(json!({"runs": runs.items, "next_cursor": runs.next_cursor})).into_response())
}

async fn get_run(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id: RunId = id.parse().map_err(|_| ApiError::not_found("run"))?;
    let run: Run = state.runs.get(caller.org_id, id).await?.ok_or_else(|| ApiError::not_found("run"))?;
    Ok(Envelope::ok(run).into_response())
}

// ---------------------------------------------------------------- operations

async fn openapi() -> Response {
    let mut response = axum::Json(openapi_document()).into_response();
    response.headers_mut().insert("cache-control", axum::http::HeaderValue::from_static("no-cache"));
    response
}

async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

async fn health() -> Response {
    Envelope::ok(json!({"status": "ok"})).into_response()
}

async fn ready(State(state): State<AppState>) -> Response {
    let mut checks = serde_json::Map::new();
    let mut ready = true;
    let mut degraded = false;
    for check in &state.readiness {
        match check.check().await {
            Ok(()) => {
                checks.insert(check.name().into(), json!("ok"));
            }
            Err(why) if check.critical() => {
                ready = false;
                checks.insert(check.name().into(), json!(why));
            }
            Err(why) => {
                degraded = true;
                checks.insert(check.name().into(), json!(format!("degraded: {why}")));
            }
        }
    }
    if ready {
        let status = if degraded { "degraded" } else { "ready" };
        Envelope::ok(json!({"status": status, "checks": checks})).into_response()
    } else {
        ApiError::new(ErrorCode::ProviderUnavailable, "a dependency is not ready").detail("checks", Value::Object(checks)).into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert("content-type", axum::http::HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}
