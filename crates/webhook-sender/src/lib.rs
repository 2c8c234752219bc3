//! Outbound HTTP for webhook deliveries: [`HttpSender`] implements the `WebhookSender` port
//! over reqwest, connecting only to the addresses the SSRF guard already checked (so a DNS
//! change between check and connect cannot redirect a delivery), never following redirects,
//! within one overall timeout, and reading at most a bounded excerpt of the answer. Proxy
//! settings from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`) are ignored: a proxy
//! would resolve the host again and undo the pinning.
//! [`DnsResolver`] implements the `Resolver` port with the system resolver.

use async_trait::async_trait;
use atlas_webhooks::schedule::parse_retry_after;
use atlas_webhooks::{ResolveError, Resolver, Response, ResponseExcerpt, SendError, SendErrorKind, TargetUrl, WebhookSender};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use time::Duration;

/// Clients kept (one per target host and its checked addresses, so connections are reused).
const MAX_CLIENTS: usize = 256;
/// Bytes of an answer read at most: one more than the excerpt keeps, to know it was cut.
const READ_LIMIT: usize = 1025;

/// Sends webhook deliveries.
#[derive(Debug, Default)]
pub struct HttpSender {
    clients: Mutex<HashMap<(String, Vec<SocketAddr>), reqwest::Client>>,
}

impl HttpSender {
    /// A sender with no client yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn client(&self, host: &str, addresses: &[SocketAddr]) -> Result<reqwest::Client, SendError> {
        let key = (host.to_owned(), addresses.to_vec());
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .resolve_to_addrs(host, addresses)
            .user_agent(concat!("Atlas-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendError { kind: SendErrorKind::Protocol, message: e.to_string() })?;
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }
}

fn kind_of(error: &reqwest::Error) -> SendErrorKind {
    if error.is_timeout() {
        SendErrorKind::Timeout
    } else if error.is_connect() {
        SendErrorKind::Connect
    } else {
        SendErrorKind::Protocol
    }
}

#[async_trait]
impl WebhookSender for HttpSender {
    async fn send(
        &self,
        url: &TargetUrl,
        addresses: &[IpAddr],
        headers: &[(&'static str, String)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, SendError> {
        let parsed =
            reqwest::Url::parse(&url.to_string()).map_err(|e| SendError { kind: SendErrorKind::Refused, message: e.to_string() })?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let port = url.port();
        let pinned: Vec<SocketAddr> = addresses.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
        if pinned.is_empty() {
            return Err(SendError { kind: SendErrorKind::Refused, message: "no checked address to connect to".into() });
        }
        let client = self.client(&host, &pinned)?;
        let timeout = std::time::Duration::try_from(timeout).unwrap_or(std::time::Duration::from_secs(10));
        let attempt = async {
            let mut request = client.post(parsed).body(body.to_vec());
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let mut response = request.send().await.map_err(|e| SendError { kind: kind_of(&e), message: e.to_string() })?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, time::OffsetDateTime::now_utc()));
            let mut excerpt = Vec::new();
            while excerpt.len() < READ_LIMIT {
                match response.chunk().await {
                    Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk[..chunk.len().min(READ_LIMIT - excerpt.len())]),
                    Ok(None) | Err(_) => break,
                }
            }
            Ok(Response { status, retry_after, body_excerpt: ResponseExcerpt::new(&excerpt) })
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(SendError { kind: SendErrorKind::Timeout, message: format!("no answer within {timeout:?}") }),
        }
    }
}

/// Resolves host names with the system resolver.
#[derive(Debug, Default, Clone, Copy)]
pub struct DnsResolver;

#[async_trait]
impl Resolver for DnsResolver {
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, ResolveError> {
        let addresses = tokio::net::lookup_host((host, port)).await.map_err(|e| ResolveError(e.to_string()))?;
        let mut ips: Vec<IpAddr> = addresses.map(|a| a.ip()).collect();
        ips.dedup();
        if ips.is_empty() {
            return Err(ResolveError(format!("{host} has no address")));
        }
        Ok(ips)
    }
}
