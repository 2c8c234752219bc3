//! Templates: register one, list them, and `POST /v1/atlas/channels/{id}/templates/sync`,
//! which imports the channel's WhatsApp Business Account templates from the Graph API (every
//! page) and marks those Meta no longer lists `deleted`.

use super::PageQuery;
use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_conversations::{ChannelId, RegisterTemplate, Template, TemplateCategory, TemplateStatus, TemplatesSynced};
use atlas_kernel::PageRequest;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The answer of a template sync.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncAnswer {
    #[schema(value_type = String)]
    pub channel_id: ChannelId,
    /// Templates inserted or updated from the account.
    pub synced: usize,
    /// Templates of this channel that Meta no longer lists, now `deleted`.
    pub deleted: usize,
}

pub(super) async fn sync_templates(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<Value>,
) -> Response {
    let Ok(id) = id.parse::<ChannelId>() else { return ApiError::not_found("channel").into_response() };
    if let Some(key) = body.raw.as_object().and_then(|o| o.keys().find(|k| k.as_str() != "idempotency_key")) {
        return crate::extract::field_error(key, "unknown field: this route takes no body (idempotency_key only)").into_response();
    }
    let mutation = match Mutation::begin(&state, spec("channels.templates_sync"), &caller, &headers, &body.raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    let journal = |outcome: &TemplatesSynced| {
        let answer = SyncAnswer { channel_id: id, synced: outcome.upserted, deleted: outcome.deleted };
        let data = serde_json::to_value(answer).unwrap_or(Value::Null);
        mutation.entry(None, None, StatusCode::OK, &data, Some(id.to_string()), None)
    };
    match state.messaging.sync_templates(caller.org_id, id, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// `POST /v1/atlas/templates`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    #[serde(default)]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
    name: String,
    language: String,
    category: String,
    #[serde(default)]
    status: Option<String>,
    body: String,
}

/// A template as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TemplateView {
    #[schema(value_type = String)]
    pub id: atlas_conversations::TemplateId,
    /// Meta's template name (`hello_world`).
    pub name: String,
    /// A locale such as `en_US`.
    pub language: String,
    /// `utility`, `marketing` or `authentication`.
    #[schema(value_type = String)]
    pub category: TemplateCategory,
    /// `approved`, `pending`, `rejected`, `paused`, `disabled` or `deleted`.
    #[schema(value_type = String)]
    pub status: TemplateStatus,
    /// The text with `{{1}}`, `{{2}}` … parameters.
    pub body: String,
    /// Meta's `components` (an array) when known: synced templates and the sandbox's
    /// `hello_world`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub components: Option<Value>,
    /// The channel whose account it was synced from; `null` for registered templates.
    #[schema(value_type = Option<String>)]
    pub channel_id: Option<ChannelId>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: time::OffsetDateTime,
}

impl From<&Template> for TemplateView {
    fn from(t: &Template) -> Self {
        TemplateView {
            id: t.id,
            name: t.name.clone(),
            language: t.language.clone(),
            category: t.category,
            status: t.status,
            body: t.body.clone(),
            components: t.components.clone(),
            channel_id: t.channel_id,
            created_at: t.created_at,
        }
    }
}

/// A page of templates.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TemplateList {
    pub templates: Vec<TemplateView>,
    pub next_cursor: Option<String>,
}

pub(super) async fn create_template(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<TemplateBody>,
) -> Response {
    let b = body.value;
    let prepared = (|| {
        let category = TemplateCategory::parse(&b.category)
            .ok_or_else(|| ApiError::field("category", "must be utility, marketing or authentication (transactional means utility)"))?;
        let status = match b.status.as_deref() {
            None => TemplateStatus::Approved,
            Some(s) => TemplateStatus::parse(s).ok_or_else(|| ApiError::field("status", "must be approved, pending or rejected"))?,
        };
        Ok::<_, ApiError>(RegisterTemplate { name: b.name.clone(), language: b.language.clone(), category, status, body: b.body.clone() })
    })();
    let request = match prepared {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mutation = match Mutation::begin(&state, spec("templates.create"), &caller, &headers, &body.raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    let journal = |template: &Template| {
        mutation.entry(
            None,
            None,
            StatusCode::CREATED,
            &serde_json::to_value(TemplateView::from(template)).unwrap_or(Value::Null),
            Some(template.id.to_string()),
            Some(format!("/v1/atlas/templates/{}", template.id)),
        )
    };
    match state.messaging.register_template(caller.org_id, request, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

pub(super) async fn list_templates(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let templates = state.messaging.templates(caller.org_id, &page).await?;
    let templates = templates.map(|t| TemplateView::from(&t));
    Ok(Envelope::ok(TemplateList { templates: templates.items, next_cursor: templates.next_cursor }).into_response())
}
