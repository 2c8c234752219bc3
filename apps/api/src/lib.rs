//! The Atlas server as a library: settings, wiring adapters into the use cases, the first-start
//! organization, and a running server handle. `main.rs` is a thin CLI over this, and the
//! end-to-end tests start the same server in-process on a random port.

pub mod agent_worker;
pub mod cipher;
pub mod cli;
pub mod config;
pub mod passwords;
mod secret;
pub mod telemetry;
pub mod worker;

use atlas_accounts::{Accounts, SecretHasher};
use atlas_conversations::{ChannelProvider, ChannelSecrets, ConnectChannel, Delivery, Messaging, ProviderByKind, RetryPolicy};
use atlas_http::{AppState, HttpConfig, JwtKeys, Metrics, ReadinessCheck};
use atlas_kernel::{Clock, SystemClock};
use atlas_ratelimit::{FallbackLimiter, InProcessLimiter, Policies, RateLimiter};
use atlas_runs::JournalEntry;
use atlas_scopes::ScopeSet;
use atlas_store_sql::SqlStore;
use atlas_webhooks::{Dispatcher, WebhookConfig, Webhooks};
use atlas_whatsapp::{GraphClient, MetaWebhook, SandboxProvider, SandboxReceipt, WhatsAppProvider};
use config::Settings;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Setting(#[from] config::SettingError),
    #[error("database: {0:?}")]
    Database(atlas_kernel::StoreError),
    #[error("first start: {0}")]
    FirstStart(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("{0}")]
    Secret(String),
}

/// The adapters and use cases, wired.
#[derive(Debug, Clone)]
pub struct Wiring {
    pub store: SqlStore,
    pub state: AppState,
    pub fallback: Option<Arc<FallbackLimiter>>,
    /// The outbox delivery step (the worker drives it).
    pub delivery: Arc<Delivery>,
    /// The webhook delivery step (the webhook worker drives it).
    pub dispatcher: Arc<Dispatcher>,
    pub counters: Arc<worker::OutboxCounters>,
    /// The sandbox's receipts, taken by the first `start`.
    sandbox_receipts: Arc<Mutex<Option<mpsc::UnboundedReceiver<SandboxReceipt>>>>,
}

#[derive(Debug)]
struct DatabaseReady(SqlStore);

#[async_trait::async_trait]
impl ReadinessCheck for DatabaseReady {
    fn name(&self) -> &'static str {
        "database"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| format!("{e}"))
    }
}

#[derive(Debug)]
struct RedisReady(Arc<FallbackLimiter>);

#[async_trait::async_trait]
impl ReadinessCheck for RedisReady {
    fn name(&self) -> &'static str {
        "redis"
    }
    async fn check(&self) -> Result<(), String> {
        if self.0.is_degraded() {
            Err("unreachable; rate limits are served from local buckets".into())
        } else {
            Ok(())
        }
    }
    fn critical(&self) -> bool {
        false
    }
}

/// Connects the adapters named by `settings` and builds the application state.
///
/// # Errors
/// When the database cannot be reached or migrated, or the secret key is unusable.
pub async fn wire(settings: &Settings, clock: Arc<dyn Clock>) -> Result<Wiring, StartError> {
    let store = SqlStore::connect_with_pool(&settings.database_url, settings.database_pool).await.map_err(StartError::Database)?;
    if settings.migrate_on_start {
        store.migrate().await.map_err(StartError::Database)?;
    }
    let secrets = secret::Secrets::resolve(settings)?;
    // The store seals secrets at rest (webhook secrets, idempotent answers that show a secret)
    // with the cipher that seals channel secrets.
    let store = store
        .with_secret_cipher(Arc::new(cipher::ChannelCipher::new(&secrets.channel_key)))
        .with_send_batching(std::time::Duration::from_millis(settings.send_batch_window_ms));
    let accounts = Arc::new(
        Accounts::new(Arc::new(store.clone()), SecretHasher::new(secrets.pepper.clone()), clock.clone())
            .with_password_hashing(Arc::new(passwords::BlockingArgon2)),
    );
    let metrics = Arc::new(Metrics::default());

    let mut policies = Policies::new();
    for (class, policy) in &settings.rate_limits {
        policies.set_default(*class, *policy);
    }
    for (org, class, policy) in &settings.rate_limit_overrides {
        policies.set_override(*org, *class, *policy);
    }

    let mut readiness: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(DatabaseReady(store.clone()))];
    let local = InProcessLimiter::new(clock.clone());
    let (limiter, fallback): (Arc<dyn RateLimiter>, Option<Arc<FallbackLimiter>>) = match &settings.redis_url {
        None => (Arc::new(local), None),
        Some(url) => {
            let primary: Arc<dyn RateLimiter> = match atlas_store_redis::RedisRateLimiter::connect(url).await {
                Ok(redis) => Arc::new(redis),
                Err(e) => {
                    tracing::warn!(error = %e, "Redis unreachable at start; rate limits use local buckets until it answers");
                    let lazy = atlas_store_redis::RedisRateLimiter::connect_lazy(url)
                        .map_err(|e| StartError::Secret(format!("ATLAS_REDIS_URL: {e}")))?;
                    Arc::new(lazy)
                }
            };
            let fallback = Arc::new(
                FallbackLimiter::new(primary, local)
                    .on_fallback(|e| tracing::warn!(error = %e, "Redis rate limiter unreachable; serving from local buckets"))
                    .on_recovery(|| tracing::info!("Redis rate limiter reachable again")),
            );
            let counter = fallback.clone();
            metrics.register_gauge(
                "atlas_ratelimit_fallbacks_total",
                "Rate-limit checks served locally because Redis failed.",
                move || counter.fallbacks(),
            );
            readiness.push(Arc::new(RedisReady(fallback.clone())));
            (fallback.clone(), Some(fallback))
        }
    };

    finish(settings, store, accounts, metrics, policies, readiness, limiter, fallback, clock, &secrets)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    settings: &Settings,
    store: SqlStore,
    accounts: Arc<Accounts>,
    metrics: Arc<Metrics>,
    policies: Policies,
    readiness: Vec<Arc<dyn ReadinessCheck>>,
    limiter: Arc<dyn RateLimiter>,
    fallback: Option<Arc<FallbackLimiter>>,
    clock: Arc<dyn Clock>,
    secrets: &secret::Secrets,
) -> Result<Wiring, StartError> {
    let cipher = Arc::new(cipher::ChannelCipher::new(&secrets.channel_key));
    let store = store.with_secret_cipher(cipher.clone());
    let webhook_config = WebhookConfig {
        allow_private: settings.webhooks_allow_private,
        timeout: time::Duration::seconds(settings.webhook_timeout_secs as i64),
        lease: time::Duration::seconds((settings.webhook_timeout_secs as i64) * 2 + 5),
        endpoint_concurrency: settings.webhook_endpoint_concurrency,
        ..WebhookConfig::default()
    };
    let resolver = Arc::new(atlas_webhook_sender::DnsResolver);
    let webhooks = Arc::new(Webhooks::new(Arc::new(store.clone()), resolver.clone(), clock.clone(), webhook_config));
    let dispatcher = Arc::new(Dispatcher::new(
        Arc::new(store.clone()),
        Arc::new(atlas_webhook_sender::HttpSender::new()),
        resolver,
        clock.clone(),
        webhook_config,
    ));
    let policy = RetryPolicy {
        base_delay: time::Duration::milliseconds(settings.outbox_retry_base_ms as i64),
        lease: time::Duration::seconds(settings.outbox_lease_secs as i64),
        ..RetryPolicy::default()
    };
    let graph = GraphClient::new(
        &settings.whatsapp_graph_url,
        &settings.whatsapp_graph_version,
        std::time::Duration::from_secs(settings.whatsapp_timeout_secs),
    )
    .map_err(|e| StartError::Secret(format!("ATLAS_WHATSAPP_GRAPH_URL: {e}")))?;
    let whatsapp = Arc::new(WhatsAppProvider::new(graph));
    let messaging = Arc::new(
        Messaging::new(Arc::new(store.clone()), cipher.clone(), clock.clone())
            .with_send_contexts(Arc::new(store.clone()))
            .with_policy(policy)
            .with_template_source(whatsapp.clone())
            .with_webhook_decoder(Arc::new(MetaWebhook)),
    );
    let (sandbox, receipts) = SandboxProvider::new();
    let provider = Arc::new(ProviderByKind { whatsapp, sandbox: Arc::new(sandbox) });
    let delivery =
        Arc::new(Delivery::new(Arc::new(store.clone()), Arc::new(store.clone()), provider, cipher.clone(), clock.clone(), policy));
    let counters = Arc::new(worker::OutboxCounters::default());
    for (name, help, pick) in [
        ("atlas_outbox_sent_total", "Messages the provider accepted.", 0),
        ("atlas_outbox_retries_total", "Delivery attempts that will be retried.", 1),
        ("atlas_outbox_failed_total", "Messages that failed for good.", 2),
    ] {
        let c = counters.clone();
        metrics.register_gauge(name, help, move || {
            let counter = match pick {
                0 => &c.sent,
                1 => &c.retried,
                _ => &c.failed,
            };
            counter.load(std::sync::atomic::Ordering::Relaxed)
        });
    }
    let cmdb = Arc::new(atlas_cmdb::Cmdb::new(Arc::new(store.clone()), clock.clone()));
    let change_policy =
        atlas_itsm::ChangePolicy { normal_quorum: settings.change_quorum_normal, emergency_quorum: settings.change_quorum_emergency };
    let changes = Arc::new(atlas_itsm::Changes::new(Arc::new(store.clone()), cmdb.clone(), clock.clone(), change_policy));
    let service_desk = Arc::new(atlas_itsm::ServiceDesk::new(Arc::new(store.clone()), clock.clone()));
    let rca_config = atlas_itsm::RcaConfig {
        look_back: time::Duration::seconds(i64::try_from(settings.rca_look_back_secs).unwrap_or(86_400)),
        ..atlas_itsm::RcaConfig::default()
    };
    let incident_history = Arc::new(atlas_itsm::IncidentRecords::new(Arc::new(store.clone())));
    let root_causes = Arc::new(atlas_itsm::RootCauses::new(Arc::new(store.clone()), cmdb.clone(), incident_history, rca_config));
    let work = Arc::new(atlas_tasks::Work::new(Arc::new(store.clone()), clock.clone()));
    let agents = Arc::new(atlas_agents::Agents::new(Arc::new(store.clone()), cipher.clone(), clock.clone()));
    let chat_model = Arc::new(atlas_llm_openai::OpenAiChat::new(std::time::Duration::from_secs(settings.llm_timeout_secs)));
    let state = AppState {
        accounts,
        messaging,
        webhooks,
        runs: Arc::new(store.clone()),
        idempotency: Arc::new(store.clone()),
        limiter,
        policies: Arc::new(policies),
        clock: clock.clone(),
        jwt: Arc::new(JwtKeys::from_secret(&secrets.jwt)),
        metrics,
        readiness,
        config: HttpConfig {
            max_body_bytes: settings.max_body_bytes,
            trusted_proxies: settings.trusted_proxies.clone(),
            mcp_allowed_hosts: settings.mcp_allowed_hosts.clone(),
        },
        wake: Arc::new(atlas_http::Wake::default()),
        cmdb: cmdb.clone(),
        changes,
        service_desk,
        root_causes,
        incidents: Arc::new(atlas_incidents::Incidents::new(
            Arc::new(store.clone()),
            clock.clone(),
            atlas_incidents::IncidentsConfig { reopen_window: settings.incident_reopen_window },
        )),
        runbooks: Arc::new(atlas_runbooks::Runbooks::new(
            Arc::new(store.clone()),
            Arc::new(atlas_webhook_sender::HttpSender::new()),
            Arc::new(atlas_webhook_sender::DnsResolver),
            clock.clone(),
            atlas_runbooks::RunbooksConfig {
                allow_private: settings.webhooks_allow_private,
                step_timeout: time::Duration::seconds(settings.webhook_timeout_secs as i64),
                lease: time::Duration::seconds((settings.webhook_timeout_secs as i64) * 60 + 5),
            },
        )),
        work,
        agents,
        chat_model,
        knowledge: Arc::new(atlas_knowledge::Knowledge::new(Arc::new(store.clone()), clock.clone())),
    };
    Ok(Wiring { store, state, fallback, delivery, dispatcher, counters, sandbox_receipts: Arc::new(Mutex::new(Some(receipts))) })
}

/// On an empty database, creates the default organization and returns its id and admin key (to
/// be printed once); on any other start, `None`. Of replicas starting together on one empty
/// database, exactly one gets the key.
///
/// # Errors
/// When the store fails.
pub async fn first_start(state: &AppState) -> Result<Option<(String, String)>, StartError> {
    let journal = |created: &atlas_accounts::NewOrganization| {
        operator_journal(created.organization.id, "orgs.create", created.organization.id.to_string())
    };
    let entropy: [u8; 30] = random_bytes();
    let Some(created) = state
        .accounts
        .create_default_organization("Default", &entropy, &journal)
        .await
        .map_err(|e| StartError::FirstStart(e.to_string()))?
    else {
        return Ok(None);
    };
    let org_id = created.organization.id;
    let created = (org_id.to_string(), created.admin_key.token.expose().to_owned());
    let sandbox = ConnectChannel {
        provider: ChannelProvider::Sandbox,
        name: "Sandbox".into(),
        phone_number_id: "sandbox".into(),
        display_phone_number: "+10000000000".into(),
        verify_token: String::new(),
        secrets: ChannelSecrets { access_token: String::new(), app_secret: String::new() },
        waba_id: None,
        is_default: None,
    };
    let journal = |channel: &atlas_conversations::Channel| operator_journal(org_id, "channels.create", channel.id.to_string());
    state
        .messaging
        .connect_channel(org_id, sandbox, &journal)
        .await
        .map_err(|e| StartError::FirstStart(format!("sandbox channel: {e}")))?;
    // The built-in `faq` agent (no LLM) on the sandbox, so a first start can show an agent
    // answering a customer from the knowledge base (and handing off when it cannot). It starts
    // paused: an active agent hands off every conversation it cannot answer, which would turn
    // the Agent tool API's sends on the sandbox into CONVERSATION_HANDED_OFF before anyone chose
    // to have an agent there. `PATCH /v1/atlas/agents/{id} {"status": "active"}` starts it.
    let sandbox =
        state.messaging.channels(org_id, &atlas_kernel::PageRequest::default()).await.ok().and_then(|p| p.items.first().map(|c| c.id));
    let faq = atlas_agents::AgentDraft {
        name: "FAQ".into(),
        role: Some("faq".into()),
        kind: atlas_agents::AgentKind::Hosted,
        maturity_level: atlas_agents::Maturity::Autonomous,
        status: atlas_agents::AgentStatus::Paused,
        serves: atlas_agents::Serves { channel_ids: sandbox.into_iter().collect(), conversation_ids: Vec::new() },
        hosted: Some(atlas_agents::HostedSettings { model: Some(atlas_agents::FAQ_MODEL.into()), ..Default::default() }),
        url: None,
    };
    let journal = |agent: &atlas_agents::Agent| operator_journal(org_id, "agents.create", agent.id.to_string());
    state.agents.create(org_id, faq, None, None, &journal).await.map_err(|e| StartError::FirstStart(format!("faq agent: {e}")))?;
    Ok(Some(created))
}

/// Creates an organization from the operator's side (CLI, first start); returns its id and
/// admin key.
///
/// # Errors
/// When the name is refused or the store fails.
pub async fn create_organization(state: &AppState, name: &str, extra: ScopeSet) -> Result<(String, String), StartError> {
    let journal = |created: &atlas_accounts::NewOrganization| {
        operator_journal(created.organization.id, "orgs.create", created.organization.id.to_string())
    };
    let entropy: [u8; 30] = random_bytes();
    let created =
        state.accounts.create_organization(name, extra, &entropy, &journal).await.map_err(|e| StartError::FirstStart(e.to_string()))?;
    Ok((created.organization.id.to_string(), created.admin_key.token.expose().to_owned()))
}

/// The journal entry of an operator command (CLI): a succeeded run by the system actor.
pub fn operator_journal(org_id: atlas_kernel::OrgId, operation: &str, resource_id: String) -> JournalEntry {
    JournalEntry::by_system(org_id, operation, resource_id, "cli".into(), time::OffsetDateTime::now_utc())
}

/// `N` random bytes from the operating system's generator (key and secret material).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    bytes
}

/// A server listening in this process.
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The admin key printed on first start, if this start created the default organization.
    pub first_admin_key: Option<String>,
    pub wiring: Wiring,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, finishes in-flight requests, and waits.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Wires, migrates, listens on `settings.bind` (port 0 for any), and only then runs the first
/// start: a start that cannot bind creates nothing, so the next start still prints a key.
///
/// # Errors
/// As [`wire`], or when the address cannot be bound.
pub async fn start(settings: &Settings) -> Result<RunningServer, StartError> {
    start_with_clock(settings, Arc::new(SystemClock)).await
}

/// [`start`] with a given clock (tests move time).
///
/// # Errors
/// As [`start`].
pub async fn start_with_clock(settings: &Settings, clock: Arc<dyn Clock>) -> Result<RunningServer, StartError> {
    let wiring = wire(settings, clock).await?;
    let listener = TcpListener::bind(settings.bind).await.map_err(|e| StartError::Bind(settings.bind, e))?;
    let addr = listener.local_addr().map_err(|e| StartError::Bind(settings.bind, e))?;
    let first_admin_key = first_start(&wiring.state).await?.map(|(_, key)| key);
    let (shutdown, mut stopped) = watch::channel(false);
    spawn_janitor(&wiring.state, shutdown.subscribe());
    worker::spawn_retention_janitor(
        Arc::new(wiring.store.clone()),
        Arc::new(wiring.store.clone()),
        wiring.state.clock.clone(),
        time::Duration::days(i64::from(settings.retention_days)),
        shutdown.subscribe(),
    );
    worker::spawn_db_upkeep(wiring.store.clone(), std::time::Duration::from_secs(settings.db_upkeep_secs), shutdown.subscribe());
    if settings.workers {
        let pace = worker::Pace::of(settings);
        worker::spawn_work_listener(wiring.store.clone(), wiring.state.wake.clone(), shutdown.subscribe());
        worker::spawn_outbox_worker(
            wiring.state.clone(),
            wiring.delivery.clone(),
            settings.channel_rate_limit,
            settings.outbox_per_channel,
            wiring.counters.clone(),
            pace,
            shutdown.subscribe(),
        );
        worker::spawn_webhook_worker(wiring.state.clone(), wiring.dispatcher.clone(), pace, shutdown.subscribe());
        worker::spawn_runbook_worker(wiring.state.clone(), pace, shutdown.subscribe());
        agent_worker::spawn_agent_worker(wiring.state.clone(), pace.fallback_poll, shutdown.subscribe());
    }
    if let Some(receipts) = wiring.sandbox_receipts.lock().ok().and_then(|mut r| r.take()) {
        worker::spawn_sandbox_reporter(wiring.state.clone(), receipts);
    }
    let app = atlas_http::router(wiring.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        let graceful = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(graceful).await {
            tracing::error!(error = %e, "server stopped");
        }
    });
    Ok(RunningServer { addr, first_admin_key, wiring, shutdown, task })
}

/// Removes idempotency records past retention every ten minutes.
fn spawn_janitor(state: &AppState, mut stop: watch::Receiver<bool>) {
    let store = state.idempotency.clone();
    let clock = state.clock.clone();
    tokio::spawn(async move {
        loop {
            match store.purge_expired(clock.now()).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "expired idempotency records removed"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "idempotency janitor failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(600)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    });
}
