//! The OpenAPI document is complete and valid: every route of the table has its parameters,
//! request body (schema and an example the handler's own type accepts), success schema in the
//! envelope, the error envelope for its errors, examples, scopes and rate-limit extensions; the
//! document parses as OpenAPI 3.1 with every `$ref` resolving.

use atlas_http::{openapi_document, ROUTES};
use serde_json::Value;

/// Answers that are not JSON envelopes by nature: the document itself, pages, scripts,
/// metrics, Meta's handshake, the Postman files.
const RAW_ANSWERS: &[&str] = &[
    "system.openapi",
    "system.docs",
    "system.docs_asset",
    "system.metrics",
    "system.postman_collection",
    "system.postman_environment",
    "channels.webhook_verify",
    "sessions.stream",
];

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap_or(&Value::Null),
        None => schema,
    }
}

/// Every problem of one route, in words.
fn problems(doc: &Value, spec: &atlas_http::RouteSpec) -> Vec<String> {
    let mut out = Vec::new();
    let op = &doc["paths"][spec.path][spec.method.to_ascii_lowercase()];
    if !op.is_object() {
        return vec!["missing from the document".into()];
    }
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    let has = |name: &str, place: &str| params.iter().any(|p| p["name"] == name && p["in"] == place && p["schema"].is_object());
    for name in spec.path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))) {
        if !has(name, "path") {
            out.push(format!("no path parameter `{name}`"));
        }
    }
    if spec.idempotent && !has("Idempotency-Key", "header") {
        out.push("idempotent but no Idempotency-Key header parameter".into());
    }

    let mutating = matches!(spec.method, "POST" | "PUT" | "PATCH");
    let body = op.pointer("/requestBody/content/application~1json");
    match (mutating && !spec.bodyless, body) {
        (true, None) => out.push("mutating route without a request body (declare `.accepts::<T>()` or `.takes_no_body()`)".into()),
        (_, Some(body)) => {
            if !body["schema"].is_object() {
                out.push("request body without a schema".into());
            }
            if body["example"].is_null() {
                out.push("request body without an example".into());
            }
            if let Some(parses) = spec.request.and_then(|r| r.parses) {
                if let Err(e) = parses(&body["example"]) {
                    out.push(format!("the request example is refused by the handler's type: {e}"));
                }
            }
        }
        (false, None) => {}
    }

    let successes: Vec<(&String, &Value)> =
        op["responses"].as_object().into_iter().flatten().filter(|(status, _)| status.starts_with('2')).collect();
    if successes.is_empty() {
        out.push("no 2xx response (declare `.returns::<T>()`)".into());
    }
    for (status, response) in &successes {
        let Some((media, content)) = response["content"].as_object().and_then(|c| c.iter().next()) else {
            out.push(format!("{status} has no content"));
            continue;
        };
        if content["example"].is_null() {
            out.push(format!("{status} has no example"));
        }
        if RAW_ANSWERS.contains(&spec.operation) {
            continue;
        }
        if media != "application/json" {
            out.push(format!("{status} is {media}, not the JSON envelope"));
            continue;
        }
        let data = &content["schema"]["properties"]["data"];
        if content["schema"]["properties"]["ok"]["const"] != true || data.is_null() {
            out.push(format!("{status} is not wrapped in the success envelope"));
        } else if !data["$ref"].is_string() {
            out.push(format!("{status}'s data is not a typed schema (declare `.returns::<T>()`)"));
        }
        if content["example"]["data"].is_null() {
            out.push(format!("{status}'s example has no data"));
        }
        let example_data = &content["example"]["data"];
        if spec.method == "GET" && example_data.get("next_cursor").is_some() && !(has("limit", "query") && has("cursor", "query")) {
            out.push("a list without `limit` and `cursor` query parameters (declare `.query::<PageQuery>()`)".into());
        }
    }

    for status in ["400", "401", "403", "404", "409", "413", "422", "429", "500"] {
        let schema = op.pointer(&format!("/responses/{status}/content/application~1json/schema"));
        if schema.and_then(|s| s["$ref"].as_str()) != Some("#/components/schemas/Error") {
            out.push(format!("{status} does not point at the error envelope"));
        }
    }

    let scopes: Option<Vec<&str>> = op["x-required-scopes"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect());
    match scopes {
        None => out.push("no x-required-scopes".into()),
        Some(scopes) if scopes != spec.scope.iter().map(|s| s.as_str()).collect::<Vec<_>>() => {
            out.push(format!("x-required-scopes {scopes:?} differs from the route's scope"));
        }
        Some(_) => {}
    }
    match (op["x-ratelimit-class"].as_str(), spec.class) {
        (None, _) => out.push("no x-ratelimit-class".into()),
        (Some(c), Some(class)) if c != class.as_str() => out.push(format!("x-ratelimit-class {c} is not {}", class.as_str())),
        (Some(c), None) if c != "none" => out.push(format!("x-ratelimit-class {c} on an unlimited route")),
        _ => {}
    }
    let limits = &op["x-rate-limits"];
    match spec.class {
        _ if !limits.is_object() => out.push("no x-rate-limits".into()),
        Some(class) if limits["limit"] != class.default_policy().limit() || limits["class"] != class.as_str() => {
            out.push(format!("x-rate-limits {limits} is not the {} class's default", class.as_str()));
        }
        _ => {}
    }
    if op["operationId"] != spec.operation || op["summary"].as_str().is_none_or(str::is_empty) || !op["tags"].is_array() {
        out.push("operationId, summary or tags missing".into());
    }
    if let Some(schema) = body.map(|b| &b["schema"]) {
        if resolve(doc, schema).is_null() {
            out.push("request schema $ref does not resolve".into());
        }
    }
    out
}

#[test]
fn every_route_is_completely_documented() {
    let doc = openapi_document();
    let mut failures = Vec::new();
    for spec in ROUTES {
        for problem in problems(&doc, spec) {
            failures.push(format!("{} {} ({}): {problem}", spec.method, spec.path, spec.operation));
        }
    }
    assert!(failures.is_empty(), "the OpenAPI document is incomplete:\n{}", failures.join("\n"));
    let documented: usize = doc["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum();
    assert_eq!(documented, ROUTES.len(), "the document has exactly the routes of the table");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"), "info.version follows the server's version");
}

#[test]
fn the_raw_answer_list_names_real_routes_only() {
    for op in RAW_ANSWERS {
        assert!(ROUTES.iter().any(|r| r.operation == *op), "{op} is in RAW_ANSWERS but is not a route");
    }
}

#[test]
fn a_route_missing_its_contract_is_caught() {
    // The checker itself: strip one operation of its body, answer and extensions.
    let mut doc = openapi_document();
    let spec = ROUTES.iter().find(|r| r.operation == "keys.create").unwrap();
    let op = doc["paths"][spec.path]["post"].as_object_mut().unwrap();
    op.remove("requestBody");
    op.remove("x-rate-limits");
    op.remove("x-required-scopes");
    op["responses"].as_object_mut().unwrap().remove("201");
    let found = problems(&doc, spec).join("\n");
    for expected in ["request body", "x-rate-limits", "x-required-scopes", "2xx"] {
        assert!(found.contains(expected), "`{expected}` not reported in:\n{found}");
    }
}

fn check_openapi_31(text: &str) -> Result<(), String> {
    let spec = oas3::from_json(text).map_err(|e| format!("does not parse as OpenAPI: {e}"))?;
    let version = spec.validate_version().map_err(|e| format!("version: {e}"))?;
    if (version.major, version.minor) != (3, 1) {
        return Err(format!("version {version} is not 3.1"));
    }
    for (path, method, op) in spec.operations() {
        if let Some(body) = &op.request_body {
            let body = body.resolve(&spec).map_err(|e| format!("{method} {path}: request body: {e}"))?;
            for media in body.content.values() {
                if let Some(schema) = &media.schema {
                    schema.resolve(&spec).map_err(|e| format!("{method} {path}: request schema: {e}"))?;
                }
            }
        }
        for (status, response) in op.responses.iter().flatten() {
            let response = response.resolve(&spec).map_err(|e| format!("{method} {path} {status}: {e}"))?;
            for media in response.content.values() {
                if let Some(schema) = &media.schema {
                    schema.resolve(&spec).map_err(|e| format!("{method} {path} {status}: schema: {e}"))?;
                }
            }
        }
        for param in &op.parameters {
            param.resolve(&spec).map_err(|e| format!("{method} {path}: parameter: {e}"))?;
        }
    }
    Ok(())
}

#[test]
fn the_document_parses_as_openapi_3_1_with_every_reference_resolving() {
    let text = serde_json::to_string(&openapi_document()).unwrap();
    check_openapi_31(&text).unwrap();
    let spec = oas3::from_json(&text).unwrap();
    assert_eq!(spec.operations().count(), ROUTES.len());
}

#[test]
fn a_malformed_document_is_refused() {
    let good = openapi_document();
    let mut no_info = good.clone();
    no_info.as_object_mut().unwrap().remove("info");
    assert!(check_openapi_31(&no_info.to_string()).is_err(), "a document without info is refused");
    let mut bad_ref = good.clone();
    bad_ref["paths"]["/v1/atlas/keys"]["post"]["requestBody"]["content"]["application/json"]["schema"] =
        serde_json::json!({"$ref": "#/components/schemas/Nope"});
    assert!(check_openapi_31(&bad_ref.to_string()).is_err(), "a dangling $ref is refused");
    let mut old = good.clone();
    old["openapi"] = "3.0.3".into();
    assert!(check_openapi_31(&old.to_string()).is_err(), "3.0 is not 3.1");
    let mut bad_param = good;
    bad_param["paths"]["/v1/atlas/keys/{id}"]["delete"]["parameters"][0]["in"] = "nowhere".into();
    assert!(check_openapi_31(&bad_param.to_string()).is_err(), "a parameter in no known place is refused");
}
