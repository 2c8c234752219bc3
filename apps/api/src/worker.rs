//! The background work of every server process: the outbox worker (claims due rows fairly
//! with `FOR UPDATE SKIP LOCKED`, honours the per-channel throughput cap through the shared
//! rate limiter, delivers through the provider, retries with backoff and jitter), the webhook
//! worker (fans events out, claims deliveries fairly, attempts them), and the sandbox's status
//! reporter (feeds `sent`, `delivered`, `read` through the domain's status path,
//! `Messaging::apply_statuses`, the one Meta's webhook uses).
//!
//! Waking: an idle loop runs no statement until something wakes it: this process queuing work
//! (`AppState::wake`), a PostgreSQL notification that another process (or this one) committed
//! work (`LISTEN atlas_work`, sent by the queue tables' insert triggers; see
//! [`spawn_work_listener`]), the earliest due time of a scheduled retry or a lapsing lease
//! (read once, after a claim found nothing), or the slow fallback poll
//! (`ATLAS_WORKER_FALLBACK_POLL_MS`) for a notification lost while the listener reconnected,
//! and for what another process scheduled and never did. An idle cycle is one statement per
//! loop (a claim that finds nothing runs no transaction).
//!
//! Recording together: each worker writes its successes (sends the provider accepted,
//! attempts an endpoint accepted) through one recorder task ([`spawn_recorder`]) that takes
//! every success finished while it wrote the ones before, so a busy worker records many per
//! transaction and an idle one records each at once. Every other outcome is recorded by its own
//! task, so one channel's or endpoint's failures never queue ahead of another's successes.
//!
//! Fairness: both workers keep claiming while they have free slots instead of waiting for a
//! whole batch, each item runs in its own task, and claims cap what one channel or endpoint
//! may hold, so one tenant's slow endpoints or throttled channel never hold up another's.

use atlas_conversations::{Completion, Delivery, DeliveryOutcome, DeliveryState, DeliveryStep, ProviderStatus, StatusEvent};
use atlas_http::AppState;
use atlas_ratelimit::{bucket_key, Policy, RouteClass};
use atlas_whatsapp::SandboxReceipt;
use rand::Rng;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// Rows claimed at most by one claim.
const BATCH: u32 = 16;
/// The most outbox rows one process holds (claimed, waiting for their channel's quota or in a
/// provider call) at once: a process killed at any instant leaves at most this many rows
/// leased, so at most this many messages can be sent twice after a crash.
pub const OUTBOX_IN_FLIGHT: u32 = 64;
/// The default of the most outbox rows of one channel leased at once, across every worker of
/// every process (`ATLAS_OUTBOX_PER_CHANNEL`, at most [`OUTBOX_IN_FLIGHT`]): one channel waiting
/// for its quota (or a slow provider) holds at most this many of a process's
/// [`OUTBOX_IN_FLIGHT`] slots, so other channels' rows keep moving. It also bounds one
/// channel's throughput: at most this many sends in flight, each for a provider call and its
/// recording (with the sandbox, a one-channel drain went from about 700 to 1,270 messages per
/// second with 64: docs/benchmarks.md).
pub const OUTBOX_PER_CHANNEL: u32 = 16;
/// The most webhook deliveries one process attempts at once. A slow endpoint holds at most
/// its `ATLAS_WEBHOOK_ENDPOINT_CONCURRENCY` of them.
pub const WEBHOOK_IN_FLIGHT: u32 = 256;
/// How long a loop waits before claiming again when work is due but its claim took none (its
/// channel or endpoint is at its cap) and none of the items holding the cap is its own (its own
/// wake it as they finish).
const BLOCKED_POLL: Duration = Duration::from_millis(250);
/// How long the work listener waits before connecting again after a failure.
const LISTENER_RETRY: Duration = Duration::from_secs(1);

/// How idle loops wait.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// The longest an idle loop sleeps without being woken (`ATLAS_WORKER_FALLBACK_POLL_MS`).
    pub fallback_poll: Duration,
}

impl Pace {
    /// The pace of `settings`.
    pub fn of(settings: &crate::config::Settings) -> Pace {
        Pace { fallback_poll: Duration::from_millis(settings.worker_fallback_poll_ms) }
    }
}

/// Counters the metrics endpoint shows.
#[derive(Debug, Default)]
pub struct OutboxCounters {
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
}

/// When an idle claiming loop claims again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nap {
    /// Nothing known to come: wait to be woken, or the fallback poll.
    Fallback,
    /// Work becomes claimable in this long (zero: due now, but the claim took none).
    For(Duration),
}

/// How long an idle loop sleeps: until the next due instant (`Due`), [`BLOCKED_POLL`] when work
/// is due now but was not claimable (a cap), never longer than the fallback poll.
fn nap_length(nap: Nap, pace: Pace) -> Duration {
    match nap {
        Nap::Fallback => pace.fallback_poll,
        Nap::For(d) if d.is_zero() => BLOCKED_POLL.min(pace.fallback_poll),
        Nap::For(d) => d.min(pace.fallback_poll),
    }
}

/// Runs a claiming loop until `stop` turns true: it claims as many items as it has free slots
/// (at most [`BATCH`] at a time) and runs each in its own task holding a slot, so a slow item
/// never holds up the claims of others; with no free slot it waits for one. A claim that took
/// fewer items than asked emptied the queue: the loop then waits (new work wakes it). With
/// nothing claimed it reads when work is next due (`next_due`: at start, after `rescan`, or
/// when the instant it read passed) and sleeps until then, until `wake` (new work), or for
/// the fallback poll, whichever comes first. `claim(n)` returns the claimed items (empty on a
/// failure, which it logs); `next_due()` how long until work is claimable (`None`: no work at
/// all, or a failure, which it logs). A run that leaves its item for later (a retry, a lapsed
/// lease) notifies `rescan`, so the loop reads the new due time. (New work is due at once, so
/// `wake` needs no new due time.)
#[allow(clippy::too_many_arguments)]
fn spawn_claiming_loop<T, C, CF, D, DF, R, RF>(
    slots: u32,
    wake: Arc<Notify>,
    rescan: Arc<Notify>,
    pace: Pace,
    mut stop: watch::Receiver<bool>,
    claim: C,
    next_due: D,
    run: R,
) where
    T: Send + 'static,
    C: Fn(u32) -> CF + Send + 'static,
    CF: Future<Output = Vec<T>> + Send,
    D: Fn() -> DF + Send + 'static,
    DF: Future<Output = Option<Duration>> + Send,
    R: Fn(T) -> RF + Send + Sync + 'static,
    RF: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(slots as usize));
    tokio::spawn(async move {
        let mut running = JoinSet::new();
        // When work is next claimable, as last read (`None`: none known).
        let mut due_at: Option<tokio::time::Instant> = None;
        // Whether a run rescheduled work since `due_at` was read.
        let mut stale = true;
        // Whether the last claim emptied the queue (took fewer than it asked for).
        let mut drained = false;
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
            let asked = u32::try_from(free).unwrap_or(BATCH);
            let items = if drained { Vec::new() } else { claim(asked).await };
            if items.is_empty() {
                drained = false;
                // While this process's own items run, the first of them to finish is the signal
                // to claim again: it frees a place under its channel's or endpoint's cap (a
                // claim cut short by the cap took fewer than it asked for, as an emptied queue
                // does), and the due time is read once they are all done.
                let own = !running.is_empty();
                let now = tokio::time::Instant::now();
                if !own && (stale || due_at.is_some_and(|at| at <= now)) {
                    due_at = next_due().await.map(|d| now + d);
                    stale = false;
                }
                let nap = match due_at {
                    Some(at) if !own => Nap::For(at.saturating_duration_since(now)),
                    _ => Nap::Fallback,
                };
                tokio::select! {
                    _ = tokio::time::sleep(nap_length(nap, pace)) => {}
                    _ = running.join_next(), if own => {}
                    _ = wake.notified() => {}
                    _ = rescan.notified() => stale = true,
                    _ = stop.changed() => {}
                }
                continue;
            }
            drained = items.len() < asked as usize;
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
/// `per_channel` leased per channel, organizations taking turns), at most
/// [`OUTBOX_IN_FLIGHT`] held by this process, each delivered in its own task after its
/// channel's quota admits it.
pub fn spawn_outbox_worker(
    state: AppState,
    delivery: Arc<Delivery>,
    channel_cap: Policy,
    per_channel: u32,
    counters: Arc<OutboxCounters>,
    pace: Pace,
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
    let (prober, rescan) = (delivery.clone(), Arc::new(Notify::new()));
    let completer = delivery.clone();
    let recorder = spawn_recorder(OUTBOX_IN_FLIGHT, move |completions: Vec<Completion>| {
        let completer = completer.clone();
        async move { completer.complete(&completions).await }
    });
    spawn_claiming_loop(
        OUTBOX_IN_FLIGHT,
        wake,
        rescan.clone(),
        pace,
        stop,
        move |n| {
            let claimer = claimer.clone();
            async move {
                claimer.claim(n, per_channel).await.unwrap_or_else(|e| {
                    tracing::warn!(error = ?e, "outbox claim failed");
                    Vec::new()
                })
            }
        },
        move || {
            let prober = prober.clone();
            async move {
                prober.next_due_in().await.unwrap_or_else(|e| {
                    tracing::warn!(error = ?e, "reading the outbox's next due time failed");
                    None
                })
            }
        },
        move |item| {
            let (state, delivery, counters, rescan, recorder) =
                (state.clone(), delivery.clone(), counters.clone(), rescan.clone(), recorder.clone());
            async move {
                wait_for_channel_quota(&state, &item.channel_id.to_string(), &channel_cap).await;
                let jitter: f64 = rand::rng().random_range(0.0..1.0);
                // An accepted send goes to the recorder (see the module's doc), and the task
                // keeps its slot until it is recorded.
                let outcome = match delivery.attempt(&item, jitter).await {
                    DeliveryStep::Finished(outcome) => Some(outcome),
                    DeliveryStep::Accepted(completion) => via_recorder(&recorder, completion).await,
                };
                // Delivery states changed: their events wait for the webhook worker.
                state.wake.webhooks.notify_one();
                let Some(outcome) = outcome else {
                    tracing::warn!(outbox_id = %item.id, "accepted send not reported by the recorder; the row returns after its lease");
                    return;
                };
                match outcome {
                    Ok(DeliveryOutcome::Sent(_)) => {
                        counters.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(DeliveryOutcome::Retrying { at, error }) => {
                        counters.retried.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(outbox_id = %item.id, code = %error.code, retry_at = %at, "delivery will be retried");
                        rescan.notify_one();
                    }
                    Ok(DeliveryOutcome::Failed(message)) => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(outbox_id = %item.id, error = ?message.error, "delivery failed for good");
                    }
                    Ok(DeliveryOutcome::Receipt { error: None }) => {}
                    Ok(DeliveryOutcome::Receipt { error: Some(error) }) => {
                        tracing::info!(outbox_id = %item.id, code = %error.code, "read receipt not delivered");
                    }
                    Err(e) => {
                        tracing::warn!(outbox_id = %item.id, error = ?e, "delivery step failed; the row returns after its lease");
                        rescan.notify_one();
                    }
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

/// When the sandbox reports each status after it accepted a send: `sent` after 50 ms,
/// `delivered` 100 ms later, `read` 200 ms after that.
const SANDBOX_RECEIPTS: [(u64, DeliveryState); 3] =
    [(50, DeliveryState::Sent), (150, DeliveryState::Delivered), (350, DeliveryState::Read)];

/// Reports the sandbox's statuses for each accepted send: `sent`, `delivered`, then `read`
/// (see [`SANDBOX_RECEIPTS`]), through the same path as Meta's status webhooks. Every status
/// due at once (many sends in flight) is applied in one batch per organization, one
/// transaction (`Messaging::apply_statuses`), as a Meta webhook carrying many statuses is.
pub fn spawn_sandbox_reporter(state: AppState, mut receipts: mpsc::UnboundedReceiver<SandboxReceipt>) {
    tokio::spawn(async move {
        // Statuses to report, by due instant (then arrival, so one message's stay in order).
        let mut due: std::collections::BTreeMap<(tokio::time::Instant, u64), (atlas_kernel::OrgId, String, DeliveryState)> =
            std::collections::BTreeMap::new();
        let mut arrival = 0u64;
        loop {
            let next = due.keys().next().map(|(at, _)| *at);
            tokio::select! {
                receipt = receipts.recv() => {
                    let Some(receipt) = receipt else { break };
                    let now = tokio::time::Instant::now();
                    for (delay, status) in SANDBOX_RECEIPTS {
                        arrival += 1;
                        let at = now + Duration::from_millis(delay);
                        due.insert((at, arrival), (receipt.org_id, receipt.provider_message_id.clone(), status));
                    }
                }
                () = async {
                    match next {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let now = tokio::time::Instant::now();
                    let mut batches: std::collections::BTreeMap<atlas_kernel::OrgId, Vec<ProviderStatus>> = std::collections::BTreeMap::new();
                    while let Some(entry) = due.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        let (org_id, provider_message_id, status) = entry.remove();
                        let event = StatusEvent::new(status, state.clock.now());
                        batches.entry(org_id).or_default().push(ProviderStatus { provider_message_id, event });
                    }
                    for (org_id, batch) in batches {
                        if let Err(e) = state.messaging.apply_statuses(org_id, &batch).await {
                            tracing::warn!(error = ?e, statuses = batch.len(), "sandbox statuses not applied");
                        }
                    }
                    state.wake.webhooks.notify_one();
                }
            }
        }
    });
}

/// Runs the webhook dispatcher until `stop` turns true: one loop expands outbox events into
/// deliveries, another claims due deliveries fairly (at most the endpoint concurrency in
/// flight per endpoint, organizations taking turns) and attempts each in its own task, at most
/// [`WEBHOOK_IN_FLIGHT`] at once; `wake.webhooks` wakes the fan-out when this process writes
/// events, and a fan-out that made deliveries wakes the claims.
pub fn spawn_webhook_worker(state: AppState, dispatcher: Arc<atlas_webhooks::Dispatcher>, pace: Pace, stop: watch::Receiver<bool>) {
    let claims_wake = Arc::new(Notify::new());
    let fan_out = dispatcher.clone();
    let (woken, mut fan_out_stop) = (claims_wake.clone(), stop.clone());
    // Bridge the shared wake signal (deliveries another process made) to the claims' own.
    let (bridge, bridged, mut bridge_stop) = (state.clone(), claims_wake.clone(), stop.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = bridge.wake.deliveries.notified() => bridged.notify_one(),
                _ = bridge_stop.changed() => if *bridge_stop.borrow() { break },
            }
        }
    });
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
            // A batch short of the limit took every event waiting when it read them: the next
            // ones wake the loop (this process's writes, or the notification of another's).
            if !fanned.full {
                tokio::select! {
                    _ = tokio::time::sleep(pace.fallback_poll) => {}
                    _ = state.wake.webhooks.notified() => {}
                    _ = fan_out_stop.changed() => {}
                }
            }
        }
    });
    let (claimer, prober, rescan) = (dispatcher.clone(), dispatcher.clone(), Arc::new(Notify::new()));
    let recording = dispatcher.clone();
    let recorder = spawn_recorder(WEBHOOK_IN_FLIGHT, move |attempts: Vec<atlas_webhooks::Attempted>| {
        let recording = recording.clone();
        async move { recording.record(attempts).await }
    });
    spawn_claiming_loop(
        WEBHOOK_IN_FLIGHT,
        claims_wake,
        rescan.clone(),
        pace,
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
        move || {
            let prober = prober.clone();
            async move {
                prober.next_due_in().await.unwrap_or_else(|e| {
                    tracing::warn!(error = ?e, "reading the deliveries' next due time failed");
                    None
                })
            }
        },
        move |item| {
            let (dispatcher, rescan, recorder) = (dispatcher.clone(), rescan.clone(), recorder.clone());
            async move {
                let jitter: f64 = rand::rng().random_range(0.0..1.0);
                let attempted = dispatcher.send_attempt(&item, jitter).await;
                // Successes go to the recorder, which writes them together. Any other outcome
                // is recorded here, beside the others' (each takes its own statements), so an
                // endpoint failing many attempts at once never holds up another's successes.
                // `None`: no report came back (the recorder is gone: the worker is stopping).
                let recorded = if attempted.record.next == atlas_webhooks::AfterAttempt::Succeed {
                    via_recorder(&recorder, attempted).await
                } else {
                    dispatcher.record(vec![attempted]).await.pop()
                };
                match recorded {
                    None => {
                        tracing::warn!(delivery = %item.id, "webhook attempt not reported by the recorder; it returns after its lease");
                    }
                    Some(Ok(report)) => {
                        if let Some(reason) = report.disabled {
                            tracing::warn!(endpoint = %item.endpoint_id, ?reason, "webhook endpoint disabled");
                        }
                        if matches!(report.next, atlas_webhooks::AfterAttempt::Retry { .. }) {
                            rescan.notify_one();
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(delivery = %item.id, error = ?e, "webhook attempt not recorded; it returns after its lease");
                        rescan.notify_one();
                    }
                }
            }
        },
    );
}

/// A success waiting for its recorder, and where its outcome goes.
type Recording<T, R> = (T, oneshot::Sender<R>);

/// Starts a recorder: a task that records successes as they arrive, together. Each call of
/// `record` takes every success that arrived while the one before was written (at most
/// `limit`: the worker's slots), so an idle worker records a success at once and a busy one
/// many per transaction; `record` returns one outcome per success, in order. Runs until every
/// sender is gone.
fn spawn_recorder<T, R, F, Fut>(limit: u32, record: F) -> mpsc::UnboundedSender<Recording<T, R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(Vec<T>) -> Fut + Send + 'static,
    Fut: Future<Output = Vec<R>> + Send,
{
    let (sender, mut successes) = mpsc::unbounded_channel::<Recording<T, R>>();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while successes.recv_many(&mut batch, limit as usize).await > 0 {
            let (successes, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
            for (reply, outcome) in replies.into_iter().zip(record(successes).await) {
                // The success's task is gone only when the worker stopped: nothing waits.
                let _ = reply.send(outcome);
            }
        }
    });
    sender
}

/// Hands `success` to `recorder` and waits for its outcome; `None` when no outcome came back
/// (the recorder is gone: the worker is stopping).
async fn via_recorder<T, R>(recorder: &mpsc::UnboundedSender<Recording<T, R>>, success: T) -> Option<R> {
    let (reply, outcome) = oneshot::channel();
    recorder.send((success, reply)).ok()?;
    outcome.await.ok()
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

/// Runs queued runbook executions until `stop` turns true: claims one (`FOR UPDATE SKIP
/// LOCKED`, under a lease), runs its steps in order and records them; `wake.runbooks` wakes
/// the idle loop when this process queues one.
pub fn spawn_runbook_worker(state: AppState, pace: Pace, mut stop: watch::Receiver<bool>) {
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
                _ = tokio::time::sleep(pace.fallback_poll) => {}
                _ = state.wake.runbooks.notified() => {}
                _ = stop.changed() => {}
            }
        }
    });
}

/// Keeps the PostgreSQL tables vacuumed and analysed (`SqlStore::upkeep`: the tables whose
/// rows churned, so the queues' probes never walk dead row versions) every `every`, the first
/// after one period, until `stop` turns true. Nothing on SQLite, or when `every` is zero
/// (`ATLAS_DB_UPKEEP_SECS=0`). A failure is logged and tried again at the next period.
pub fn spawn_db_upkeep(store: atlas_store_sql::SqlStore, every: Duration, mut stop: watch::Receiver<bool>) {
    if every.is_zero() || store.backend_name() != "postgres" {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            match store.upkeep().await {
                Ok(done) if !done.is_empty() => tracing::debug!(vacuumed = ?done.vacuumed, analyzed = ?done.analyzed, "database upkeep"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "database upkeep failed; tried again at the next period"),
            }
        }
    });
}

/// Listens for the database's work notifications (PostgreSQL's `LISTEN atlas_work`; nothing on
/// SQLite) until `stop` turns true, and wakes this process's loops: `outbox` wakes the outbox
/// worker, `webhook_events` the fan-out, `webhook_deliveries` the delivery claims,
/// `runbook_executions` the runbook worker. After the connection was lost and made again
/// (notifications sent meanwhile are lost) it wakes every loop once. A failure to connect is
/// retried every [`LISTENER_RETRY`]; meanwhile the fallback poll keeps work moving.
pub fn spawn_work_listener(store: atlas_store_sql::SqlStore, wake: Arc<atlas_http::Wake>, mut stop: watch::Receiver<bool>) {
    use atlas_store_sql::{WorkNotice, WorkQueue};
    let wake_all = |wake: &atlas_http::Wake| {
        wake.outbox.notify_one();
        wake.webhooks.notify_one();
        wake.deliveries.notify_one();
        wake.runbooks.notify_one();
        wake.agents.notify_one();
    };
    tokio::spawn(async move {
        let mut listener = None;
        loop {
            if *stop.borrow() {
                break;
            }
            let Some(active) = listener.as_mut() else {
                match store.listen_for_work().await {
                    Ok(Some(made)) => {
                        listener = Some(made);
                        // Whatever was notified before the listener existed.
                        wake_all(&wake);
                        continue;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = ?e, "work listener not connected; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(LISTENER_RETRY) => {}
                            _ = stop.changed() => {}
                        }
                        continue;
                    }
                }
            };
            tokio::select! {
                notice = active.next() => match notice {
                    Ok(WorkNotice::Queued(WorkQueue::Outbox)) => wake.outbox.notify_one(),
                    Ok(WorkNotice::Queued(WorkQueue::WebhookEvents)) => {
                        // An event may be an inbound message an agent answers.
                        wake.webhooks.notify_one();
                        wake.agents.notify_one();
                    }
                    Ok(WorkNotice::Queued(WorkQueue::WebhookDeliveries)) => wake.deliveries.notify_one(),
                    Ok(WorkNotice::Queued(WorkQueue::RunbookExecutions)) => wake.runbooks.notify_one(),
                    Ok(WorkNotice::Reconnected) => {
                        tracing::info!("work listener reconnected");
                        wake_all(&wake);
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "work listener failed; connecting again");
                        listener = None;
                        tokio::select! {
                            _ = tokio::time::sleep(LISTENER_RETRY) => {}
                            _ = stop.changed() => {}
                        }
                    }
                },
                _ = stop.changed() => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    //! The claiming loop's waking, with fake claims over real (short) time: each test bounds
    //! what the loop did within a window, so a slow machine can only make the loop do less.
    use super::*;
    use std::sync::atomic::AtomicU32;
    use tokio::sync::oneshot;

    /// Counts calls; `claim` answers one item (`()`) once `ready` says so.
    #[derive(Default)]
    struct Probe {
        claims: AtomicU32,
        due_reads: AtomicU32,
    }

    fn start(
        pace: Pace,
        wake: Arc<Notify>,
        probe: Arc<Probe>,
        ready: impl Fn() -> bool + Send + Sync + 'static,
        due: Option<Duration>,
    ) -> (watch::Sender<bool>, oneshot::Receiver<()>) {
        let (stop, stopped) = watch::channel(false);
        let (ran, ran_rx) = oneshot::channel();
        let ran = Arc::new(std::sync::Mutex::new(Some(ran)));
        let (claims, reads) = (probe.clone(), probe);
        let ready = Arc::new(ready);
        let taken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        spawn_claiming_loop(
            4,
            wake,
            Arc::new(Notify::new()),
            pace,
            stopped,
            move |_| {
                claims.claims.fetch_add(1, Ordering::SeqCst);
                let item = ready() && !taken.swap(true, Ordering::SeqCst);
                async move {
                    if item {
                        vec![()]
                    } else {
                        Vec::new()
                    }
                }
            },
            move || {
                reads.due_reads.fetch_add(1, Ordering::SeqCst);
                async move { due }
            },
            move |()| {
                let ran = ran.clone();
                async move {
                    if let Some(ran) = ran.lock().unwrap().take() {
                        let _ = ran.send(());
                    }
                }
            },
        );
        (stop, ran_rx)
    }

    #[tokio::test]
    async fn an_idle_loop_claims_once_per_fallback_poll_and_reads_the_due_time_once() {
        let probe = Arc::new(Probe::default());
        let pace = Pace { fallback_poll: Duration::from_millis(100) };
        let (stop, _ran) = start(pace, Arc::new(Notify::new()), probe.clone(), || false, None);
        let window = Duration::from_millis(1000);
        tokio::time::sleep(window).await;
        let _ = stop.send(true);
        let claims = probe.claims.load(Ordering::SeqCst);
        // One claim at start, then at most one per fallback period.
        assert!(claims <= 1 + 10 + 1, "{claims} claims in {window:?} with a 100 ms fallback poll");
        assert!(claims >= 2, "the fallback poll looks again ({claims} claims)");
        assert_eq!(probe.due_reads.load(Ordering::SeqCst), 1, "nothing happened, so the due time is read once");
    }

    #[tokio::test]
    async fn an_idle_loop_sleeps_until_the_next_due_instant() {
        let probe = Arc::new(Probe::default());
        let pace = Pace { fallback_poll: Duration::from_secs(3600) };
        let due = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let (stop, ran) =
            start(pace, Arc::new(Notify::new()), probe.clone(), move || started.elapsed() >= Duration::from_millis(300), Some(due));
        tokio::time::timeout(Duration::from_secs(10), ran).await.expect("the due item is claimed without a fallback poll").unwrap();
        assert!(started.elapsed() >= due, "not claimed before it was due");
        let _ = stop.send(true);
        // The first claim (nothing due), the one at the due instant, and perhaps the next one
        // (which looks for more at once): no poll in between.
        let claims = probe.claims.load(Ordering::SeqCst);
        assert!((2..=3).contains(&claims), "{claims} claims");
    }

    #[tokio::test]
    async fn a_wake_up_claims_at_once() {
        let probe = Arc::new(Probe::default());
        let pace = Pace { fallback_poll: Duration::from_secs(3600) };
        let wake = Arc::new(Notify::new());
        let queued = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = queued.clone();
        let (stop, ran) = start(pace, wake.clone(), probe.clone(), move || seen.load(Ordering::SeqCst), None);
        while probe.due_reads.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        queued.store(true, Ordering::SeqCst);
        wake.notify_one();
        tokio::time::timeout(Duration::from_secs(10), ran).await.expect("a wake-up makes the loop claim").unwrap();
        let _ = stop.send(true);
        let claims = probe.claims.load(Ordering::SeqCst);
        // One claim at start, one for the wake-up, perhaps the next one (which looks for more).
        assert!((2..=3).contains(&claims), "{claims} claims");
    }

    /// Work that arrives at an idle loop (a wake-up) under a cap is claimed item after item as
    /// the loop's own items finish: the due time is read again after the wake-up (the earlier
    /// read said "nothing at all"), and a finished item frees the cap at once, not a blocked
    /// poll later. Time is paused: the instants are the runtime's, advanced only by the sleeps,
    /// so the figures are exact whatever the machine does.
    #[tokio::test(start_paused = true)]
    async fn capped_work_is_claimed_as_the_loops_own_items_finish() {
        const ITEMS: u32 = 3;
        const WORK: Duration = Duration::from_millis(10);
        let (stop, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let arrived = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The cap is one item at a time; work stays due until every item ran.
        let holding = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (claimed, finished) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let (hold, release, count, done) = (holding.clone(), holding, claimed.clone(), finished.clone());
        let (work_claimable, work_due) = (arrived.clone(), arrived.clone());
        spawn_claiming_loop(
            4,
            wake.clone(),
            Arc::new(Notify::new()),
            Pace { fallback_poll: Duration::from_secs(3600) },
            stopped,
            move |_| {
                let item =
                    work_claimable.load(Ordering::SeqCst) && count.load(Ordering::SeqCst) < ITEMS && !hold.swap(true, Ordering::SeqCst);
                if item {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                async move {
                    if item {
                        vec![()]
                    } else {
                        Vec::new()
                    }
                }
            },
            move || {
                let due = work_due.load(Ordering::SeqCst).then_some(Duration::ZERO);
                async move { due }
            },
            move |()| {
                let (release, done) = (release.clone(), done.clone());
                async move {
                    tokio::time::sleep(WORK).await;
                    release.store(false, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                }
            },
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        let started = tokio::time::Instant::now();
        arrived.store(true, Ordering::SeqCst);
        wake.notify_one();
        while finished.load(Ordering::SeqCst) < ITEMS && started.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let _ = stop.send(true);
        let took = started.elapsed();
        assert_eq!((claimed.load(Ordering::SeqCst), finished.load(Ordering::SeqCst)), (ITEMS, ITEMS), "after {took:?}");
        // Each item claimed when the one before finished: the items' own time plus the probe's
        // 1 ms steps, never a blocked poll (250 ms) or a fallback poll in between.
        assert!(took < BLOCKED_POLL, "{ITEMS} capped items of {WORK:?} took {took:?}");
    }

    #[test]
    fn a_nap_never_passes_the_fallback_poll() {
        let pace = Pace { fallback_poll: Duration::from_secs(10) };
        assert_eq!(nap_length(Nap::Fallback, pace), Duration::from_secs(10));
        assert_eq!(nap_length(Nap::For(Duration::from_secs(3)), pace), Duration::from_secs(3));
        assert_eq!(nap_length(Nap::For(Duration::from_secs(60)), pace), Duration::from_secs(10));
        assert_eq!(nap_length(Nap::For(Duration::ZERO), pace), BLOCKED_POLL);
        let fast = Pace { fallback_poll: Duration::from_millis(50) };
        assert_eq!(nap_length(Nap::For(Duration::ZERO), fast), Duration::from_millis(50));
    }
}
