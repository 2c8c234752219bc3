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
}

impl<T: Serialize> Envelope<T> {
    /// 200 with `data`.
    pub fn ok(data: T) -> Self {
        Self { status: StatusCode::OK, data }
    }
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
        match serde_json::to_value(&self.data) {
            Ok(data) => json_response(self.status, success_body(&data)),
            Err(e) => crate::ApiError::internal(e).into_response(),
        }
    }
}
