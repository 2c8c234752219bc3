//! Request extractors that answer bad input with VALIDATION_ERROR (field by field),
//! PAYLOAD_TOO_LARGE or UNAUTHORIZED in the envelope, never with a bare framework rejection,
//! and refuse `organization_id` anywhere the client could send it.

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use utoipa::IntoParams;

/// `?limit=&cursor=` of every list.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A JSON body: the raw value (for fingerprints) and the typed request.
#[derive(Debug)]
pub struct JsonBody<T> {
    pub raw: Value,
    pub value: T,
}

fn organization_id_refused(place: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ValidationError,
        format!("organization_id is not accepted in the {place}: the organization comes from the credential"),
    )
    .detail("fields", json!([{ "field": "organization_id", "message": "not allowed; the credential decides the organization" }]))
}

/// Turns a serde error at a path into a field-level VALIDATION_ERROR.
pub fn field_error(path: &str, message: &str) -> ApiError {
    let field = if path.is_empty() || path == "." { "body".to_owned() } else { path.to_owned() };
    ApiError::new(ErrorCode::ValidationError, format!("{field}: {message}"))
        .detail("fields", json!([{ "field": field, "message": message }]))
}

/// Deserialises `raw` into `T`, naming the failing field.
pub fn typed<T: DeserializeOwned>(raw: &Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        field_error(&path, &message)
    })
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        if let Some(ct) = request.headers().get("content-type").and_then(|v| v.to_str().ok()) {
            if !ct.starts_with("application/json") && !ct.contains("+json") {
                return Err(ApiError::field("content-type", "send the body as application/json"));
            }
        }
        let bytes = axum::body::to_bytes(request.into_body(), state.config.max_body_bytes).await.map_err(|_| {
            ApiError::new(ErrorCode::PayloadTooLarge, format!("the body is larger than {} bytes", state.config.max_body_bytes))
        })?;
        let text =
            std::str::from_utf8(&bytes).map_err(|e| ApiError::field("body", format!("not valid UTF-8 (at byte {})", e.valid_up_to())))?;
        let raw: Value = if text.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(text)
                .map_err(|e| ApiError::field("body", format!("malformed JSON at line {} column {}: {}", e.line(), e.column(), short(&e))))?
        };
        if !raw.is_object() {
            return Err(ApiError::field("body", "must be a JSON object"));
        }
        if raw.get("organization_id").is_some() || raw.get("organizationId").is_some() {
            return Err(organization_id_refused("body"));
        }
        let value = typed(&raw)?;
        Ok(Self { raw, value })
    }
}

fn short(e: &serde_json::Error) -> String {
    let text = e.to_string();
    text.split(" at line ").next().unwrap_or(&text).to_owned()
}

/// Query parameters, typed, with field-level errors.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|e| ApiError::field("query", e.to_string()))?;
        if pairs.iter().any(|(k, _)| k == "organization_id" || k == "organizationId") {
            return Err(organization_id_refused("query"));
        }
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(QueryParams).map_err(|e| {
            let path = e.path().to_string();
            field_error(&path, &e.inner().to_string())
        })
    }
}

/// The caller's address: the socket's peer, or, when the peer is a trusted proxy
/// (`ATLAS_TRUSTED_PROXIES`), the rightmost `X-Forwarded-For` hop that is not one. IPv4-mapped
/// IPv6 addresses (`::ffff:10.0.0.1`, what a `[::]` listener sees) are canonicalised to IPv4.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ci| ci.0.ip());
        let forwarded = parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
        Ok(ClientIp(peer.map(|peer| client_address(peer, &forwarded, &state.config.trusted_proxies))))
    }
}

/// The client behind `peer`: `peer` itself unless it is trusted; then, walking `forwarded`
/// (`X-Forwarded-For`, oldest hop first) from the right, the first hop that is not trusted (a
/// malformed hop stops the walk at the last trusted one; all trusted means the leftmost).
pub fn client_address(peer: IpAddr, forwarded: &str, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    for hop in forwarded.split(',').rev().map(str::trim).filter(|h| !h.is_empty()) {
        let Ok(ip) = hop.parse::<IpAddr>().map(|ip| ip.to_canonical()) else {
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::client_address;
    use std::net::IpAddr;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_peer() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_address(ip("203.0.113.9"), "198.51.100.1", &trusted), ip("203.0.113.9"), "an untrusted peer speaks for itself");
        assert_eq!(client_address(ip("10.0.0.2"), "198.51.100.1", &trusted), ip("198.51.100.1"));
        assert_eq!(
            client_address(ip("10.0.0.2"), "1.1.1.1, 198.51.100.1, 10.0.0.5", &trusted),
            ip("198.51.100.1"),
            "the rightmost untrusted hop"
        );
        assert_eq!(client_address(ip("10.0.0.2"), "", &trusted), ip("10.0.0.2"), "no header: the proxy itself");
        assert_eq!(client_address(ip("10.0.0.2"), "garbage, 10.0.0.7", &trusted), ip("10.0.0.7"), "a malformed hop stops the walk");
        assert_eq!(client_address(ip("10.0.0.2"), "198.51.100.1", &[]), ip("10.0.0.2"), "no trusted proxies: the header is ignored");
        assert_eq!(
            client_address(ip("::ffff:10.0.0.2"), "::ffff:198.51.100.1", &trusted),
            ip("198.51.100.1"),
            "IPv4-mapped addresses are IPv4"
        );
    }
}
