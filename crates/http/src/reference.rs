//! What a person or a tool reads about the API, all generated from the one OpenAPI document:
//! the reference page (Redoc, its script vendored in `crates/http/assets` and served from here,
//! so an air-gapped install works), and the Postman v2.1 collection and environment.

use crate::contract::Payload;
use crate::openapi::{openapi_document, path_parameters};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{json, Map, Value};

/// Redoc's standalone bundle (npm package `redoc`, version in `assets/README.md`).
static REDOC_JS: &[u8] = include_bytes!("../assets/redoc.standalone.js");

/// `GET /v1/atlas/docs`.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

/// `GET /v1/atlas/docs/redoc.standalone.js`.
pub async fn redoc_js() -> Response {
    let mut response = REDOC_JS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/javascript; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    response
}

/// The base URL a client used to reach us (`Host`, and `X-Forwarded-Proto` behind a proxy).
fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| !h.is_empty()).unwrap_or("127.0.0.1:8080");
    let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).filter(|p| *p == "https").unwrap_or("http");
    format!("{scheme}://{host}")
}

/// Runs before every request: a blank `idempotencyKey` gets a fresh UUID for this request, so
/// creations are safe to retry (send the same request again with the key it was given).
const PRE_REQUEST: &[&str] = &[
    "// Atlas: every mutating request carries Idempotency-Key: {{idempotencyKey}}.",
    "// When the variable is blank, a fresh key is made for this request.",
    "if (pm.request.method !== 'GET' && !pm.variables.get('idempotencyKey')) {",
    "    pm.variables.set('idempotencyKey', pm.variables.replaceIn('{{$guid}}'));",
    "}",
];

/// Runs after every request: never a server error, and JSON answers are envelopes.
const TESTS: &[&str] = &[
    "pm.test('no server error', function () { pm.expect(pm.response.code).to.be.below(500); });",
    "const type = pm.response.headers.get('Content-Type') || '';",
    "if (type.indexOf('application/json') === 0 && pm.request.url.getPath().indexOf('/openapi.json') < 0 && pm.request.url.getPath().indexOf('/postman/') < 0) {",
    "    pm.test('answers in the envelope', function () { pm.expect(pm.response.json()).to.have.property('ok'); });",
    "}",
];

fn script(listen: &str, lines: &[&str]) -> Value {
    json!({"listen": listen, "script": {"type": "text/javascript", "exec": lines}})
}

/// One request of the collection, from one operation of the document.
fn request_item(path: &str, method: &str, op: &Value) -> Value {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => format!(":{name}"),
            None => s.to_owned(),
        })
        .collect();
    let variables: Vec<Value> = path_parameters(path).map(|name| json!({"key": name, "value": "", "description": "required"})).collect();
    let query: Vec<Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .map(|p| {
            // A required parameter stays enabled (to be filled in, as a path variable is); an
            // optional one is there to switch on.
            let required = p["required"] == true;
            let description = p["description"].as_str().unwrap_or("");
            let description = if required { format!("required. {description}") } else { description.to_owned() };
            json!({"key": p["name"], "value": "", "disabled": !required, "description": description.trim_end_matches(". ")})
        })
        .collect();
    let mut headers = vec![json!({"key": "Accept", "value": "application/json"})];
    if op["x-idempotent"] == true {
        headers.push(json!({"key": "Idempotency-Key", "value": "{{idempotencyKey}}", "description": "filled by the collection's pre-request script when blank"}));
    }
    let mut request = json!({
        "method": method.to_ascii_uppercase(),
        "header": headers,
        "url": {
            "raw": format!("{{{{baseUrl}}}}/{}", segments.join("/")),
            "host": ["{{baseUrl}}"],
            "path": segments,
            "variable": variables,
            "query": query,
        },
        "description": format!("{}\n\nScopes: {}. Rate-limit class: {}.", op["summary"].as_str().unwrap_or(""),
            op["x-required-scopes"].as_array().filter(|s| !s.is_empty()).map_or("none (public)".to_owned(), |s| s.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")),
            op["x-ratelimit-class"].as_str().unwrap_or("none")),
    });
    if let Some(example) = op.pointer("/requestBody/content/application~1json/example") {
        // The key travels in the header ({{idempotencyKey}}); a body key beside a different
        // header key would be refused.
        let mut example = example.clone();
        if let Some(fields) = example.as_object_mut() {
            fields.remove("idempotency_key");
        }
        let example = &example;
        headers_push(&mut request, json!({"key": "Content-Type", "value": "application/json"}));
        request["body"] = json!({
            "mode": "raw",
            "raw": serde_json::to_string_pretty(example).unwrap_or_default(),
            "options": {"raw": {"language": "json"}}
        });
    }
    if op["security"].as_array().is_some_and(Vec::is_empty) {
        request["auth"] = json!({"type": "noauth"});
    }
    let responses: Vec<Value> = op["responses"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(status, _)| status.starts_with('2'))
        .filter_map(|(status, response)| {
            let (media, content) = response["content"].as_object()?.iter().next()?;
            let example = &content["example"];
            let body = match example {
                Value::String(text) => text.clone(),
                other => serde_json::to_string_pretty(other).unwrap_or_default(),
            };
            Some(json!({
                "name": format!("{status} example"),
                "originalRequest": request.clone(),
                "code": status.parse::<u16>().unwrap_or(200),
                "header": [{"key": "Content-Type", "value": media}],
                "_postman_previewlanguage": if media.contains("json") { "json" } else { "text" },
                "body": body,
            }))
        })
        .collect();
    json!({"name": op["summary"], "request": request, "response": responses})
}

fn headers_push(request: &mut Value, header: Value) {
    if let Some(headers) = request["header"].as_array_mut() {
        headers.push(header);
    }
}

/// The Postman v2.1 collection of `document`: one folder per tag, in the document's order.
pub fn postman_collection(document: &Value, base_url: &str) -> Value {
    let mut folders: Vec<(String, Vec<Value>)> =
        document["tags"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).map(|t| (t.to_owned(), Vec::new())).collect();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let tag = op["tags"][0].as_str().unwrap_or("other");
            let request = request_item(path, method, op);
            match folders.iter_mut().find(|(name, _)| name == tag) {
                Some((_, items)) => items.push(request),
                None => folders.push((tag.to_owned(), vec![request])),
            }
        }
    }
    let version = document["info"]["version"].as_str().unwrap_or("");
    json!({
        "info": {
            "_postman_id": "6d1f0a52-7a4e-4c1b-9a9e-5e0c7c2b4a10",
            "name": format!("Atlas API {version}"),
            "description": "Generated by Atlas from its OpenAPI document (/v1/atlas/openapi.json). Set apiKey in the environment; idempotencyKey is filled per request when blank.",
            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
        },
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}]},
        "event": [script("prerequest", PRE_REQUEST), script("test", TESTS)],
        "variable": [
            {"key": "baseUrl", "value": base_url, "type": "string"},
            {"key": "idempotencyKey", "value": "", "type": "string"}
        ],
        "item": folders.into_iter().map(|(name, items)| json!({"name": name, "item": items})).collect::<Vec<_>>(),
    })
}

/// The companion environment.
pub fn postman_environment(base_url: &str) -> Value {
    let values: Vec<Value> = [("baseUrl", base_url, "default"), ("apiKey", "", "secret"), ("idempotencyKey", "", "default")]
        .iter()
        .map(|(key, value, kind)| json!({"key": key, "value": value, "type": kind, "enabled": true}))
        .collect();
    let mut env = Map::new();
    env.insert("id".into(), json!("0b7f3a4e-2c1d-4e5f-8a9b-1c2d3e4f5a6b"));
    env.insert("name".into(), json!("Atlas"));
    env.insert("values".into(), Value::Array(values));
    env.insert("_postman_variable_scope".into(), json!("environment"));
    Value::Object(env)
}

fn json_download(value: &Value, filename: &str) -> Response {
    let mut response = axum::Json(value).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{filename}\"")) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// `GET /v1/atlas/postman/collection.json`.
pub async fn postman_collection_route(headers: HeaderMap) -> Response {
    json_download(&postman_collection(&openapi_document(), &base_url(&headers)), "atlas.postman_collection.json")
}

/// `GET /v1/atlas/postman/environment.json`.
pub async fn postman_environment_route(headers: HeaderMap) -> Response {
    json_download(&postman_environment(&base_url(&headers)), "atlas.postman_environment.json")
}

fn object_schema(description: &'static str) -> Value {
    json!({"type": "object", "description": description})
}

/// The document's own answer (it is not enveloped).
pub const OPENAPI: Payload = Payload::foreign(
    |_| object_schema("This OpenAPI 3.1 document"),
    || json!({"openapi": "3.1.0", "info": {"title": "Atlas API", "version": env!("CARGO_PKG_VERSION")}, "paths": {}}),
);
/// The reference page.
pub const PAGE: Payload = Payload::text(|| json!("<!doctype html><html>…<div id=\"reference\"></div>…</html>"));
/// Redoc's script.
pub const SCRIPT: Payload = Payload::text(|| json!("/*! For license information please see redoc.standalone.js.LICENSE.txt */ …"));
/// Prometheus' text format.
pub const METRICS: Payload = Payload::text(|| {
    json!("# TYPE atlas_http_requests_total counter\natlas_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1\n")
});
/// The collection (not enveloped).
pub const COLLECTION: Payload = Payload::foreign(
    |_| object_schema("A Postman v2.1 collection"),
    || {
        json!({"info": {"name": "Atlas API", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"},
               "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}]},
               "item": [{"name": "keys", "item": []}]})
    },
);
/// The environment (not enveloped).
pub const ENVIRONMENT: Payload = Payload::foreign(
    |_| object_schema("A Postman environment"),
    || json!({"name": "Atlas", "values": [{"key": "baseUrl", "value": "http://127.0.0.1:8080", "type": "default", "enabled": true}]}),
);
