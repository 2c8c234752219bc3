//! The webhook events the SQL adapter emits on its own, beside the changes they are news of and
//! in the same transaction (a use case's events ride in its journal entry instead):
//! - `agent.message_delivery` whenever an outbound message's delivery state changes (the
//!   provider accepted or refused it, or a status receipt moved it), its data the message as the
//!   API shows it and its version the state's rank (`queued` 0 … `failed` 5), which only ever
//!   grows, so consumers keep the highest they have seen;
//! - `atlas.run.updated` when a send's run moves from `pending` to its final status, its data
//!   the run and its version 2 (1 was the pending run).

use crate::error::Failure;
use crate::journal::insert_events;
use atlas_conversations::Message;
use atlas_kernel::StoreError;
use atlas_runs::{OutboxEvent, Run};
use atlas_webhooks::{Event, EventType};
use sea_orm::DatabaseTransaction;
use serde::Serialize;
use time::OffsetDateTime;

/// The version of a run's `atlas.run.updated` event once it finished (1 was pending).
const FINISHED_RUN_VERSION: i64 = 2;

fn data(context: &'static str, value: &impl Serialize) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::new(context, e))
}

/// The `agent.message_delivery` event of `message` (an outbound message whose delivery state
/// just changed, at `at`); `None` for an inbound message, which has no delivery state.
pub(crate) fn message_delivery_event(message: &Message, at: OffsetDateTime) -> Result<Option<OutboxEvent>, StoreError> {
    let Some(state) = message.delivery_state else {
        return Ok(None);
    };
    let event = Event::new(
        message.org_id,
        EventType::AGENT_MESSAGE_DELIVERY,
        at,
        data("writing a message delivery event", message)?,
        Some(message.id.to_string()),
        i64::from(state.rank()),
    );
    Ok(Some(event.outbox()))
}

/// The `atlas.run.updated` event of `run`, which just moved from pending to its final status.
pub(crate) fn run_finished_event(run: &Run) -> Result<OutboxEvent, StoreError> {
    let event = Event::new(
        run.org_id,
        EventType::RUN_UPDATED,
        run.updated_at,
        data("writing a run event", run)?,
        Some(run.id.to_string()),
        FINISHED_RUN_VERSION,
    );
    Ok(event.outbox())
}

/// Writes `agent.message_delivery` for `message` (an outbound message whose delivery state just
/// changed, at `at`) through `txn`. An inbound message has no delivery state: nothing is written.
pub(crate) async fn message_delivery_changed(txn: &DatabaseTransaction, message: &Message, at: OffsetDateTime) -> Result<(), Failure> {
    match message_delivery_event(message, at)? {
        Some(event) => insert_events(txn, message.org_id.as_uuid(), &[event]).await,
        None => Ok(()),
    }
}
