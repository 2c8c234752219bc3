//! `POST /v1/atlas/messages`: a send to a phone number under the window rules. Without
//! `channel_id` it goes out where the customer last wrote, else on the default channel; the
//! answer names the channel used.

use super::run_send;
use crate::auth::Caller;
use crate::extract::JsonBody;
use crate::state::AppState;
use atlas_conversations::{ChannelId, ConversationId, CustomerId, DeliveryState, MessageId, MessageKind, OutboxId, SendReceipt};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// The answer of `POST /v1/atlas/messages` (202).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SendAnswer {
    pub accepted: bool,
    #[schema(value_type = String)]
    pub delivery_state: DeliveryState,
    #[schema(value_type = String)]
    pub conversation_id: ConversationId,
    #[schema(value_type = String)]
    pub customer_id: CustomerId,
    #[schema(value_type = String)]
    pub message_id: MessageId,
    #[schema(value_type = String)]
    pub outbox_id: OutboxId,
    /// The channel the message goes out on.
    #[schema(value_type = String)]
    pub channel_id: ChannelId,
    #[schema(value_type = String)]
    pub kind: MessageKind,
    pub window_open: bool,
}

impl From<&SendReceipt> for SendAnswer {
    fn from(r: &SendReceipt) -> Self {
        SendAnswer {
            accepted: true,
            delivery_state: r.delivery_state,
            conversation_id: r.conversation_id,
            customer_id: r.customer_id,
            message_id: r.message_id,
            outbox_id: r.outbox_id,
            channel_id: r.channel_id,
            kind: r.kind,
            window_open: r.window_open,
        }
    }
}

pub(super) async fn send_message(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<super::PhoneSendBody>,
) -> Response {
    let JsonBody { raw, value } = body;
    let command = match value.command() {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let render = |r: &SendReceipt, _run: &Value| SendAnswer::from(r);
    run_send(&state, &caller, &headers, &raw, ("messages.send", None), command, &render).await
}
