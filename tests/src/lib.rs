//! End-to-end test support: the real Atlas server started in-process on a random port, over a
//! fresh SQLite file or a fresh PostgreSQL database, and a small HTTP client that speaks its
//! envelope. Tests read as what a client does and sees.

pub mod pgproxy;
pub mod receiver;

use atlas_api::config::Settings;
use atlas_api::RunningServer;
use atlas_kernel::{Clock, ManualClock, SystemClock};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which database a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a test server is started with.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra `ATLAS_*` settings.
    pub env: BTreeMap<String, String>,
    /// Reuse this database (a second process over the same data) instead of a fresh one.
    pub database_url: Option<String>,
    /// A controlled clock.
    pub clock: Option<ManualClock>,
}

/// A running server and a client for it.
#[derive(Debug)]
pub struct TestServer {
    pub base: String,
    pub admin_key: String,
    pub database_url: String,
    pub backend: Backend,
    pub http: reqwest::Client,
    server: Option<RunningServer>,
}

/// One answer: status, headers and the JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// `error.code` of an error envelope.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `data` of a success envelope.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
}

impl TestServer {
    /// Starts a server on `backend`, or `None` when PostgreSQL is unreachable and not required.
    pub async fn start(backend: Backend, options: Options) -> Option<Self> {
        let database_url = match (&options.database_url, backend) {
            (Some(url), _) => url.clone(),
            (None, Backend::Sqlite) => atlas_testkit::services::fresh_sqlite_url(),
            (None, Backend::Postgres) => atlas_testkit::services::fresh_postgres_database().await?,
        };
        let mut env = options.env.clone();
        env.insert("ATLAS_BIND".into(), "127.0.0.1:0".into());
        env.insert("ATLAS_DATABASE_URL".into(), database_url.clone());
        env.entry("ATLAS_SECRET_KEY".into()).or_insert_with(|| "e2e-secret-key-that-is-long-enough-0123456789".into());
        if options.clock.is_some() {
            // A controlled clock jumps where real time does not: the workers' sleeps until a
            // due retry (read off that clock) cannot see the jump, so they look as often as the
            // tests move the clock.
            env.entry("ATLAS_WORKER_FALLBACK_POLL_MS".into()).or_insert_with(|| "250".into());
        }
        let settings = Settings::load(None, &env).expect("test settings are valid");
        let clock: Arc<dyn Clock> = match &options.clock {
            Some(c) => Arc::new(c.clone()),
            None => Arc::new(SystemClock),
        };
        let server = atlas_api::start_with_clock(&settings, clock).await.expect("server starts");
        let base = format!("http://{}", server.addr);
        let admin_key = server.first_admin_key.clone().unwrap_or_default();
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("client");
        Some(Self { base, admin_key, database_url, backend, http, server: Some(server) })
    }

    /// A server on SQLite with default options.
    pub async fn sqlite() -> Self {
        Self::start(Backend::Sqlite, Options::default()).await.expect("SQLite always starts")
    }

    /// Sends a request with a credential (`Authorization: Bearer`) and optional JSON body.
    pub async fn call(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Answer {
        self.send(method, path, key, body, &[]).await
    }

    /// Like [`call`](Self::call), with extra headers.
    pub async fn send(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::answer(request.send().await.expect("request reaches the server")).await
    }

    /// Sends raw bytes as the body.
    pub async fn raw(&self, method: Method, path: &str, key: Option<&str>, body: Vec<u8>) -> Answer {
        let mut request = self.http.request(method, format!("{}{}", self.base, path)).header("content-type", "application/json").body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        Self::answer(request.send().await.expect("request reaches the server")).await
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, headers, body }
    }

    /// Mints a key with `scopes` using the admin key; returns (id, secret).
    pub async fn mint(&self, scopes: &[&str]) -> (String, String) {
        self.mint_with(serde_json::json!({"name": "test key", "scopes": scopes})).await
    }

    /// Mints a key from a full request body; returns (id, secret).
    pub async fn mint_with(&self, body: Value) -> (String, String) {
        let answer = self.call(Method::POST, "/v1/atlas/keys", Some(&self.admin_key), Some(body)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "minting a key: {:?}", answer.body);
        (answer.data()["id"].as_str().unwrap().to_owned(), answer.data()["key"].as_str().unwrap().to_owned())
    }

    /// Creates another organization from the operator's side (as `atlas-api orgs create`
    /// does); returns its id and admin key.
    pub async fn create_organization(&self, name: &str) -> (String, String) {
        let server = self.server.as_ref().expect("the server runs");
        atlas_api::create_organization(&server.wiring.state, name, atlas_scopes::ScopeSet::empty())
            .await
            .expect("the operator creates an organization")
    }

    /// Creates another organization and returns its admin key: a second tenant next to the
    /// default one.
    pub async fn organization(&self, name: &str) -> String {
        self.create_organization(name).await.1
    }

    /// The running server's adapters and use cases, for what no route does yet.
    pub fn wiring(&self) -> &atlas_api::Wiring {
        &self.server.as_ref().expect("the server runs").wiring
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}

/// Runs a test body against SQLite and, when reachable, PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $options:expr, |$server:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn scenario($server: $crate::TestServer) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let server = $crate::TestServer::start($crate::Backend::Sqlite, $options).await.expect("SQLite starts");
                scenario(server).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(server) = $crate::TestServer::start($crate::Backend::Postgres, $options).await else { return };
                scenario(server).await;
            }
        }
    };
}
