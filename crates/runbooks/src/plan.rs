//! Plans: a runbook's steps with every `{{placeholder}}` resolved (from the incident's fields
//! `incident.id`, `incident.reference`, `incident.title`, `incident.severity`,
//! `incident.status`, `incident.source`, and from the declared parameters), each http step's
//! request as it would be sent, secrets redacted, and a `plan_hash` over the runbook id and
//! version, the incident, the resolved parameters and the steps, so a real run can require
//! that nothing changed since its dry run.

use crate::model::{HttpMethod, Parameter, Runbook, RunbookError, StepKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The incident fields a template may name as `{{incident.<field>}}`.
pub const INCIDENT_FIELDS: [&str; 6] = ["id", "reference", "title", "severity", "status", "source"];

/// What a secret's value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// An http step's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedRequest {
    pub method: HttpMethod,
    pub url: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub body: Option<serde_json::Value>,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedStep {
    pub index: usize,
    pub kind: StepKind,
    pub title: String,
    /// The request (http steps), secrets redacted.
    pub request: Option<PlannedRequest>,
}

/// A plan, as a dry run answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    pub runbook_id: String,
    pub runbook_version: i64,
    pub incident_id: Option<String>,
    /// Resolved parameters, secrets redacted.
    pub parameters: BTreeMap<String, String>,
    pub steps: Vec<PlannedStep>,
    /// Hex SHA-256 of the plan (see the module documentation).
    pub plan_hash: String,
}

/// Replaces every occurrence of each secret in `text`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), REDACTED);
    }
    out
}

fn redact_json(value: &serde_json::Value, secrets: &[String]) -> serde_json::Value {
    match value {
        serde_json::Value::String(s) => serde_json::Value::String(redact(s, secrets)),
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(|v| redact_json(v, secrets)).collect()),
        serde_json::Value::Object(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), redact_json(v, secrets))).collect()),
        other => other.clone(),
    }
}

/// The placeholders of `template`, in order.
///
/// # Errors
/// A message for a `{{` that is never closed or an empty name.
pub fn placeholders(template: &str) -> Result<Vec<String>, String> {
    let names = std::sync::Mutex::new(Vec::new());
    fill(template, &|name| {
        if let Ok(mut n) = names.lock() {
            n.push(name.to_owned());
        }
        Some(String::new())
    })?;
    Ok(names.into_inner().unwrap_or_default())
}

/// `template` with each `{{name}}` replaced by `lookup(name)`.
///
/// # Errors
/// A message for an unclosed `{{`, an empty name, or a name `lookup` has no value for.
pub fn fill(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| "a {{ is never closed".to_owned())?;
        let name = after[..end].trim();
        if name.is_empty() {
            return Err("an empty {{}} placeholder".into());
        }
        out.push_str(&lookup(name).ok_or_else(|| format!("{{{{{name}}}}} has no value"))?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Every string inside `value` (a body template).
pub fn strings_in<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|v| strings_in(v, out)),
        serde_json::Value::Object(m) => m.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

fn fill_json(value: &serde_json::Value, lookup: &dyn Fn(&str) -> Option<String>) -> Result<serde_json::Value, String> {
    Ok(match value {
        serde_json::Value::String(s) => serde_json::Value::String(fill(s, lookup)?),
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(|v| fill_json(v, lookup)).collect::<Result<_, _>>()?),
        serde_json::Value::Object(m) => {
            serde_json::Value::Object(m.iter().map(|(k, v)| Ok((k.clone(), fill_json(v, lookup)?))).collect::<Result<_, String>>()?)
        }
        other => other.clone(),
    })
}

fn resolve_parameters(declared: &[Parameter], supplied: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, RunbookError> {
    if let Some(unknown) = supplied.keys().find(|k| !declared.iter().any(|p| &p.name == *k)) {
        return Err(RunbookError::invalid(format!("parameters.{unknown}"), "not a parameter of this runbook"));
    }
    let mut values = BTreeMap::new();
    for p in declared {
        let value = supplied.get(&p.name).cloned().or_else(|| p.default.clone());
        match value {
            Some(v) => {
                values.insert(p.name.clone(), v);
            }
            None if p.required => return Err(RunbookError::invalid(format!("parameters.{}", p.name), "required")),
            None => {
                values.insert(p.name.clone(), String::new());
            }
        }
    }
    Ok(values)
}

#[derive(Serialize)]
struct HashInput<'a> {
    runbook_id: &'a str,
    runbook_version: i64,
    incident_id: &'a Option<String>,
    parameters: &'a BTreeMap<String, String>,
    steps: &'a [PlannedStep],
}

/// The plan of `runbook` for an incident (its fields by name: `reference`, `title`, …, and
/// its id) and the supplied parameters; with it, each step's real request (secrets in place)
/// for the worker. Each resolved URL must pass the SSRF guard's syntax check.
///
/// # Errors
/// `Invalid` for an unknown or missing parameter, an incident placeholder without an
/// incident, or a URL the guard refuses.
pub fn plan(
    runbook: &Runbook,
    incident_id: Option<String>,
    incident: &BTreeMap<String, String>,
    supplied: &BTreeMap<String, String>,
) -> Result<(Plan, Vec<Option<PlannedRequest>>), RunbookError> {
    let parameters = resolve_parameters(&runbook.parameters, supplied)?;
    let secrets: Vec<String> =
        runbook.parameters.iter().filter(|p| p.secret).filter_map(|p| parameters.get(&p.name)).filter(|v| !v.is_empty()).cloned().collect();
    let lookup = |name: &str| match name.strip_prefix("incident.") {
        Some(field) => incident.get(field).cloned(),
        None => parameters.get(name).cloned(),
    };
    let mut steps = Vec::with_capacity(runbook.steps.len());
    let mut requests = Vec::with_capacity(runbook.steps.len());
    for (index, step) in runbook.steps.iter().enumerate() {
        let real = match (step.kind, step.method, &step.url) {
            (StepKind::Http, Some(method), Some(url)) => {
                let in_step = |e: String| {
                    if e.contains("{{incident.") && incident.is_empty() {
                        RunbookError::invalid("incident_id", format!("steps[{index}] names an incident field: {e}; pass incident_id"))
                    } else {
                        RunbookError::invalid(format!("steps[{index}]"), e)
                    }
                };
                let url = fill(url, &lookup).map_err(in_step)?;
                atlas_webhooks::validate_url(&url).map_err(|e| RunbookError::invalid(format!("steps[{index}].url"), e.to_string()))?;
                let body = step.body.as_ref().map(|b| fill_json(b, &lookup)).transpose().map_err(in_step)?;
                Some(PlannedRequest { method, url, body })
            }
            _ => None,
        };
        let shown = real.as_ref().map(|r| PlannedRequest {
            method: r.method,
            url: redact(&r.url, &secrets),
            body: r.body.as_ref().map(|b| redact_json(b, &secrets)),
        });
        steps.push(PlannedStep { index, kind: step.kind, title: step.title.clone(), request: shown });
        requests.push(real);
    }
    let shown_parameters: BTreeMap<String, String> = parameters
        .iter()
        .map(|(k, v)| {
            let secret = runbook.parameters.iter().any(|p| &p.name == k && p.secret) && !v.is_empty();
            (k.clone(), if secret { REDACTED.to_owned() } else { v.clone() })
        })
        .collect();
    let runbook_id = runbook.id.to_string();
    let input = HashInput {
        runbook_id: &runbook_id,
        runbook_version: runbook.version,
        incident_id: &incident_id,
        parameters: &shown_parameters,
        steps: &steps,
    };
    let bytes = serde_json::to_vec(&input).map_err(|e| RunbookError::invalid("plan", e.to_string()))?;
    let plan_hash = hex::encode(Sha256::digest(&bytes));
    Ok((Plan { runbook_id, runbook_version: runbook.version, incident_id, parameters: shown_parameters, steps, plan_hash }, requests))
}

/// The secrets among `parameters` (resolved values of parameters declared secret).
pub(crate) fn secrets_of(runbook: &Runbook, requests_parameters: &BTreeMap<String, String>) -> Vec<String> {
    runbook
        .parameters
        .iter()
        .filter(|p| p.secret)
        .filter_map(|p| requests_parameters.get(&p.name))
        .filter(|v| !v.is_empty())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RunbookId, StepDef};
    use atlas_kernel::OrgId;
    use proptest::prelude::*;

    fn runbook(version: i64) -> Runbook {
        let at = time::macros::datetime!(2026-04-01 12:00 UTC);
        Runbook {
            id: RunbookId::generate(),
            org_id: OrgId::generate(),
            name: "restart".into(),
            description: None,
            parameters: vec![
                Parameter { name: "token".into(), description: None, default: None, required: true, secret: true },
                Parameter { name: "pool".into(), description: None, default: Some("200".into()), required: false, secret: false },
            ],
            steps: vec![
                StepDef { kind: StepKind::Manual, title: "Tell the channel".into(), method: None, url: None, body: None },
                StepDef {
                    kind: StepKind::Http,
                    title: "Scale".into(),
                    method: Some(HttpMethod::Post),
                    url: Some("https://ops.example.com/scale/{{incident.reference}}?t={{token}}".into()),
                    body: Some(serde_json::json!({"size": "{{pool}}", "auth": "Bearer {{token}}"})),
                },
            ],
            version,
            created_at: at,
            updated_at: at,
        }
    }

    fn incident() -> BTreeMap<String, String> {
        BTreeMap::from([("reference".to_owned(), "INC-00000001".to_owned())])
    }

    #[test]
    fn a_plan_resolves_templates_and_redacts_secrets() {
        let rb = runbook(1);
        let supplied = BTreeMap::from([("token".to_owned(), "s3cr3t-value".to_owned())]);
        let (plan, real) = plan(&rb, Some("inc_x".into()), &incident(), &supplied).unwrap();
        let shown = plan.steps[1].request.as_ref().unwrap();
        assert_eq!(shown.url, "https://ops.example.com/scale/INC-00000001?t=[redacted]");
        assert_eq!(shown.body.as_ref().unwrap()["auth"], "Bearer [redacted]");
        assert_eq!(shown.body.as_ref().unwrap()["size"], "200");
        assert_eq!(plan.parameters["token"], REDACTED);
        assert!(real[1].as_ref().unwrap().url.ends_with("t=s3cr3t-value"), "the worker gets the real value");
        assert!(!serde_json::to_string(&plan).unwrap().contains("s3cr3t-value"));
    }

    #[test]
    fn a_missing_required_parameter_and_an_unknown_one_are_refused() {
        let rb = runbook(1);
        assert!(
            matches!(plan(&rb, None, &incident(), &BTreeMap::new()), Err(RunbookError::Invalid { field, .. }) if field == "parameters.token")
        );
        let extra = BTreeMap::from([("token".to_owned(), "t".to_owned()), ("nope".to_owned(), "x".to_owned())]);
        assert!(matches!(plan(&rb, None, &incident(), &extra), Err(RunbookError::Invalid { field, .. }) if field == "parameters.nope"));
    }

    proptest! {
        /// The hash is a function of the plan: equal inputs give equal hashes; a new runbook
        /// version or another parameter value changes it.
        #[test]
        fn the_plan_hash_changes_exactly_with_its_inputs(pool_a in "[0-9]{1,4}", pool_b in "[0-9]{1,4}") {
            let rb = runbook(1);
            let with = |pool: &str| BTreeMap::from([("token".to_owned(), "t".to_owned()), ("pool".to_owned(), pool.to_owned())]);
            let h = |rb: &Runbook, pool: &str| plan(rb, None, &incident(), &with(pool)).unwrap().0.plan_hash;
            prop_assert_eq!(h(&rb, &pool_a), h(&rb, &pool_a));
            prop_assert_eq!(h(&rb, &pool_a) == h(&rb, &pool_b), pool_a == pool_b);
            let mut bumped = rb.clone();
            bumped.version = 2;
            prop_assert_ne!(h(&rb, &pool_a), h(&bumped, &pool_a));
        }

        /// Filling never panics, and text without braces comes back unchanged.
        #[test]
        fn filling_is_total(text in "[^{}]{0,40}") {
            prop_assert_eq!(fill(&text, &|_| None).unwrap(), text);
        }
    }
}
