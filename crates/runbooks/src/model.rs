//! Runbooks and executions: the definition (parameters, ordered steps), its checks, an
//! execution and the status of each of its steps, and the errors.

use atlas_kernel::{typed_id, OrgId, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;
use time::OffsetDateTime;

typed_id!(
    /// One runbook.
    RunbookId,
    "rbk"
);

typed_id!(
    /// One execution of a runbook.
    ExecutionId,
    "rbx"
);

/// The most steps a runbook holds.
pub const MAX_STEPS: usize = 50;

/// A step's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A checklist line for a person.
    #[serde(alias = "Manual", alias = "MANUAL")]
    Manual,
    /// An HTTP request Atlas makes.
    #[serde(alias = "Http", alias = "HTTP")]
    Http,
}

/// The methods an http step may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[serde(alias = "get")]
    Get,
    #[serde(alias = "post")]
    Post,
    #[serde(alias = "put")]
    Put,
    #[serde(alias = "patch")]
    Patch,
    #[serde(alias = "delete")]
    Delete,
}

impl HttpMethod {
    /// The method's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// A declared parameter: `{{name}}` in a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Used when an execution gives no value.
    #[serde(default)]
    pub default: Option<String>,
    /// An execution must give a value (or the parameter a default).
    #[serde(default)]
    pub required: bool,
    /// Its value is redacted from plans, executions and response excerpts.
    #[serde(default)]
    pub secret: bool,
}

/// One step as defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    pub kind: StepKind,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// A URL template (http steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A body template (http steps): a string, or JSON whose strings are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub body: Option<serde_json::Value>,
}

/// A runbook's content, as created or replaced.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunbookDraft {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    pub steps: Vec<StepDef>,
}

/// A runbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Runbook {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: RunbookId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub name: String,
    pub description: Option<String>,
    pub parameters: Vec<Parameter>,
    pub steps: Vec<StepDef>,
    /// 1 at creation, plus one per change; a plan names the version it was made from.
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Where an execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl ExecutionStatus {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Queued => "queued",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Failed => "failed",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Succeeded, Self::Failed].into_iter().find(|s| s.as_str() == name)
    }
}

/// Where one step of an execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not run yet.
    Pending,
    /// A manual step: listed for a person, not performed by Atlas.
    Manual,
    Succeeded,
    Failed,
    /// Not run because an earlier step failed.
    Skipped,
}

/// A step as run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecutedStep {
    pub index: usize,
    pub kind: StepKind,
    pub title: String,
    /// The request as planned, secrets redacted (http steps).
    pub request: Option<crate::plan::PlannedRequest>,
    pub status: StepStatus,
    pub response_status: Option<u16>,
    /// The start of the answer's body, secrets redacted.
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

/// One real run of a runbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Execution {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: ExecutionId,
    #[serde(skip)]
    pub org_id: OrgId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub runbook_id: RunbookId,
    /// The runbook version the steps were planned from.
    pub runbook_version: i64,
    /// The incident (id) the run is for.
    pub incident_id: Option<String>,
    pub status: ExecutionStatus,
    pub plan_hash: String,
    /// The resolved parameters, secrets redacted.
    pub parameters: BTreeMap<String, String>,
    pub steps: Vec<ExecutedStep>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// Why a runbook use case refused or failed.
#[derive(Debug, Error)]
pub enum RunbookError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("runbook not found")]
    NotFound,
    #[error("the runbook or its parameters changed since the plan was made")]
    PlanStale { expected: String, actual: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RunbookError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        RunbookError::Invalid { field: field.into(), message: message.into() }
    }
}

fn known_placeholder(name: &str, parameters: &[Parameter]) -> bool {
    crate::plan::INCIDENT_FIELDS.iter().any(|f| name.strip_prefix("incident.") == Some(*f)) || parameters.iter().any(|p| p.name == name)
}

impl RunbookDraft {
    /// Checks the content: a name, 1 to [`MAX_STEPS`] steps, http steps with a method and an
    /// absolute http(s) URL, manual steps with neither, unique well-formed parameter names, and
    /// every `{{placeholder}}` naming `incident.<field>` or a declared parameter.
    ///
    /// # Errors
    /// `Invalid` naming the field.
    pub fn check(&self) -> Result<(), RunbookError> {
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(RunbookError::invalid("name", "1 to 200 characters"));
        }
        if self.description.as_ref().is_some_and(|d| d.chars().count() > 10_000) {
            return Err(RunbookError::invalid("description", "at most 10000 characters"));
        }
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(RunbookError::invalid("steps", format!("1 to {MAX_STEPS} steps")));
        }
        for (i, p) in self.parameters.iter().enumerate() {
            let ok = !p.name.is_empty()
                && p.name.len() <= 64
                && !p.name.starts_with("incident.")
                && p.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
            if !ok {
                return Err(RunbookError::invalid(
                    format!("parameters[{i}].name"),
                    "letters, digits, _ . - (1 to 64), not starting with incident.",
                ));
            }
            if self.parameters[..i].iter().any(|q| q.name == p.name) {
                return Err(RunbookError::invalid(format!("parameters[{i}].name"), "declared twice"));
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            if step.title.trim().is_empty() || step.title.chars().count() > 500 {
                return Err(RunbookError::invalid(format!("steps[{i}].title"), "1 to 500 characters"));
            }
            match step.kind {
                StepKind::Manual => {
                    if step.method.is_some() || step.url.is_some() || step.body.is_some() {
                        return Err(RunbookError::invalid(format!("steps[{i}]"), "a manual step has no method, url or body"));
                    }
                }
                StepKind::Http => {
                    if step.method.is_none() {
                        return Err(RunbookError::invalid(format!("steps[{i}].method"), "an http step needs a method"));
                    }
                    let Some(url) = &step.url else {
                        return Err(RunbookError::invalid(format!("steps[{i}].url"), "an http step needs a url"));
                    };
                    let sample =
                        crate::plan::fill(url, &|_| Some("x".into())).map_err(|m| RunbookError::invalid(format!("steps[{i}].url"), m))?;
                    atlas_webhooks::validate_url(&sample).map_err(|e| RunbookError::invalid(format!("steps[{i}].url"), e.to_string()))?;
                }
            }
            let mut templates: Vec<&str> = step.url.iter().map(String::as_str).collect();
            if let Some(body) = &step.body {
                crate::plan::strings_in(body, &mut templates);
            }
            for t in templates {
                for name in crate::plan::placeholders(t).map_err(|m| RunbookError::invalid(format!("steps[{i}]"), m))? {
                    if !known_placeholder(&name, &self.parameters) {
                        return Err(RunbookError::invalid(
                            format!("steps[{i}]"),
                            format!(
                                "{{{{{name}}}}} names neither an incident field ({}) nor a declared parameter",
                                crate::plan::INCIDENT_FIELDS.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
