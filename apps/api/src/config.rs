//! Settings: embedded defaults, then an optional TOML file (`--config` or `ATLAS_CONFIG`),
//! then `ATLAS_*` environment variables; validated at start-up with one clear message per bad
//! value. docs/operations.md lists every setting and its default.

use atlas_kernel::OrgId;
use atlas_ratelimit::{Policy, RouteClass};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database_url: String,
    pub redis_url: Option<String>,
    /// `None` on SQLite until the key file is read or made.
    pub secret_key: Option<String>,
    pub jwt_secret: Option<String>,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    pub webhooks_allow_private: bool,
    pub whatsapp_graph_url: String,
    pub whatsapp_graph_version: String,
    /// Default policies per class (`ATLAS_RATE_LIMIT_<CLASS>=60/min`).
    pub rate_limits: BTreeMap<RouteClass, Policy>,
    /// Per-organization overrides (`ATLAS_RATE_LIMIT_OVERRIDES=org_…:messages=600/min,…`).
    pub rate_limit_overrides: Vec<(OrgId, RouteClass, Policy)>,
    /// Whether `serve` runs migrations before it listens.
    pub migrate_on_start: bool,
    /// Sends per channel (`ATLAS_CHANNEL_RATE_LIMIT`, default 80/s).
    pub channel_rate_limit: Policy,
    /// How long a claimed outbox row stays with its worker (`ATLAS_OUTBOX_LEASE_SECS`).
    pub outbox_lease_secs: u64,
    /// The first retry delay of a failed delivery (`ATLAS_OUTBOX_RETRY_BASE_MS`).
    pub outbox_retry_base_ms: u64,
    /// How long a send waits for concurrent sends to share its statement and commit on
    /// PostgreSQL (`ATLAS_SEND_BATCH_WINDOW_MS`; 0 turns group commit off).
    pub send_batch_window_ms: u64,
    /// Whether this process runs the outbox and webhook workers (`ATLAS_WORKERS`).
    pub workers: bool,
    /// How long a webhook attempt may take (`ATLAS_WEBHOOK_TIMEOUT_SECS`).
    pub webhook_timeout_secs: u64,
    /// PostgreSQL connections at most (`ATLAS_DATABASE_POOL`).
    pub database_pool: u32,
    /// Approvals a normal change needs (`ATLAS_CHANGE_QUORUM_NORMAL`, default 1).
    pub change_quorum_normal: u32,
    /// Approvals an emergency change needs (`ATLAS_CHANGE_QUORUM_EMERGENCY`, default 1).
    pub change_quorum_emergency: u32,
    /// How far before an incident root-cause analysis looks (`ATLAS_RCA_LOOK_BACK_SECS`, default 86400).
    pub rca_look_back_secs: u64,
    /// A resolved incident whose dedup key fires again within this long is reopened
    /// (`ATLAS_INCIDENT_REOPEN_WINDOW`, default 1h).
    pub incident_reopen_window: time::Duration,
    /// Proxies whose `X-Forwarded-For` is believed (`ATLAS_TRUSTED_PROXIES`, CIDRs; default none).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The `Host` values the MCP server at `/mcp` accepts (`ATLAS_MCP_ALLOWED_HOSTS`, comma
    /// separated `name` or `name:port`; default `localhost,127.0.0.1,::1`; `*` accepts any).
    pub mcp_allowed_hosts: Vec<String>,
    /// How long one Graph API call may take (`ATLAS_WHATSAPP_TIMEOUT_SECS`); the outbox lease
    /// must exceed it plus the channel-quota wait and a margin.
    pub whatsapp_timeout_secs: u64,
    /// How long one call to a hosted agent's chat model may take (`ATLAS_LLM_TIMEOUT_SECS`).
    pub llm_timeout_secs: u64,
    /// Deliveries of one webhook endpoint in flight at once (`ATLAS_WEBHOOK_ENDPOINT_CONCURRENCY`).
    pub webhook_endpoint_concurrency: u32,
    /// Outbox rows of one channel leased at once, across every process
    /// (`ATLAS_OUTBOX_PER_CHANNEL`, default [`crate::worker::OUTBOX_PER_CHANNEL`]): what one
    /// channel's sends may have in flight, so what one throttled channel may hold of a
    /// process's [`crate::worker::OUTBOX_IN_FLIGHT`] slots.
    pub outbox_per_channel: u32,
    /// Days finished outbox rows, webhook events, deliveries and attempts are kept
    /// (`ATLAS_RETENTION_DAYS`).
    pub retention_days: u32,
    /// How often an idle worker looks for work nobody told it about
    /// (`ATLAS_WORKER_FALLBACK_POLL_MS`, default 10000): on PostgreSQL workers wake on
    /// `LISTEN/NOTIFY` and on this process's own work, so this only catches what a lost
    /// notification missed; on SQLite the one process wakes its workers itself.
    pub worker_fallback_poll_ms: u64,
    /// How often this process VACUUMs and ANALYZEs the PostgreSQL tables whose rows churned
    /// (`ATLAS_DB_UPKEEP_SECS`, default [`DEFAULT_DB_UPKEEP_SECS`]; 0 turns it off): see
    /// `atlas_store_sql::SqlStore::upkeep`. SQLite ignores it.
    pub db_upkeep_secs: u64,
}

/// The default group-commit window of sends, in milliseconds (`ATLAS_SEND_BATCH_WINDOW_MS`).
pub const SEND_BATCH_WINDOW_MS: u64 = 0;
/// The default of `ATLAS_WORKER_FALLBACK_POLL_MS`.
pub const DEFAULT_WORKER_FALLBACK_POLL_MS: u64 = 10_000;
/// The default of `ATLAS_DB_UPKEEP_SECS`.
pub const DEFAULT_DB_UPKEEP_SECS: u64 = 10;

/// What the outbox lease must cover beyond the provider call and the quota wait: reading the
/// row, unsealing the channel's secrets, and committing the outcome.
pub const OUTBOX_LEASE_MARGIN_MS: u64 = 2000;

/// The shortest outbox lease that keeps a live worker's row from being claimed again: the
/// provider timeout, plus the longest wait for the channel's quota (a claim holds at most
/// `per_channel` rows of one channel, admitted `cap.limit()` per `cap.period()`), plus
/// [`OUTBOX_LEASE_MARGIN_MS`].
pub fn minimum_outbox_lease_ms(provider_timeout_secs: u64, cap: &Policy, per_channel: u32) -> u64 {
    let period_ms = u64::try_from(cap.period().whole_milliseconds()).unwrap_or(u64::MAX);
    let quota_wait_ms = (u64::from(per_channel) * period_ms).div_ceil(u64::from(cap.limit().max(1)));
    provider_timeout_secs.saturating_mul(1000).saturating_add(quota_wait_ms).saturating_add(OUTBOX_LEASE_MARGIN_MS)
}

/// The TOML file's shape: every key optional, named like the variables without `ATLAS_`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    bind: Option<String>,
    database_url: Option<String>,
    redis_url: Option<String>,
    secret_key: Option<String>,
    jwt_secret: Option<String>,
    log_format: Option<String>,
    max_body_bytes: Option<u64>,
    webhooks_allow_private: Option<bool>,
    whatsapp_graph_url: Option<String>,
    whatsapp_graph_version: Option<String>,
    migrate_on_start: Option<bool>,
    channel_rate_limit: Option<String>,
    outbox_lease_secs: Option<u64>,
    outbox_retry_base_ms: Option<u64>,
    send_batch_window_ms: Option<u64>,
    workers: Option<bool>,
    webhook_timeout_secs: Option<u64>,
    database_pool: Option<u64>,
    change_quorum_normal: Option<u64>,
    change_quorum_emergency: Option<u64>,
    rca_look_back_secs: Option<u64>,
    incident_reopen_window: Option<String>,
    trusted_proxies: Option<String>,
    mcp_allowed_hosts: Option<String>,
    whatsapp_timeout_secs: Option<u64>,
    llm_timeout_secs: Option<u64>,
    webhook_endpoint_concurrency: Option<u64>,
    outbox_per_channel: Option<u64>,
    retention_days: Option<u64>,
    worker_fallback_poll_ms: Option<u64>,
    db_upkeep_secs: Option<u64>,
    #[serde(default)]
    rate_limits: BTreeMap<String, String>,
    /// `{"org_…" = {"messages" = "600/min"}}`
    #[serde(default)]
    rate_limit_overrides: BTreeMap<String, BTreeMap<String, String>>,
}

/// A setting that does not make sense, named.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {name}: {message}")]
pub struct SettingError {
    pub name: String,
    pub message: String,
}

fn bad(name: &str, message: impl Into<String>) -> SettingError {
    SettingError { name: name.to_owned(), message: message.into() }
}

/// A duration written `90s`, `30m`, `1h` or `2d`.
fn parse_duration(name: &str, value: &str) -> Result<time::Duration, SettingError> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let n: i64 = digits.parse().map_err(|_| bad(name, format!("`{value}` is not a duration such as 90s, 30m or 1h")))?;
    let seconds = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(bad(name, format!("`{value}` is not a duration such as 90s, 30m or 1h"))),
    };
    Ok(time::Duration::seconds(seconds))
}

fn parse_bool(name: &str, value: &str) -> Result<bool, SettingError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(bad(name, format!("`{value}` is not true or false"))),
    }
}

/// `10.0.0.0/8, 192.168.1.7` (a bare address is a /32 or /128).
fn parse_networks(name: &str, text: &str) -> Result<Vec<ipnet::IpNet>, SettingError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| bad(name, format!("`{item}` is not an IP address or CIDR such as 10.0.0.0/8")))
        })
        .collect()
}

fn parse_overrides(name: &str, text: &str) -> Result<Vec<(OrgId, RouteClass, Policy)>, SettingError> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (org, rest) = item.split_once(':').ok_or_else(|| bad(name, format!("`{item}` is not org_…:class=limit/period")))?;
        let (class, policy) = rest.split_once('=').ok_or_else(|| bad(name, format!("`{item}` is not org_…:class=limit/period")))?;
        out.push(override_of(name, org, class, policy)?);
    }
    Ok(out)
}

fn override_of(name: &str, org: &str, class: &str, policy: &str) -> Result<(OrgId, RouteClass, Policy), SettingError> {
    let org: OrgId = org.trim().parse().map_err(|e| bad(name, format!("`{org}`: {e}")))?;
    let class = RouteClass::parse(class.trim()).map_err(|e| bad(name, e.to_string()))?;
    let policy = Policy::parse(policy.trim()).map_err(|e| bad(name, format!("`{policy}`: {e}")))?;
    Ok((org, class, policy))
}

impl Settings {
    /// Reads the settings from `file` (if any) and the environment.
    ///
    /// # Errors
    /// The first bad value, named.
    pub fn load(file: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Self, SettingError> {
        let file_path = file.map(Path::to_path_buf).or_else(|| env.get("ATLAS_CONFIG").map(PathBuf::from));
        let from_file = match &file_path {
            None => FileSettings::default(),
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| bad("ATLAS_CONFIG", format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text).map_err(|e| bad("ATLAS_CONFIG", format!("{}: {e}", path.display())))?
            }
        };
        let pick = |var: &str, from_file: Option<String>| env.get(var).cloned().or(from_file).filter(|v| !v.is_empty());

        let bind_text = pick("ATLAS_BIND", from_file.bind).unwrap_or_else(|| "127.0.0.1:8080".into());
        let bind = bind_text.parse().map_err(|_| bad("ATLAS_BIND", format!("`{bind_text}` is not host:port such as 127.0.0.1:8080")))?;

        let database_url = pick("ATLAS_DATABASE_URL", from_file.database_url).unwrap_or_else(|| "sqlite://atlas.db?mode=rwc".into());
        let is_sqlite = database_url.starts_with("sqlite:");
        if !is_sqlite && !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            return Err(bad("ATLAS_DATABASE_URL", "must start with sqlite:// or postgres://"));
        }
        let redis_url = pick("ATLAS_REDIS_URL", from_file.redis_url);
        if let Some(url) = &redis_url {
            if !url.starts_with("redis://") && !url.starts_with("rediss://") {
                return Err(bad("ATLAS_REDIS_URL", "must start with redis:// or rediss://"));
            }
        }
        let secret_key = pick("ATLAS_SECRET_KEY", from_file.secret_key);
        if let Some(key) = &secret_key {
            if key.len() < 32 {
                return Err(bad("ATLAS_SECRET_KEY", "must be at least 32 characters (e.g. `openssl rand -hex 32`)"));
            }
        } else if !is_sqlite {
            return Err(bad("ATLAS_SECRET_KEY", "is required with PostgreSQL, and every replica must share it"));
        }
        let jwt_secret = pick("ATLAS_JWT_SECRET", from_file.jwt_secret);
        if jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(bad("ATLAS_JWT_SECRET", "must be at least 32 characters"));
        }
        let log_format = match pick("ATLAS_LOG_FORMAT", from_file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(bad("ATLAS_LOG_FORMAT", format!("`{other}` is not text or json"))),
        };
        let max_body_bytes = match env.get("ATLAS_MAX_BODY_BYTES") {
            Some(v) => v.parse::<u64>().map_err(|_| bad("ATLAS_MAX_BODY_BYTES", format!("`{v}` is not a number of bytes")))?,
            None => from_file.max_body_bytes.unwrap_or(1024 * 1024),
        };
        if !(1024..=64 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(bad("ATLAS_MAX_BODY_BYTES", "must be between 1024 and 67108864"));
        }
        let webhooks_allow_private = match env.get("ATLAS_WEBHOOKS_ALLOW_PRIVATE") {
            Some(v) => parse_bool("ATLAS_WEBHOOKS_ALLOW_PRIVATE", v)?,
            None => from_file.webhooks_allow_private.unwrap_or(is_sqlite),
        };
        let migrate_on_start = match env.get("ATLAS_MIGRATE_ON_START") {
            Some(v) => parse_bool("ATLAS_MIGRATE_ON_START", v)?,
            None => from_file.migrate_on_start.unwrap_or(true),
        };
        let whatsapp_graph_url =
            pick("ATLAS_WHATSAPP_GRAPH_URL", from_file.whatsapp_graph_url).unwrap_or_else(|| "https://graph.facebook.com".into());
        if !whatsapp_graph_url.starts_with("http://") && !whatsapp_graph_url.starts_with("https://") {
            return Err(bad("ATLAS_WHATSAPP_GRAPH_URL", "must be an http(s) URL"));
        }
        let whatsapp_graph_version =
            pick("ATLAS_WHATSAPP_GRAPH_VERSION", from_file.whatsapp_graph_version).unwrap_or_else(|| "v23.0".into());
        if !whatsapp_graph_version.starts_with('v')
            || !whatsapp_graph_version[1..].split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad("ATLAS_WHATSAPP_GRAPH_VERSION", "must look like v23.0"));
        }

        let mut rate_limits = BTreeMap::new();
        for (class, text) in &from_file.rate_limits {
            let name = format!("rate_limits.{class}");
            let class = RouteClass::parse(class).map_err(|e| bad(&name, e.to_string()))?;
            rate_limits.insert(class, Policy::parse(text).map_err(|e| bad(&name, e.to_string()))?);
        }
        for class in RouteClass::ALL {
            let var = format!("ATLAS_RATE_LIMIT_{}", class.as_str().to_ascii_uppercase());
            if let Some(text) = env.get(&var) {
                rate_limits.insert(class, Policy::parse(text).map_err(|e| bad(&var, format!("`{text}`: {e}")))?);
            }
        }
        let mut rate_limit_overrides = Vec::new();
        for (org, classes) in &from_file.rate_limit_overrides {
            for (class, policy) in classes {
                rate_limit_overrides.push(override_of("rate_limit_overrides", org, class, policy)?);
            }
        }
        if let Some(text) = env.get("ATLAS_RATE_LIMIT_OVERRIDES") {
            rate_limit_overrides.extend(parse_overrides("ATLAS_RATE_LIMIT_OVERRIDES", text)?);
        }

        let channel_rate_text = pick("ATLAS_CHANNEL_RATE_LIMIT", from_file.channel_rate_limit).unwrap_or_else(|| "80/s".into());
        let channel_rate_limit =
            Policy::parse(&channel_rate_text).map_err(|e| bad("ATLAS_CHANNEL_RATE_LIMIT", format!("`{channel_rate_text}`: {e}")))?;
        let number = |var: &str, from_file: Option<u64>, default: u64, range: std::ops::RangeInclusive<u64>| -> Result<u64, SettingError> {
            let value = match env.get(var) {
                Some(v) => v.parse::<u64>().map_err(|_| bad(var, format!("`{v}` is not a whole number")))?,
                None => from_file.unwrap_or(default),
            };
            if range.contains(&value) {
                Ok(value)
            } else {
                Err(bad(var, format!("must be between {} and {}", range.start(), range.end())))
            }
        };
        let outbox_lease_secs = number("ATLAS_OUTBOX_LEASE_SECS", from_file.outbox_lease_secs, 120, 2..=3600)?;
        let outbox_retry_base_ms = number("ATLAS_OUTBOX_RETRY_BASE_MS", from_file.outbox_retry_base_ms, 2000, 1..=600_000)?;
        let send_batch_window_ms = number("ATLAS_SEND_BATCH_WINDOW_MS", from_file.send_batch_window_ms, SEND_BATCH_WINDOW_MS, 0..=1000)?;
        let webhook_timeout_secs = number("ATLAS_WEBHOOK_TIMEOUT_SECS", from_file.webhook_timeout_secs, 15, 1..=120)?;
        let database_pool = number("ATLAS_DATABASE_POOL", from_file.database_pool, 32, 1..=1000)? as u32;
        let change_quorum_normal = number("ATLAS_CHANGE_QUORUM_NORMAL", from_file.change_quorum_normal, 1, 1..=20)? as u32;
        let change_quorum_emergency = number("ATLAS_CHANGE_QUORUM_EMERGENCY", from_file.change_quorum_emergency, 1, 1..=20)? as u32;
        let rca_look_back_secs = number("ATLAS_RCA_LOOK_BACK_SECS", from_file.rca_look_back_secs, 86_400, 60..=30 * 86_400)?;
        let reopen_text = pick("ATLAS_INCIDENT_REOPEN_WINDOW", from_file.incident_reopen_window).unwrap_or_else(|| "1h".into());
        let incident_reopen_window = parse_duration("ATLAS_INCIDENT_REOPEN_WINDOW", &reopen_text)?;
        if incident_reopen_window < time::Duration::ZERO || incident_reopen_window > time::Duration::days(30) {
            return Err(bad("ATLAS_INCIDENT_REOPEN_WINDOW", "must be between 0s and 30d"));
        }
        let whatsapp_timeout_secs = number("ATLAS_WHATSAPP_TIMEOUT_SECS", from_file.whatsapp_timeout_secs, 15, 1..=120)?;
        let llm_timeout_secs = number("ATLAS_LLM_TIMEOUT_SECS", from_file.llm_timeout_secs, 60, 1..=600)?;
        let webhook_endpoint_concurrency =
            number("ATLAS_WEBHOOK_ENDPOINT_CONCURRENCY", from_file.webhook_endpoint_concurrency, 4, 1..=64)? as u32;
        let retention_days = number("ATLAS_RETENTION_DAYS", from_file.retention_days, 30, 1..=3650)? as u32;
        let worker_fallback_poll_ms =
            number("ATLAS_WORKER_FALLBACK_POLL_MS", from_file.worker_fallback_poll_ms, DEFAULT_WORKER_FALLBACK_POLL_MS, 10..=3_600_000)?;
        let db_upkeep_secs = number("ATLAS_DB_UPKEEP_SECS", from_file.db_upkeep_secs, DEFAULT_DB_UPKEEP_SECS, 0..=86_400)?;
        let outbox_per_channel = number(
            "ATLAS_OUTBOX_PER_CHANNEL",
            from_file.outbox_per_channel,
            u64::from(crate::worker::OUTBOX_PER_CHANNEL),
            1..=u64::from(crate::worker::OUTBOX_IN_FLIGHT),
        )? as u32;
        let minimum_lease_ms = minimum_outbox_lease_ms(whatsapp_timeout_secs, &channel_rate_limit, outbox_per_channel);
        if outbox_lease_secs.saturating_mul(1000) < minimum_lease_ms {
            return Err(bad(
                "ATLAS_OUTBOX_LEASE_SECS",
                format!(
                    "{outbox_lease_secs} s is too short: a lease must exceed the provider timeout (ATLAS_WHATSAPP_TIMEOUT_SECS = \
                     {whatsapp_timeout_secs} s) plus the channel-quota wait and a {} s margin, at least {} s here; otherwise \
                     a slow but live send is claimed again and sent twice",
                    OUTBOX_LEASE_MARGIN_MS / 1000,
                    minimum_lease_ms.div_ceil(1000)
                ),
            ));
        }
        let workers = match env.get("ATLAS_WORKERS") {
            Some(v) => parse_bool("ATLAS_WORKERS", v)?,
            None => from_file.workers.unwrap_or(true),
        };

        let trusted_proxies = match pick("ATLAS_TRUSTED_PROXIES", from_file.trusted_proxies) {
            Some(text) => parse_networks("ATLAS_TRUSTED_PROXIES", &text)?,
            None => Vec::new(),
        };

        let mcp_allowed_hosts = match pick("ATLAS_MCP_ALLOWED_HOSTS", from_file.mcp_allowed_hosts) {
            Some(text) if text.trim() == "*" => Vec::new(),
            Some(text) => {
                let hosts: Vec<String> = text.split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect();
                if hosts.iter().any(|h| h.contains('/') || h.contains(char::is_whitespace)) {
                    return Err(bad("ATLAS_MCP_ALLOWED_HOSTS", "comma-separated host names or host:port values, or *"));
                }
                hosts
            }
            None => atlas_http::DEFAULT_MCP_ALLOWED_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
        };

        Ok(Self {
            bind,
            database_url,
            redis_url,
            secret_key,
            jwt_secret,
            log_format,
            max_body_bytes: max_body_bytes as usize,
            webhooks_allow_private,
            whatsapp_graph_url,
            whatsapp_graph_version,
            rate_limits,
            rate_limit_overrides,
            migrate_on_start,
            channel_rate_limit,
            outbox_lease_secs,
            outbox_retry_base_ms,
            send_batch_window_ms,
            workers,
            webhook_timeout_secs,
            database_pool,
            change_quorum_normal,
            change_quorum_emergency,
            rca_look_back_secs,
            incident_reopen_window,
            trusted_proxies,
            mcp_allowed_hosts,
            whatsapp_timeout_secs,
            llm_timeout_secs,
            webhook_endpoint_concurrency,
            outbox_per_channel,
            retention_days,
            worker_fallback_poll_ms,
            db_upkeep_secs,
        })
    }

    /// Settings from the process environment.
    ///
    /// # Errors
    /// The first bad value, named.
    pub fn from_env(file: Option<&Path>) -> Result<Self, SettingError> {
        let env: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("ATLAS_")).collect();
        Self::load(file, &env)
    }

    /// Whether the database is SQLite.
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_embedded_default_needs_no_setting() {
        let s = Settings::load(None, &env(&[])).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url, "sqlite://atlas.db?mode=rwc");
        assert!(s.webhooks_allow_private);
        assert_eq!(s.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn postgres_requires_a_shared_secret_key() {
        let err = Settings::load(None, &env(&[("ATLAS_DATABASE_URL", "postgres://x/y")])).unwrap_err();
        assert_eq!(err.name, "ATLAS_SECRET_KEY");
        let ok = Settings::load(None, &env(&[("ATLAS_DATABASE_URL", "postgres://x/y"), ("ATLAS_SECRET_KEY", &"k".repeat(32))])).unwrap();
        assert!(!ok.webhooks_allow_private);
    }

    #[test]
    fn each_bad_value_is_named() {
        for (var, value) in [
            ("ATLAS_BIND", "nowhere"),
            ("ATLAS_DATABASE_URL", "mysql://x"),
            ("ATLAS_LOG_FORMAT", "xml"),
            ("ATLAS_WEBHOOKS_ALLOW_PRIVATE", "maybe"),
            ("ATLAS_RATE_LIMIT_MESSAGES", "lots"),
            ("ATLAS_RATE_LIMIT_OVERRIDES", "org_1:messages=1/min"),
            ("ATLAS_MAX_BODY_BYTES", "1"),
            ("ATLAS_CHANNEL_RATE_LIMIT", "fast"),
            ("ATLAS_OUTBOX_LEASE_SECS", "1"),
            ("ATLAS_WORKERS", "sometimes"),
            ("ATLAS_WORKER_FALLBACK_POLL_MS", "0"),
            ("ATLAS_WORKER_FALLBACK_POLL_MS", "soon"),
            ("ATLAS_INCIDENT_REOPEN_WINDOW", "an hour"),
            ("ATLAS_INCIDENT_REOPEN_WINDOW", "31d"),
            ("ATLAS_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local"),
        ] {
            let err = Settings::load(None, &env(&[(var, value)])).unwrap_err();
            assert_eq!(err.name, var, "{value}");
        }
    }

    #[test]
    fn the_reopen_window_reads_seconds_minutes_and_hours() {
        assert_eq!(Settings::load(None, &env(&[])).unwrap().incident_reopen_window, time::Duration::hours(1));
        for (text, seconds) in [("90s", 90), ("30m", 1800), ("2h", 7200)] {
            let s = Settings::load(None, &env(&[("ATLAS_INCIDENT_REOPEN_WINDOW", text)])).unwrap();
            assert_eq!(s.incident_reopen_window, time::Duration::seconds(seconds), "{text}");
        }
    }

    #[test]
    fn mcp_allowed_hosts_default_to_loopback_and_star_allows_any() {
        assert_eq!(Settings::load(None, &env(&[])).unwrap().mcp_allowed_hosts, vec!["localhost", "127.0.0.1", "::1"]);
        let s = Settings::load(None, &env(&[("ATLAS_MCP_ALLOWED_HOSTS", "atlas.example.com, atlas.example.com:8443")])).unwrap();
        assert_eq!(s.mcp_allowed_hosts, vec!["atlas.example.com", "atlas.example.com:8443"]);
        assert!(Settings::load(None, &env(&[("ATLAS_MCP_ALLOWED_HOSTS", "*")])).unwrap().mcp_allowed_hosts.is_empty());
        assert!(Settings::load(None, &env(&[("ATLAS_MCP_ALLOWED_HOSTS", "http://x/y")])).is_err());
    }

    #[test]
    fn trusted_proxies_are_cidrs_or_addresses_and_none_by_default() {
        assert!(Settings::load(None, &env(&[])).unwrap().trusted_proxies.is_empty());
        let s = Settings::load(None, &env(&[("ATLAS_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7 ,::1")])).unwrap();
        let shown: Vec<String> = s.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]);
    }

    #[test]
    fn an_outbox_lease_that_a_live_send_could_outlast_is_refused() {
        // Default: 15 s provider timeout, 80/s per channel (16 rows wait at most 200 ms), 2 s margin.
        assert_eq!(minimum_outbox_lease_ms(15, &Policy::parse("80/s").unwrap(), 16), 17_200);
        assert_eq!(Settings::load(None, &env(&[])).unwrap().outbox_lease_secs, 120, "the default lease is valid");
        for (lease, timeout, cap, ok) in [
            ("17", "15", "80/s", false),
            ("18", "15", "80/s", true),
            ("6", "3", "80/s", true),
            ("5", "3", "80/s", false),
            ("30", "15", "1/s", false),
            ("34", "15", "1/s", true),
            ("3", "15", "80/s", false),
        ] {
            let result = Settings::load(
                None,
                &env(&[("ATLAS_OUTBOX_LEASE_SECS", lease), ("ATLAS_WHATSAPP_TIMEOUT_SECS", timeout), ("ATLAS_CHANNEL_RATE_LIMIT", cap)]),
            );
            match result {
                Ok(s) => assert!(ok, "lease {lease} s with timeout {timeout} s at {cap} must be refused: {s:?}"),
                Err(e) => {
                    assert!(!ok, "lease {lease} s with timeout {timeout} s at {cap} is enough: {e}");
                    assert_eq!(e.name, "ATLAS_OUTBOX_LEASE_SECS");
                    assert!(e.message.contains("ATLAS_WHATSAPP_TIMEOUT_SECS"), "{}", e.message);
                }
            }
        }
    }

    #[test]
    fn new_settings_have_defaults_and_ranges() {
        let s = Settings::load(None, &env(&[])).unwrap();
        assert_eq!((s.whatsapp_timeout_secs, s.webhook_endpoint_concurrency, s.retention_days), (15, 4, 30));
        assert_eq!(s.outbox_per_channel, 16);
        assert_eq!(s.db_upkeep_secs, DEFAULT_DB_UPKEEP_SECS);
        assert_eq!(Settings::load(None, &env(&[("ATLAS_DB_UPKEEP_SECS", "0")])).unwrap().db_upkeep_secs, 0, "0 turns upkeep off");
        for (var, value) in [
            ("ATLAS_DB_UPKEEP_SECS", "86401"),
            ("ATLAS_DB_UPKEEP_SECS", "often"),
            ("ATLAS_WHATSAPP_TIMEOUT_SECS", "0"),
            ("ATLAS_WEBHOOK_ENDPOINT_CONCURRENCY", "0"),
            ("ATLAS_RETENTION_DAYS", "0"),
            ("ATLAS_OUTBOX_PER_CHANNEL", "0"),
            // More than one process holds at once would let one channel take every slot.
            ("ATLAS_OUTBOX_PER_CHANNEL", "65"),
        ] {
            assert_eq!(Settings::load(None, &env(&[(var, value)])).unwrap_err().name, var, "{value}");
        }
        let s = Settings::load(
            None,
            &env(&[("ATLAS_RETENTION_DAYS", "7"), ("ATLAS_WEBHOOK_ENDPOINT_CONCURRENCY", "2"), ("ATLAS_OUTBOX_PER_CHANNEL", "64")]),
        )
        .unwrap();
        assert_eq!((s.retention_days, s.webhook_endpoint_concurrency, s.outbox_per_channel), (7, 2, 64));
        // The lease must cover a wait for the channel's quota behind every row it may lease: 64
        // rows at 2/s take 32 s, which the default 120 s lease covers and 30 s does not.
        let slow = [("ATLAS_CHANNEL_RATE_LIMIT", "2/s"), ("ATLAS_OUTBOX_PER_CHANNEL", "64"), ("ATLAS_OUTBOX_LEASE_SECS", "30")];
        assert_eq!(Settings::load(None, &env(&slow)).unwrap_err().name, "ATLAS_OUTBOX_LEASE_SECS");
        assert!(Settings::load(None, &env(&slow[..2])).is_ok());
    }

    #[test]
    fn overrides_parse_per_organization_and_class() {
        let org = OrgId::generate();
        let s =
            Settings::load(None, &env(&[("ATLAS_RATE_LIMIT_OVERRIDES", &format!("{org}:messages=600/min, {org}:reads=10/s"))])).unwrap();
        assert_eq!(s.rate_limit_overrides.len(), 2);
        assert_eq!(s.rate_limit_overrides[0], (org, RouteClass::Messages, Policy::parse("600/min").unwrap()));
    }

    #[test]
    fn a_toml_file_is_read_and_the_environment_wins() {
        let path = std::env::temp_dir().join(format!("atlas-config-{}.toml", uuid_like()));
        std::fs::write(&path, "bind = \"127.0.0.1:9999\"\nlog_format = \"json\"\n[rate_limits]\nreads = \"5/s\"\n").unwrap();
        let s = Settings::load(Some(&path), &env(&[("ATLAS_BIND", "127.0.0.1:7777")])).unwrap();
        assert_eq!(s.bind.port(), 7777);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.rate_limits[&RouteClass::Reads], Policy::parse("5/s").unwrap());
        std::fs::write(&path, "bnd = 1\n").unwrap();
        assert_eq!(Settings::load(Some(&path), &env(&[])).unwrap_err().name, "ATLAS_CONFIG");
        let _ = std::fs::remove_file(path);
    }

    fn uuid_like() -> u128 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    }
}
