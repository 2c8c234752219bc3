//! Meta's webhook: `GET /v1/atlas/channels/{id}/webhook` answers the subscription handshake,
//! `POST` hands the raw body and its `X-Hub-Signature-256` to `Messaging::receive_webhook`
//! (the domain verifies it with the app secret of the channel whose URL was called, routes each
//! change by its phone number id and processes every item). Here: skipped items are logged,
//! changes for numbers the organization has not connected are logged and counted
//! (`atlas_webhook_unrouted_changes_total`), and a transient failure answers 503 so that Meta
//! retries the whole batch (its duplicates are absorbed).

use super::{event_received, now};
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::QueryParams;
use crate::state::AppState;
use atlas_conversations::{ChannelId, InboundRecorded, MessagingError};
use atlas_runs::JournalEntry;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The request header carrying Meta's payload signature.
const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// The largest webhook body Meta sends (3 MB).
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Meta's handshake query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Handshake {
    /// `subscribe`.
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    mode: Option<String>,
    /// Must equal the channel's `verify_token`.
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    verify_token: Option<String>,
    /// Echoed back as the body.
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// What a webhook POST did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookAnswer {
    pub received: bool,
    /// Messages newly stored.
    pub messages: usize,
    /// Messages already stored (Meta's retries).
    pub duplicates: usize,
    pub statuses: usize,
    /// Items skipped: changes for numbers not connected, and items that cannot be stored.
    pub skipped: usize,
}

fn channel_id(id: &str) -> Result<ChannelId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("channel"))
}

pub(super) async fn webhook_verify(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<Handshake>,
) -> Response {
    let id = match channel_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match state.messaging.webhook_handshake(id, q.mode, q.verify_token, q.challenge).await {
        Ok(challenge) => (StatusCode::OK, challenge).into_response(),
        Err(MessagingError::NotFound) => ApiError::not_found("channel").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

pub(super) async fn webhook(State(state): State<AppState>, Path(id): Path<String>, request: Request<Body>) -> Response {
    let id = match channel_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let signature = request.headers().get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let raw = match axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return ApiError::new(ErrorCode::PayloadTooLarge, "Meta's webhook bodies are at most 3 MB").into_response(),
    };
    let at = now(&state);
    let request_id = crate::request_id::current();
    // A system run per new message (no idempotency outcome: Meta's retries are absorbed by the
    // message id's unique constraint), with its `atlas.event.received` event.
    let journal = |recorded: &InboundRecorded| {
        (!recorded.duplicate).then(|| {
            let org_id = recorded.conversation.org_id;
            let mut entry = JournalEntry::by_system(org_id, "webhook.message", recorded.message.id.to_string(), request_id.clone(), at);
            entry.events.push(event_received(org_id, recorded, at));
            entry
        })
    };
    let report = match state.messaging.receive_webhook(id, signature, &raw, &journal).await {
        Ok(report) => report,
        Err(MessagingError::NotFound) => return ApiError::not_found("channel").into_response(),
        Err(MessagingError::Store(e)) => {
            tracing::warn!(channel = %id, error = ?e, "webhook batch not stored; Meta will retry it");
            return ApiError::new(ErrorCode::ProviderUnavailable, "the batch could not be stored now; retry later").into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    for number in &report.unrouted {
        state.metrics.webhook_unrouted();
        tracing::warn!(channel = %id, phone_number_id = %number, "webhook change for a number this organization has not connected; skipped");
    }
    for reason in &report.skipped {
        tracing::warn!(channel = %id, %reason, "webhook item skipped");
    }
    state.wake.webhooks.notify_one();
    state.wake.agents.notify_one();
    Envelope::ok(WebhookAnswer {
        received: true,
        messages: report.messages,
        duplicates: report.duplicates,
        statuses: report.statuses,
        skipped: report.unrouted.len() + report.skipped.len(),
    })
    .into_response()
}
