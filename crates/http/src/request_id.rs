//! Request ids: every response carries `X-Request-Id`; a sane incoming `X-Request-Id` or
//! `X-Correlation-Id` is kept, otherwise one is made (`req_…`). The id is also available to
//! error bodies through a task-local, and rides on the request's tracing span. The request's
//! concrete path (ids included) is kept the same way, for idempotency scopes and fingerprints.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

tokio::task_local! {
    static REQUEST_ID: String;
    static REQUEST_PATH: String;
}

/// The current request's concrete path (`/v1/atlas/webhooks/whk_…`; empty outside a request).
pub fn current_path() -> String {
    REQUEST_PATH.try_with(Clone::clone).unwrap_or_default()
}

/// The current request's id (empty outside a request).
pub fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Runs `future` as part of request `id` at `path`: for work a request hands to another task
/// (an MCP tool call, which the MCP transport runs on a task of its own), or a tool call that
/// is idempotent under its own path (`/tools/send_message`). An empty `id` keeps the current one.
pub(crate) async fn within<F: std::future::Future>(id: String, path: String, future: F) -> F::Output {
    let id = if id.is_empty() { current() } else { id };
    REQUEST_ID.scope(id, REQUEST_PATH.scope(path, future)).await
}

fn sane(value: &str) -> bool {
    (1..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Middleware: picks or makes the id, runs the request inside its span and task-local.
pub async fn layer(request: Request, next: Next) -> Response {
    let incoming = ["x-request-id", "x-correlation-id"]
        .iter()
        .filter_map(|h| request.headers().get(*h).and_then(|v| v.to_str().ok()))
        .find(|v| sane(v))
        .map(str::to_owned);
    let id = incoming.unwrap_or_else(|| format!("req_{}", uuid::Uuid::now_v7().simple()));
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let path = request.uri().path().to_owned();
    let mut response = REQUEST_ID.scope(id.clone(), REQUEST_PATH.scope(path, next.run(request).instrument(span))).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::sane;

    #[test]
    fn only_sane_incoming_ids_are_kept() {
        assert!(sane("req_01HW3T"));
        assert!(sane("4f1c2a7e-0000-4000-8000-000000000000"));
        assert!(!sane(""));
        assert!(!sane("has space"));
        assert!(!sane(&"x".repeat(129)));
    }
}
