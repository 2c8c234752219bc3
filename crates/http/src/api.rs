//! The handlers of the foundation routes: keys, organizations, users and tokens, runs, and
//! the operational endpoints. Each turns a validated request into a use-case call and the
//! outcome into the envelope; none touches a store directly.

use crate::auth::Caller;
use crate::contract::Example;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ClientIp, JsonBody, PageQuery, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::openapi::openapi_document;
use crate::routes::{spec, RouteSpec};
use crate::state::AppState;
use atlas_accounts::{ApiKeyRecord, BootstrapRequest, MintKeyRequest, Organization, RotateOutcome, User};
use atlas_kernel::PageRequest;
use atlas_runs::{Run, RunFilter, RunId, RunStatus};
use atlas_scopes::{Actor, KeyId, Scope, ScopeSet};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use ipnet::IpNet;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

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
        "system.docs" => on(filter, crate::reference::page),
        "system.docs_asset" => on(filter, crate::reference::redoc_js),
        "system.postman_collection" => on(filter, crate::reference::postman_collection_route),
        "system.postman_environment" => on(filter, crate::reference::postman_environment_route),
        "system.health" => on(filter, health),
        "system.ready" => on(filter, ready),
        "system.metrics" => on(filter, metrics),
        other => crate::messaging::endpoint(filter, other)
            .or_else(|| crate::webhooks::endpoint(filter, other))
            .or_else(|| crate::cmdb::endpoint(filter, other))
            .or_else(|| crate::changes::endpoint(filter, other))
            .or_else(|| crate::service_requests::endpoint(filter, other))
            .or_else(|| crate::rca::endpoint(filter, other))
            .or_else(|| crate::incidents::endpoint(filter, other))
            .or_else(|| crate::alerts::endpoint(filter, other))
            .or_else(|| crate::runbooks::endpoint(filter, other))
            .or_else(|| crate::projects::endpoint(filter, other))
            .or_else(|| crate::tasks::endpoint(filter, other))
            .or_else(|| crate::agents::endpoint(filter, other))
            .or_else(|| crate::knowledge::endpoint(filter, other))
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
    #[schema(schema_with = crate::contract::scope_list)]
    pub scopes: Vec<String>,
    /// RFC 3339; the key stops working then.
    #[serde(default, alias = "expiresAt")]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// CIDRs (or single addresses) the key may be used from; empty or absent means anywhere.
    #[serde(default, alias = "allowedIps")]
    pub allowed_ips: Option<Vec<String>>,
    /// The idempotency key, as seed 000 sends it (the `Idempotency-Key` header works too).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

impl Example for CreateKeyBody {
    fn example() -> Value {
        json!({"name": "support bot", "scopes": ["atlas.messages.send", "atlas.conversations.read"], "expires_at": "2027-01-01T00:00:00Z", "allowed_ips": ["10.0.0.0/8"]})
    }
}

/// An API key as listed (the secret `key` only in the creation answer; `null` in a replay of
/// it, which says `secret_shown_once`).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = true)]
    pub key: Option<String>,
    pub name: String,
    pub scopes: Vec<String>,
    pub prefix: String,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    pub allowed_ips: Vec<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// Only in a replayed creation answer, whose `key` is then `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub secret_shown_once: Option<bool>,
}

impl KeyView {
    fn sample(secret: bool) -> Self {
        Self {
            id: "key_01936a3c8f2e7b4d9a1c5e6f7a8b9c0d".into(),
            key: secret.then(|| "atlas_sk_4Jd9sKq0ZrT2mVb7NwXy5LpHc3Ge8Fa1000000".into()),
            name: "support bot".into(),
            scopes: vec!["atlas.messages.send".into(), "atlas.conversations.read".into()],
            prefix: "atlas_sk_4Jd9".into(),
            expires_at: Some("2027-01-01T00:00:00Z".into()),
            allowed_ips: vec!["10.0.0.0/8".into()],
            created_at: "2026-04-07T12:00:00Z".into(),
            last_used_at: None,
            revoked_at: None,
            secret_shown_once: None,
        }
    }
}

impl Example for KeyView {
    fn example() -> Value {
        json!(Self::sample(true))
    }
}

/// `GET /v1/atlas/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
    pub next_cursor: Option<String>,
}

impl Example for KeyList {
    fn example() -> Value {
        json!(Self { keys: vec![KeyView::sample(false)], next_cursor: None })
    }
}

/// A revoked key.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedKey {
    pub id: String,
    pub revoked: bool,
}

impl Example for RevokedKey {
    fn example() -> Value {
        json!(Self { id: "key_01936a3c8f2e7b4d9a1c5e6f7a8b9c0d".into(), revoked: true })
    }
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
            secret_shown_once: None,
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
    let mutation = match Mutation::begin_at_commit(&state, spec, &caller, &headers, &raw).await {
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

async fn list_keys(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let keys = state.accounts.list_keys(caller.org_id, &page).await?;
    let keys = keys.map(|k| KeyView::of(&k, None));
    Ok(Envelope::ok(KeyList { keys: keys.items, next_cursor: keys.next_cursor }).into_response())
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
    let data = json!(RevokedKey { id: id.to_string(), revoked: true });
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
    #[schema(min_length = 1, max_length = 255)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

impl Example for CreateOrgBody {
    fn example() -> Value {
        json!({"name": "Acme Retail"})
    }
}

/// An organization (tenant).
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationView {
    pub id: String,
    pub name: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl OrganizationView {
    fn of(org: &Organization) -> Self {
        Self { id: org.id.to_string(), name: org.name.clone(), created_at: rfc3339(org.created_at) }
    }

    fn sample() -> Self {
        Self { id: "org_01936a3c8f2e7b4d9a1c5e6f7a8b9c0e".into(), name: "Acme Retail".into(), created_at: "2026-04-07T12:00:00Z".into() }
    }
}

/// A new organization and its admin key (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct NewOrganizationView {
    pub organization: OrganizationView,
    pub key: KeyView,
    /// Only in a replayed answer, whose `key.key` is then `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub secret_shown_once: Option<bool>,
}

impl Example for NewOrganizationView {
    fn example() -> Value {
        json!(Self { organization: OrganizationView::sample(), key: KeyView::sample(true), secret_shown_once: None })
    }
}

async fn create_org(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<CreateOrgBody>) -> Response {
    let spec = spec("orgs.create");
    let mutation = match Mutation::begin(&state, spec, &caller, &headers, &body.raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    let journal = |created: &atlas_accounts::NewOrganization| {
        let data = json!(NewOrganizationView {
            organization: OrganizationView::of(&created.organization),
            key: KeyView::of(&created.admin_key.record, Some(created.admin_key.token.expose())),
            secret_shown_once: None,
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
}

impl Example for BootstrapBody {
    fn example() -> Value {
        json!({"email": "admin@example.com", "password": "correct horse battery staple", "username": "admin"})
    }
}

/// The first user, its organization and an admin key (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct BootstrappedView {
    pub user: UserView,
    pub organization: OrganizationView,
    pub key: KeyView,
}

impl Example for BootstrappedView {
    fn example() -> Value {
        json!(Self { user: UserView::sample(), organization: OrganizationView::sample(), key: KeyView::sample(true) })
    }
}

/// A user as returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub username: Option<String>,
    pub role: String,
    #[schema(format = DateTime)]
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

    fn sample() -> Self {
        Self {
            id: "usr_01936a3c8f2e7b4d9a1c5e6f7a8b9c0f".into(),
            email: "admin@example.com".into(),
            username: Some("admin".into()),
            role: "admin".into(),
            created_at: "2026-04-07T12:00:00Z".into(),
        }
    }
}

async fn bootstrap(State(state): State<AppState>, Caller(caller): Caller, body: JsonBody<BootstrapBody>) -> Response {
    let spec = spec("auth.bootstrap");
    let b = body.value;
    let request = BootstrapRequest { email: b.email, password: b.password, username: b.username };
    let mutation = Mutation::unkeyed(&state, spec, Some(caller.org_id), caller.actor);
    let journal = |done: &atlas_accounts::Bootstrapped| {
        let data = json!(BootstrappedView {
            user: UserView::of(&done.user),
            organization: OrganizationView::of(&done.organization),
            key: KeyView::of(&done.admin_key.record, Some(done.admin_key.token.expose())),
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
    match state.accounts.bootstrap(&caller, request, &entropy(), &entropy(), &journal).await {
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

impl Example for TokenBody {
    fn example() -> Value {
        json!({"email": "admin@example.com", "password": "correct horse battery staple"})
    }
}

/// `POST /v1/atlas/auth/refresh`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    #[serde(alias = "refreshToken")]
    pub refresh_token: String,
}

impl Example for RefreshBody {
    fn example() -> Value {
        json!({"refresh_token": "atlas_rt_8f2e7b4d9a1c5e6f7a8b9c0d1e2f3a4b"})
    }
}

/// A session: access token, refresh token and the user.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The access JWT (15 minutes).
    pub token: String,
    pub refresh_token: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[schema(format = DateTime)]
    pub refresh_expires_at: String,
    pub user: UserView,
}

impl Example for SessionView {
    fn example() -> Value {
        json!(Self {
            token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c3JfMDEifQ.c2lnbmF0dXJl".into(),
            refresh_token: "atlas_rt_8f2e7b4d9a1c5e6f7a8b9c0d1e2f3a4b".into(),
            expires_at: "2026-04-07T12:15:00Z".into(),
            refresh_expires_at: "2026-05-07T12:00:00Z".into(),
            user: UserView::sample(),
        })
    }
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

/// `GET /v1/atlas/runs` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only runs of this operation (`keys.create`, `messages.send`, …).
    operation: Option<String>,
    /// Only runs in this status.
    #[param(inline, value_type = Option<RunStatusName>)]
    status: Option<String>,
    /// Only runs about this resource.
    resource_id: Option<String>,
    /// Only runs created at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Only runs created before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
}

/// A run's status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatusName {
    Pending,
    Succeeded,
    Failed,
}

/// Who acted: `{"type": "api_key" | "user", "id"}` or `{"type": "system"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActorView {
    #[serde(rename = "type")]
    #[schema(inline)]
    pub kind: ActorKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub id: Option<String>,
}

/// The kind of actor.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    ApiKey,
    User,
    System,
}

impl ActorView {
    fn of(actor: &Actor) -> Self {
        match actor {
            Actor::ApiKey(id) => Self { kind: ActorKind::ApiKey, id: Some(id.to_string()) },
            Actor::User(id) => Self { kind: ActorKind::User, id: Some(id.to_string()) },
            Actor::System => Self { kind: ActorKind::System, id: None },
        }
    }
}

/// Why a run failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunErrorView {
    pub code: String,
    pub message: String,
}

/// One audited call.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub actor: ActorView,
    /// What was done: `keys.create`, `messages.send`, …
    pub operation: String,
    #[schema(inline)]
    pub status: RunStatusName,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    /// The resource the call created or changed.
    pub resource_id: Option<String>,
    pub error: Option<RunErrorView>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl RunView {
    fn of(run: &Run) -> Self {
        Self {
            id: run.id.to_string(),
            actor: ActorView::of(&run.actor),
            operation: run.operation.clone(),
            status: match run.status {
                RunStatus::Pending => RunStatusName::Pending,
                RunStatus::Succeeded => RunStatusName::Succeeded,
                RunStatus::Failed => RunStatusName::Failed,
            },
            request_id: run.request_id.clone(),
            idempotency_key: run.idempotency_key.clone(),
            resource_id: run.resource_id.clone(),
            error: run.error.as_ref().map(|e| RunErrorView { code: e.code.clone(), message: e.message.clone() }),
            created_at: rfc3339(run.created_at),
            updated_at: rfc3339(run.updated_at),
        }
    }

    fn sample() -> Self {
        Self {
            id: "run_01936a3c8f2e7b4d9a1c5e6f7a8b9c10".into(),
            actor: ActorView { kind: ActorKind::ApiKey, id: Some("key_01936a3c8f2e7b4d9a1c5e6f7a8b9c0d".into()) },
            operation: "keys.create".into(),
            status: RunStatusName::Succeeded,
            request_id: "req_01936a3c8f2e7b4d".into(),
            idempotency_key: Some("mint-support-bot-1".into()),
            resource_id: Some("key_01936a3c8f2e7b4d9a1c5e6f7a8b9c0d".into()),
            error: None,
            created_at: "2026-04-07T12:00:00Z".into(),
            updated_at: "2026-04-07T12:00:00Z".into(),
        }
    }
}

impl Example for RunView {
    fn example() -> Value {
        json!(Self::sample())
    }
}

/// `GET /v1/atlas/runs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunView>,
    pub next_cursor: Option<String>,
}

impl Example for RunList {
    fn example() -> Value {
        json!(Self { runs: vec![RunView::sample()], next_cursor: None })
    }
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
    Ok(Envelope::ok(RunList { runs: runs.items.iter().map(RunView::of).collect(), next_cursor: runs.next_cursor }).into_response())
}

async fn get_run(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id: RunId = id.parse().map_err(|_| ApiError::not_found("run"))?;
    let run: Run = state.runs.get(caller.org_id, id).await?.ok_or_else(|| ApiError::not_found("run"))?;
    Ok(Envelope::ok(RunView::of(&run)).into_response())
}

// ---------------------------------------------------------------- operations

async fn openapi() -> Response {
    let mut response = axum::Json(openapi_document()).into_response();
    response.headers_mut().insert("cache-control", axum::http::HeaderValue::from_static("no-cache"));
    response
}

/// The process answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

impl Example for Health {
    fn example() -> Value {
        json!(Self { status: "ok".into() })
    }
}

async fn health() -> Response {
    Envelope::ok(Health { status: "ok".into() }).into_response()
}

/// Readiness: `ready`, or `degraded` when a non-critical dependency (Redis) fails; each check
/// says `ok` or why not. A critical failure answers 503 PROVIDER_UNAVAILABLE.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `degraded`.
    pub status: String,
    pub checks: std::collections::BTreeMap<String, String>,
}

impl Example for Readiness {
    fn example() -> Value {
        json!(Self { status: "ready".into(), checks: [("database".to_owned(), "ok".to_owned())].into() })
    }
}

async fn ready(State(state): State<AppState>) -> Response {
    let mut checks = std::collections::BTreeMap::new();
    let mut ready = true;
    let mut degraded = false;
    for check in &state.readiness {
        match check.check().await {
            Ok(()) => {
                checks.insert(check.name().to_owned(), "ok".to_owned());
            }
            Err(why) if check.critical() => {
                ready = false;
                checks.insert(check.name().to_owned(), why);
            }
            Err(why) => {
                degraded = true;
                checks.insert(check.name().to_owned(), format!("degraded: {why}"));
            }
        }
    }
    if ready {
        let status = if degraded { "degraded" } else { "ready" };
        Envelope::ok(Readiness { status: status.into(), checks }).into_response()
    } else {
        ApiError::new(ErrorCode::ProviderUnavailable, "a dependency is not ready").detail("checks", json!(checks)).into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert("content-type", axum::http::HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}
