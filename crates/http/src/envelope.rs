//! The one response envelope: `{"ok": true, "data": …, "request_id": …}` for success and
//! `{"ok": false, "error": {…}, "request_id": …}` for errors.

use crate::request_id;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

/// A successful answer: `data` inside the envelope.
#[derive(Debug)]
pub struct Envelope<T> {
    pub status: StatusCode,
    pub data: T,
    /// `data` serialises with every object's keys in sorted order (see [`Envelope::sorted`]).
    sorted: bool,
}

impl<T: Serialize> Envelope<T> {
    /// 200 with `data`.
    pub fn ok(data: T) -> Self {
        Self { status: StatusCode::OK, data, sorted: false }
    }

    /// 200 with `data` written straight to the body, without the intermediate `Value` tree of
    /// [`Envelope::ok`]. Only for a `data` whose every object prints its keys in sorted order:
    /// the generic path goes through `serde_json::Value`, whose maps sort their keys, and the two
    /// paths must print the same bytes (a test per type proves it).
    pub fn sorted(data: T) -> Self {
        Self { status: StatusCode::OK, data, sorted: true }
    }
}

/// The success envelope over borrowed `data`, its keys in sorted order as [`success_body`]
/// prints them.
#[derive(Serialize)]
struct Success<'a, T> {
    data: &'a T,
    ok: bool,
    request_id: &'a str,
}

/// The envelope's bytes for `data` whose objects print their keys sorted (see
/// [`Envelope::sorted`]), written without a `Value` tree.
pub fn sorted_success_body<T: Serialize>(data: &T) -> serde_json::Result<Vec<u8>> {
    let request_id = request_id::current();
    let mut body = Vec::with_capacity(1024);
    serde_json::to_writer(&mut body, &Success { data, ok: true, request_id: &request_id })?;
    Ok(body)
}

/// The envelope's bytes for `data`.
pub fn success_body(data: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"ok": true, "data": data, "request_id": request_id::current()})).unwrap_or_default()
}

/// A JSON response from ready bytes.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        if self.sorted {
            return match sorted_success_body(&self.data) {
                Ok(body) => json_response(self.status, body),
                Err(e) => crate::ApiError::internal(e).into_response(),
            };
        }
        match serde_json::to_value(&self.data) {
            Ok(data) => json_response(self.status, success_body(&data)),
            Err(e) => crate::ApiError::internal(e).into_response(),
        }
    }
}
