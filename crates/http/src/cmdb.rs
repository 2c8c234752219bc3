//! The CMDB routes: configuration items (create, list by class and environment, get),
//! relationships ("the source depends on the target"), and impact (downstream or upstream, each
//! item once with its depth and one shortest path). Scopes `atlas.cmdb.write` /
//! `atlas.cmdb.read`.

use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_cmdb::{CiId, CmdbError, ConfigurationItem, Direction, ItemFilter, NewItem, NewRelationship, Relationship, RelationshipType};
use atlas_kernel::PageRequest;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::IntoParams;
use utoipa::ToSchema;

/// The handler of a CMDB route, if `operation` is one.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "cmdb.items.create" => on(filter, create_item),
        "cmdb.items.list" => on(filter, list_items),
        "cmdb.items.get" => on(filter, get_item),
        "cmdb.relationships.create" => on(filter, relate),
        "cmdb.impact" => on(filter, impact),
        _ => return None,
    })
}

impl From<CmdbError> for ApiError {
    fn from(e: CmdbError) -> Self {
        match e {
            CmdbError::Invalid { field, message } => ApiError::field(field, message),
            CmdbError::NotFound(what) => ApiError::not_found(what),
            CmdbError::Duplicate => ApiError::new(ErrorCode::Conflict, e.to_string()),
            CmdbError::Store(s) => ApiError::internal(s),
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

/// `POST /v1/atlas/cmdb/items` (seed 002's body).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateItemBody {
    pub name: String,
    /// `server`, `database`, `service`, …
    pub class: String,
    #[serde(default)]
    pub environment: Option<String>,
    /// Free-form attributes (a JSON object).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Value>,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

async fn create_item(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<CreateItemBody>,
) -> Response {
    let mutation = begin!(state, "cmdb.items.create", caller, headers, &body.raw);
    let b = body.value;
    let new = NewItem { name: b.name, class: b.class, environment: b.environment, attributes: b.attributes };
    let journal = |item: &ConfigurationItem| {
        let location = format!("/v1/atlas/cmdb/items/{}", item.id);
        mutation.entry(None, None, StatusCode::CREATED, &json!(item), Some(item.id.to_string()), Some(location))
    };
    match state.cmdb.create_item(caller.org_id, new, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// `GET /v1/atlas/cmdb/items` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    pub class: Option<String>,
    pub environment: Option<String>,
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

/// A page of configuration items.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemsPage {
    pub items: Vec<ConfigurationItem>,
    pub next_cursor: Option<String>,
}

async fn list_items(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<ItemsQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = ItemFilter { class: q.class, environment: q.environment };
    let found = state.cmdb.items(caller.org_id, &filter, &page).await?;
    Ok(Envelope::ok(ItemsPage { items: found.items, next_cursor: found.next_cursor }).into_response())
}

fn ci_id(text: &str) -> Result<CiId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("configuration item"))
}

async fn get_item(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let item = state.cmdb.item(caller.org_id, ci_id(&id)?).await?;
    Ok(Envelope::ok(item).into_response())
}

/// `POST /v1/atlas/cmdb/relationships`: the source depends on the target.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelateBody {
    #[serde(alias = "sourceId")]
    #[schema(value_type = String)]
    pub source_id: CiId,
    #[serde(alias = "targetId")]
    #[schema(value_type = String)]
    pub target_id: CiId,
    /// `depends_on`, `runs_on` or `connects_to`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: RelationshipType,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

async fn relate(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<RelateBody>) -> Response {
    let mutation = begin!(state, "cmdb.relationships.create", caller, headers, &body.raw);
    let b = body.value;
    let new = NewRelationship { source_id: b.source_id, target_id: b.target_id, kind: b.kind };
    let journal = |r: &Relationship| mutation.entry(None, None, StatusCode::CREATED, &json!(r), Some(r.id.to_string()), None);
    match state.cmdb.relate(caller.org_id, new, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// `GET /v1/atlas/cmdb/impact` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImpactQuery {
    pub ci_id: String,
    pub max_depth: Option<u32>,
    /// `downstream` (default) or `upstream`.
    #[param(value_type = Option<String>)]
    pub direction: Option<Direction>,
}

async fn impact(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<ImpactQuery>,
) -> Result<Response, ApiError> {
    let ci = q.ci_id.parse::<CiId>().map_err(|e| ApiError::field("ci_id", e.to_string()))?;
    let found = state.cmdb.impact(caller.org_id, ci, q.direction.unwrap_or_default(), q.max_depth).await?;
    Ok(Envelope::ok(found).into_response())
}
