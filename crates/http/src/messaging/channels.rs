//! Channels: connect a WhatsApp number (or a sandbox), list, read one, move the default
//! (`PATCH {"is_default": true}`), disconnect (`DELETE`: conversations stay readable, sends on
//! it are refused). Secrets are sealed at rest and never returned.

use super::PageQuery;
use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_conversations::{Channel, ChannelId, ChannelProvider, ChannelSecrets, ConnectChannel};
use atlas_kernel::PageRequest;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

/// `POST /v1/atlas/channels`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelBody {
    #[serde(default)]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
    /// `whatsapp` or `sandbox`.
    provider: String,
    name: String,
    /// Meta's phone number id (numeric).
    #[serde(default)]
    phone_number_id: Option<String>,
    #[serde(default)]
    display_phone_number: Option<String>,
    /// The Graph API token (sealed at rest, never returned).
    #[serde(default)]
    access_token: Option<String>,
    /// Signs Meta's webhooks (sealed at rest, never returned).
    #[serde(default)]
    app_secret: Option<String>,
    /// Answers Meta's subscription handshake.
    #[serde(default)]
    verify_token: Option<String>,
    /// The WhatsApp Business Account id: needed to sync its templates.
    #[serde(default)]
    waba_id: Option<String>,
    /// `false` keeps the first real number from becoming the default; `true` makes this one
    /// the default.
    #[serde(default)]
    is_default: Option<bool>,
}

/// `PATCH /v1/atlas/channels/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    #[serde(default)]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
    /// `true` makes this channel the organization's default (the previous one stops being it).
    is_default: bool,
}

/// A channel as the API shows it (never its secrets).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelView {
    #[schema(value_type = String)]
    pub id: ChannelId,
    #[schema(value_type = String)]
    pub provider: ChannelProvider,
    pub name: String,
    pub phone_number_id: String,
    pub display_phone_number: String,
    pub waba_id: Option<String>,
    /// The channel a send to a customer without a conversation uses.
    pub is_default: bool,
    /// `connected` or `disconnected`.
    pub status: &'static str,
    /// Where Meta's webhook for this number is to be sent (one app may send every number's
    /// events to any one of its channels' URLs).
    pub webhook_url: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub disconnected_at: Option<OffsetDateTime>,
}

/// A page of channels.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelList {
    pub channels: Vec<ChannelView>,
    pub next_cursor: Option<String>,
}

impl From<&Channel> for ChannelView {
    fn from(c: &Channel) -> Self {
        ChannelView {
            id: c.id,
            provider: c.provider,
            name: c.name.clone(),
            phone_number_id: c.phone_number_id.clone(),
            display_phone_number: c.display_phone_number.clone(),
            waba_id: c.waba_id.clone(),
            is_default: c.is_default,
            status: if c.is_active() { "connected" } else { "disconnected" },
            webhook_url: format!("/v1/atlas/channels/{}/webhook", c.id),
            created_at: c.created_at,
            disconnected_at: c.disconnected_at,
        }
    }
}

fn view(channel: &Channel) -> Value {
    serde_json::to_value(ChannelView::from(channel)).unwrap_or(Value::Null)
}

fn channel_id(id: &str) -> Result<ChannelId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("channel"))
}

pub(super) async fn create_channel(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<ChannelBody>,
) -> Response {
    let b = body.value;
    let provider = match b.provider.as_str() {
        "whatsapp" => ChannelProvider::Whatsapp,
        "sandbox" => ChannelProvider::Sandbox,
        _ => return ApiError::field("provider", "must be whatsapp or sandbox").into_response(),
    };
    let request = ConnectChannel {
        provider,
        name: b.name,
        phone_number_id: b.phone_number_id.unwrap_or_default(),
        display_phone_number: b.display_phone_number.unwrap_or_default(),
        verify_token: b.verify_token.unwrap_or_default(),
        secrets: ChannelSecrets { access_token: b.access_token.unwrap_or_default(), app_secret: b.app_secret.unwrap_or_default() },
        waba_id: b.waba_id,
        is_default: b.is_default,
    };
    let mutation = match Mutation::begin(&state, spec("channels.create"), &caller, &headers, &body.raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    let journal = |channel: &Channel| {
        let location = format!("/v1/atlas/channels/{}", channel.id);
        mutation.entry(None, None, StatusCode::CREATED, &view(channel), Some(channel.id.to_string()), Some(location))
    };
    match state.messaging.connect_channel(caller.org_id, request, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

pub(super) async fn list_channels(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let channels = state.messaging.channels(caller.org_id, &page).await?.map(|c| ChannelView::from(&c));
    Ok(Envelope::ok(ChannelList { channels: channels.items, next_cursor: channels.next_cursor }).into_response())
}

pub(super) async fn get_channel(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let channel = state.messaging.channel(caller.org_id, channel_id(&id)?).await?;
    Ok(Envelope::ok(ChannelView::from(&channel)).into_response())
}

pub(super) async fn update_channel(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<ChannelPatch>,
) -> Response {
    let id = match channel_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    if !body.value.is_default {
        return ApiError::field("is_default", "only `true` is accepted: make another channel the default instead").into_response();
    }
    let mutation = match Mutation::begin(&state, spec("channels.update"), &caller, &headers, &body.raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    let journal = |channel: &Channel| mutation.entry(None, None, StatusCode::OK, &view(channel), Some(channel.id.to_string()), None);
    match state.messaging.make_default(caller.org_id, id, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

pub(super) async fn delete_channel(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let id = match channel_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mutation = match Mutation::begin(&state, spec("channels.delete"), &caller, &headers, &json!({})).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    let journal = |channel: &Channel| mutation.entry(None, None, StatusCode::OK, &view(channel), Some(channel.id.to_string()), None);
    match state.messaging.disconnect(caller.org_id, id, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}
