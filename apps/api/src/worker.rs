//! The background work of every server process: the outbox worker (claims due rows with
//! `FOR UPDATE SKIP LOCKED`, honours the per-channel throughput cap through the shared rate
//! limiter, delivers through the provider, retries with backoff and jitter), and the sandbox's
//! status reporter (feeds `sent`, `delivered`, `read` through the same status path as Meta's
//! webhook).

use atlas_conversations::{Delivery, DeliveryOutcome};
use atlas_http::AppState;
use atlas_ratelimit::{bucket_key, Policy, RouteClass};
use atlas_whatsapp::{DeliveryStatus, SandboxReceipt, StatusUpdate};
use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Rows claimed per round, by each loop.
const BATCH: u32 = 16;
/// Loops per worker: each claims and delivers on its own (`SKIP LOCKED` keeps them apart), so
/// one slow batch never holds up the rest.
const LOOPS: usize = 4;
/// How long an idle loop waits before looking again when nothing woke it (work queued by other
/// replicas is found this way).
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Counters the metrics endpoint shows.
#[derive(Debug, Default)]
pub struct OutboxCounters {
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
}

/// Runs the outbox worker until `stop` turns true.
pub fn spawn_outbox_worker(
    state: AppState,
    delivery: Arc<Delivery>,
    channel_cap: Policy,
    counters: Arc<OutboxCounters>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                break;
            }
            let items = match delivery.claim(BATCH).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(error = ?e, "outbox claim failed");
                    Vec::new()
                }
            };
            if items.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = state.wake.outbox.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let mut sends = JoinSet::new();
            for item in items {
                let (state, delivery, counters) = (state.clone(), delivery.clone(), counters.clone());
                sends.spawn(async move {
                    wait_for_channel_quota(&state, &item.channel_id.to_string(), &channel_cap).await;
                    let jitter: f64 = rand::rng().random_range(0.0..1.0);
                    let outcome = delivery.deliver(&item, jitter).await;
                    // Delivery states changed: their events wait for the webhook worker.
                    state.wake.webhooks.notify_one();
                    match outcome {
                        Ok(DeliveryOutcome::Sent(_)) => {
                            counters.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(DeliveryOutcome::Retrying { at, error }) => {
                            counters.retried.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(outbox_id = %item.id, code = %error.code, retry_at = %at, "delivery will be retried");
                        }
                        Ok(DeliveryOutcome::Failed(message)) => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(outbox_id = %item.id, error = ?message.error, "delivery failed for good");
                        }
                        Err(e) => tracing::warn!(outbox_id = %item.id, error = ?e, "delivery step failed; the row returns after its lease"),
                    }
                });
            }
            while sends.join_next().await.is_some() {}
        }
    });
}

/// Waits until the channel's throughput cap admits one more send (shared by every replica
/// when the limiter is Redis).
async fn wait_for_channel_quota(state: &AppState, channel: &str, cap: &Policy) {
    let bucket = bucket_key(RouteClass::Messages, &format!("channel:{channel}"));
    for _ in 0..1000 {
        match state.limiter.check(&bucket, cap).await {
            Ok(v) if v.allowed => return,
            Ok(v) => tokio::time::sleep(v.retry_after.max(Duration::from_millis(1))).await,
            Err(_) => return,
        }
    }
}

/// Reports the sandbox's statuses for each accepted send: `sent`, `delivered`, then `read`,
/// through the same path as Meta's status webhooks.
pub fn spawn_sandbox_reporter(state: AppState, mut receipts: mpsc::UnboundedReceiver<SandboxReceipt>) {
    tokio::spawn(async move {
        while let Some(receipt) = receipts.recv().await {
            let state = state.clone();
            tokio::spawn(async move {
                for (delay, status) in [(50, DeliveryStatus::Sent), (100, DeliveryStatus::Delivered), (200, DeliveryStatus::Read)] {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let update = StatusUpdate {
                        phone_number_id: receipt.channel.phone_number_id.clone(),
                        wamid: receipt.provider_message_id.clone(),
                        status,
                        timestamp: state.clock.now(),
                        recipient_id: Some(receipt.to.digits().to_owned()),
                        error: None,
                    };
                    if let Err(e) = atlas_http::apply_statuses(&state, receipt.org_id, &[update]).await {
                        tracing::warn!(error = ?e, "sandbox status not applied");
                    }
                }
            });
        }
    });
}

/// Runs the webhook dispatcher's loops until `stop` turns true: each expands outbox events
/// into deliveries, claims due deliveries (`FOR UPDATE SKIP LOCKED`), and attempts them
/// concurrently; `wake.webhooks` wakes an idle loop when this process writes events.
pub fn spawn_webhook_worker(state: AppState, dispatcher: Arc<atlas_webhooks::Dispatcher>, stop: watch::Receiver<bool>) {
    for _ in 0..LOOPS {
        webhook_loop(state.clone(), dispatcher.clone(), stop.clone());
    }
}

fn webhook_loop(state: AppState, dispatcher: Arc<atlas_webhooks::Dispatcher>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                break;
            }
            let fanned = match dispatcher.fan_out(200).await {
                Ok(report) => report.events,
                Err(e) => {
                    tracing::warn!(error = ?e, "webhook fan-out failed");
                    0
                }
            };
            let items = match dispatcher.claim(BATCH).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(error = ?e, "webhook claim failed");
                    Vec::new()
                }
            };
            if items.is_empty() && fanned == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = state.wake.webhooks.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let mut attempts = JoinSet::new();
            for item in items {
                let dispatcher = dispatcher.clone();
                attempts.spawn(async move {
                    let jitter: f64 = rand::rng().random_range(0.0..1.0);
                    match dispatcher.deliver(&item, jitter).await {
                        Ok(report) => {
                            if let Some(reason) = report.disabled {
                                tracing::warn!(endpoint = %item.endpoint_id, ?reason, "webhook endpoint disabled");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(delivery = %item.id, error = ?e, "webhook attempt not recorded; it returns after its lease")
                        }
                    }
                });
            }
            while attempts.join_next().await.is_some() {}
        }
    });
}

/// Runs queued runbook executions until `stop` turns true: claims one (`FOR UPDATE SKIP
/// LOCKED`, under a lease), runs its steps in order and records them; `wake.runbooks` wakes
/// the idle loop when this process queues one.
pub fn spawn_runbook_worker(state: AppState, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                break;
            }
            match state.runbooks.run_next().await {
                Ok(Some(report)) => {
                    tracing::info!(execution = %report.execution_id, status = report.status.as_str(), "runbook execution finished");
                    state.wake.webhooks.notify_one();
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = ?e, "runbook worker failed; the execution returns after its lease"),
            }
            tokio::select! {
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = state.wake.runbooks.notified() => {}
                _ = stop.changed() => {}
            }
        }
    });
}
