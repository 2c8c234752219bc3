//! The background work of every server process: the outbox worker (claims due rows fairly
//! with `FOR UPDATE SKIP LOCKED`, honours the per-channel throughput cap through the shared
//! rate limiter, delivers through the provider, retries with backoff and jitter), the webhook
//! worker (fans events out, claims deliveries fairly, attempts them), and the sandbox's status
//! reporter (feeds `sent`, `delivered`, `read` through the same status path as Meta's webhook).
//!
//! Fairness: both workers keep claiming while they have free slots instead of waiting for a
//! whole batch, each item runs in its own task, and claims cap what one channel or endpoint
//! may hold, so one tenant's slow endpoints or throttled channel never hold up another's.

use atlas_conversations::{Delivery, DeliveryOutcome};
use atlas_http::AppState;
use atlas_ratelimit::{bucket_key, Policy, RouteClass};
use atlas_whatsapp::{DeliveryStatus, SandboxReceipt, StatusUpdate};
use rand::Rng;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// Rows claimed at most by one claim.
const BATCH: u32 = 16;
/// The most outbox rows one process holds (claimed, waiting for their channel's quota or in a
/// provider call) at once: a process killed at any instant leaves at most this many rows
/// leased, so at most this many messages can be sent twice after a crash.
pub const OUTBOX_IN_FLIGHT: u32 = 64;
/// The most outbox rows of one channel leased at once, across every worker of every process:
/// one channel waiting for its quota (or a slow provider) holds at most this many of a
/// process's [`OUTBOX_IN_FLIGHT`] slots, so other channels' rows keep moving.
pub const OUTBOX_PER_CHANNEL: u32 = 16;
/// The most webhook deliveries one process attempts at once. A slow endpoint holds at most
/// its `ATLAS_WEBHOOK_ENDPOINT_CONCURRENCY` of them.
pub const WEBHOOK_IN_FLIGHT: u32 = 256;
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

/// Runs a claiming loop until `stop` turns true: it claims as many items as it has free slots
/// (at most [`BATCH`] at a time) and runs each in its own task holding a slot, so a slow item
/// never holds up the claims of others; with no free slot it waits for one, with nothing due
/// it waits for `wake` or [`IDLE_POLL`]. `claim(n)` returns the claimed items (empty on a
/// failure, which it logs).
fn spawn_claiming_loop<T, C, CF, R, RF>(slots: u32, wake: Arc<Notify>, mut stop: watch::Receiver<bool>, claim: C, run: R)
where
    T: Send + 'static,
    C: Fn(u32) -> CF + Send + 'static,
    CF: Future<Output = Vec<T>> + Send,
    R: Fn(T) -> RF + Send + Sync + 'static,
    RF: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(slots as usize));
    tokio::spawn(async move {
        let mut running = JoinSet::new();
        loop {
            if *stop.borrow() {
                break;
            }
            while running.try_join_next().is_some() {}
            let free = slots.available_permits().min(BATCH as usize);
            if free == 0 {
                tokio::select! {
                    _ = running.join_next() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let items = claim(u32::try_from(free).unwrap_or(BATCH)).await;
            if items.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = wake.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            for item in items {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    // Never happens: a claim takes at most the free slots, and only this loop
                    // takes slots. The item returns to the queue after its lease.
                    continue;
                };
                let work = run(item);
                running.spawn(async move {
                    let _permit: OwnedSemaphorePermit = permit;
                    work.await;
                });
            }
        }
    });
}

/// Runs the outbox worker until `stop` turns true: rows are claimed fairly (at most
/// [`OUTBOX_PER_CHANNEL`] leased per channel, organizations taking turns), at most
/// [`OUTBOX_IN_FLIGHT`] held by this process, each delivered in its own task after its
/// channel's quota admits it.
pub fn spawn_outbox_worker(
    state: AppState,
    delivery: Arc<Delivery>,
    channel_cap: Policy,
    counters: Arc<OutboxCounters>,
    stop: watch::Receiver<bool>,
) {
    let wake = Arc::new(Notify::new());
    let claimer = delivery.clone();
    let woken = wake.clone();
    let (outbox_wake, mut bridge_stop) = (state.clone(), stop.clone());
    // Bridge the shared wake signal (sends queued by this process) to the loop's own.
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = outbox_wake.wake.outbox.notified() => woken.notify_one(),
                _ = bridge_stop.changed() => if *bridge_stop.borrow() { break },
            }
        }
    });
    spawn_claiming_loop(
        OUTBOX_IN_FLIGHT,
        wake,
        stop,
        move |n| {
            let claimer = claimer.clone();
            async move {
                claimer.claim(n, OUTBOX_PER_CHANNEL).await.unwrap_or_else(|e| {
                    tracing::warn!(error = ?e, "outbox claim failed");
                    Vec::new()
                })
            }
        },
        move |item| {
            let (state, delivery, counters) = (state.clone(), delivery.clone(), counters.clone());
            async move {
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
            }
        },
    );
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

/// Runs the webhook dispatcher until `stop` turns true: one loop expands outbox events into
/// deliveries, another claims due deliveries fairly (at most the endpoint concurrency in
/// flight per endpoint, organizations taking turns) and attempts each in its own task, at most
/// [`WEBHOOK_IN_FLIGHT`] at once; `wake.webhooks` wakes the fan-out when this process writes
/// events, and a fan-out that made deliveries wakes the claims.
pub fn spawn_webhook_worker(state: AppState, dispatcher: Arc<atlas_webhooks::Dispatcher>, stop: watch::Receiver<bool>) {
    let claims_wake = Arc::new(Notify::new());
    let fan_out = dispatcher.clone();
    let (woken, mut fan_out_stop) = (claims_wake.clone(), stop.clone());
    tokio::spawn(async move {
        loop {
            if *fan_out_stop.borrow() {
                break;
            }
            let fanned = match fan_out.fan_out(200).await {
                Ok(report) => report,
                Err(e) => {
                    tracing::warn!(error = ?e, "webhook fan-out failed");
                    atlas_webhooks::FanOutReport::default()
                }
            };
            if fanned.deliveries > 0 {
                woken.notify_one();
            }
            if fanned.events == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = state.wake.webhooks.notified() => {}
                    _ = fan_out_stop.changed() => {}
                }
            }
        }
    });
    let claimer = dispatcher.clone();
    spawn_claiming_loop(
        WEBHOOK_IN_FLIGHT,
        claims_wake,
        stop,
        move |n| {
            let claimer = claimer.clone();
            async move {
                claimer.claim(n).await.unwrap_or_else(|e| {
                    tracing::warn!(error = ?e, "webhook claim failed");
                    Vec::new()
                })
            }
        },
        move |item| {
            let dispatcher = dispatcher.clone();
            async move {
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
            }
        },
    );
}

/// How long a status kept pending (its provider id never recorded by a send) is kept: Meta
/// reports within minutes, so a week-old pending status belongs to no message of ours.
pub const PENDING_STATUS_RETENTION: time::Duration = time::Duration::days(7);
/// Rows one janitor statement removes at most (a sweep repeats until a batch comes back short).
const JANITOR_BATCH: u32 = 1000;
/// How often the retention janitor sweeps.
const JANITOR_EVERY: Duration = Duration::from_secs(600);

/// What one retention sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub outbox_rows: u64,
    pub pending_statuses: u64,
    pub deliveries: u64,
    pub events: u64,
}

/// Removes, as of `now` (the clock's), what nothing reads any more: finished outbox rows and
/// finished webhook deliveries (with their attempts) that finished more than `retention` ago,
/// webhook events (with their payloads) fanned out more than `retention` ago that no delivery
/// refers to, and pending statuses older than [`PENDING_STATUS_RETENTION`].
///
/// # Errors
/// The first store failure, as text (what was removed before it stays removed).
pub async fn sweep_retention(
    outbox: &dyn atlas_conversations::Outbox,
    queue: &dyn atlas_webhooks::DeliveryQueue,
    now: time::OffsetDateTime,
    retention: time::Duration,
) -> Result<Swept, String> {
    async fn drain<F, Fut, E>(mut batch: F) -> Result<u64, String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<u64, E>>,
        E: std::fmt::Debug,
    {
        let mut total = 0;
        loop {
            let removed = batch().await.map_err(|e| format!("{e:?}"))?;
            total += removed;
            if removed < u64::from(JANITOR_BATCH) {
                return Ok(total);
            }
        }
    }
    let cutoff = now - retention;
    Ok(Swept {
        outbox_rows: drain(|| outbox.purge_finished(cutoff, JANITOR_BATCH)).await?,
        pending_statuses: drain(|| outbox.purge_pending_statuses(now - PENDING_STATUS_RETENTION, JANITOR_BATCH)).await?,
        deliveries: drain(|| queue.purge_finished(cutoff, JANITOR_BATCH)).await?,
        events: drain(|| queue.purge_events(cutoff, JANITOR_BATCH)).await?,
    })
}

/// Runs [`sweep_retention`] every ten minutes (the first at once) until `stop` turns true,
/// telling time by `clock`.
pub fn spawn_retention_janitor(
    outbox: Arc<dyn atlas_conversations::Outbox>,
    queue: Arc<dyn atlas_webhooks::DeliveryQueue>,
    clock: Arc<dyn atlas_kernel::Clock>,
    retention: time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            match sweep_retention(outbox.as_ref(), queue.as_ref(), clock.now(), retention).await {
                Ok(swept) if swept != Swept::default() => tracing::info!(?swept, "retention janitor removed finished work"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention janitor failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(JANITOR_EVERY) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    });
}
