//! Errors as clients see them: the code table of DESIGN.md, and the one place where domain and
//! adapter errors become HTTP statuses and codes. A 500 logs its cause chain and shows the
//! client only the request id.

use crate::envelope::json_response;
use crate::request_id;
use atlas_accounts::{AccessError, AuthError};
use atlas_idempotency::IdempotencyError;
use atlas_kernel::{PageError, StoreError};
use atlas_ratelimit::LimiterError;
use atlas_runs::RunsError;
use atlas_scopes::Scope;
use atlas_tasks::WorkError;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// The error codes of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthorized,
    Forbidden,
    IpNotAllowed,
    NotFound,
    MethodNotAllowed,
    ValidationError,
    PayloadTooLarge,
    WindowClosed,
    TemplateNotFound,
    InvalidTransition,
    CycleDetected,
    VersionConflict,
    Conflict,
    IdempotencyKeyReused,
    IdempotencyInProgress,
    RateLimited,
    ProviderUnavailable,
    InternalError,
    ChangeConflict,
    /// A runbook run's plan hash no longer matches the current plan.
    PlanStale,
    TaskBlocked,
    /// An agent tried to send in a conversation a person owns.
    ConversationHandedOff,
    /// `PROVIDER_UNAVAILABLE` as 502: the upstream (an LLM endpoint) answered with an error.
    ProviderBadGateway,
}

impl ErrorCode {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::IpNotAllowed => "IP_NOT_ALLOWED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::WindowClosed => "WINDOW_CLOSED",
            ErrorCode::TemplateNotFound => "TEMPLATE_NOT_FOUND",
            ErrorCode::InvalidTransition => "INVALID_TRANSITION",
            ErrorCode::CycleDetected => "CYCLE_DETECTED",
            ErrorCode::VersionConflict => "VERSION_CONFLICT",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorCode::IdempotencyInProgress => "IDEMPOTENCY_IN_PROGRESS",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::ProviderUnavailable => "PROVIDER_UNAVAILABLE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::ChangeConflict => "CHANGE_CONFLICT",
            ErrorCode::PlanStale => "PLAN_STALE",
            ErrorCode::TaskBlocked => "TASK_BLOCKED",
            ErrorCode::ConversationHandedOff => "CONVERSATION_HANDED_OFF",
            ErrorCode::ProviderBadGateway => "PROVIDER_UNAVAILABLE",
        }
    }

    /// The HTTP status.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::IpNotAllowed => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::ValidationError | ErrorCode::InvalidTransition => StatusCode::BAD_REQUEST,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::WindowClosed | ErrorCode::TemplateNotFound | ErrorCode::CycleDetected | ErrorCode::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ErrorCode::VersionConflict | ErrorCode::Conflict | ErrorCode::IdempotencyInProgress | ErrorCode::ChangeConflict => {
                StatusCode::CONFLICT
            }
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::PlanStale => StatusCode::CONFLICT,
            ErrorCode::TaskBlocked => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ConversationHandedOff => StatusCode::CONFLICT,
            ErrorCode::ProviderBadGateway => StatusCode::BAD_GATEWAY,
        }
    }

    /// Whether retrying the same request may succeed.
    pub const fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::IdempotencyInProgress
                | ErrorCode::RateLimited
                | ErrorCode::ProviderUnavailable
                | ErrorCode::ProviderBadGateway
                | ErrorCode::InternalError
        )
    }
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub hint: Option<String>,
    pub details: Map<String, Value>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
    /// Whether retrying the same request may succeed (the code's default, or the domain's word:
    /// a conflict with a concurrent change is retryable). A retryable answer is never stored
    /// for replay.
    pub retryable: bool,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), hint: None, details: Map::new(), retry_after: None, retryable: code.retryable() }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a detail.
    pub fn detail(mut self, key: &str, value: Value) -> Self {
        self.details.insert(key.to_owned(), value);
        self
    }

    /// VALIDATION_ERROR for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(ErrorCode::ValidationError, format!("{field}: {message}"))
            .detail("fields", json!([{ "field": field, "message": message }]))
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
            .hint("send `Authorization: Bearer atlas_sk_…` with a live key, or a current access token")
    }

    /// 403 naming the scope the credential lacks.
    pub fn missing_scope(scope: Scope) -> Self {
        Self::new(ErrorCode::Forbidden, format!("this credential lacks the scope `{scope}`")).detail("missing_scope", json!(scope.as_str()))
    }

    /// 404 without saying whether the thing exists elsewhere.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// 500: logs the cause chain, shows the client nothing internal.
    pub fn internal(cause: impl std::fmt::Debug) -> Self {
        tracing::error!(cause = ?cause, "internal error");
        Self::new(ErrorCode::InternalError, "internal error; quote the request id when reporting it")
    }

    /// The body bytes of this error.
    pub fn body(&self) -> Vec<u8> {
        let mut error = json!({
            "code": self.code.as_str(),
            "message": self.message,
            "retryable": self.retryable,
        });
        if let Some(hint) = &self.hint {
            error["hint"] = json!(hint);
        }
        if !self.details.is_empty() {
            error["details"] = Value::Object(self.details.clone());
        }
        serde_json::to_vec(&json!({"ok": false, "error": error, "request_id": request_id::current()})).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_response(self.code.status(), self.body());
        if self.code == ErrorCode::PayloadTooLarge {
            // The rest of the body was never read: the connection cannot carry another request.
            response.headers_mut().insert("connection", HeaderValue::from_static("close"));
        }
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert("retry-after", v);
            }
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<RunsError> for ApiError {
    fn from(e: RunsError) -> Self {
        ApiError::internal(e)
    }
}

impl From<IdempotencyError> for ApiError {
    fn from(e: IdempotencyError) -> Self {
        ApiError::internal(e)
    }
}

impl From<LimiterError> for ApiError {
    fn from(e: LimiterError) -> Self {
        ApiError::internal(e)
    }
}

impl From<PageError> for ApiError {
    fn from(e: PageError) -> Self {
        match e {
            PageError::Limit => ApiError::field("limit", e.to_string()),
            PageError::Cursor(_) => ApiError::field("cursor", e.to_string()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::IpNotAllowed => ApiError::new(ErrorCode::IpNotAllowed, e.to_string()),
            AuthError::Store(s) => ApiError::internal(s),
            other => ApiError::unauthorized(other.to_string()),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::ScopeNotHeld(missing) => {
                let names: Vec<_> = missing.iter().map(|s| s.as_str()).collect();
                let mut err =
                    ApiError::new(ErrorCode::Forbidden, format!("a key cannot grant scopes its creator lacks: {}", names.join(", ")))
                        .detail("missing_scopes", json!(names));
                if let Some(first) = missing.first() {
                    err = err.detail("missing_scope", json!(first.as_str()));
                }
                err
            }
            AccessError::BeyondParentLimit { limit, ref message } => ApiError::new(ErrorCode::Forbidden, message.clone())
                .detail("limit", json!(limit))
                .hint("mint within the minting key's own expiry and IP allowlist"),
            AccessError::NotDefaultOrganization => ApiError::new(ErrorCode::Forbidden, e.to_string())
                .hint("bootstrap with the key printed at first start (`admin api key: atlas_sk_…`)"),
            AccessError::Invalid { field, message } => ApiError::field(field, message),
            AccessError::NotFound => ApiError::not_found("resource"),
            AccessError::AlreadyBootstrapped => ApiError::new(ErrorCode::Conflict, e.to_string())
                .hint("sign in with POST /v1/atlas/auth/token, or mint keys with an admin key"),
            AccessError::Store(s) => ApiError::internal(s),
        }
    }
}

impl From<WorkError> for ApiError {
    fn from(e: WorkError) -> Self {
        let ids = |ids: &[atlas_tasks::TaskId]| json!(ids.iter().map(ToString::to_string).collect::<Vec<_>>());
        match e {
            WorkError::Invalid { field, message } => ApiError::field(field, message),
            WorkError::NotFound(what) => ApiError::not_found(what),
            WorkError::DuplicateKey => ApiError::new(ErrorCode::Conflict, "a project with this key exists")
                .hint("choose another key")
                .detail("fields", json!([{ "field": "key", "message": "is taken by another project" }])),
            WorkError::VersionConflict { current } => {
                ApiError::new(ErrorCode::VersionConflict, format!("the current version is {current}"))
                    .hint("read the resource again and retry with If-Match set to its ETag")
                    .detail("current_version", json!(current))
            }
            WorkError::Cycle { path } => ApiError::new(ErrorCode::CycleDetected, "the change would close a cycle")
                .hint("details.cycle lists the loop, from this task back to itself")
                .detail("cycle", ids(&path)),
            WorkError::Blocked { blocked_by } => ApiError::new(ErrorCode::TaskBlocked, "the task has unfinished dependencies")
                .hint("finish the tasks in details.blocked_by first")
                .detail("blocked_by", ids(&blocked_by)),
            WorkError::Store(s) => ApiError::internal(s),
        }
    }
}
