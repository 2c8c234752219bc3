//! The per-route guard, declared once per route in the route table: authenticate the
//! credential (API key in `Authorization: Bearer`, `X-API-Key` or `Authorization: ApiKey`, or
//! an access JWT), check the route's scope, then spend rate-limit quota (so 401 and 403 spend
//! none) and put the rate-limit headers on whatever the handler answers.

use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::ratelimit;
use crate::routes::RouteSpec;
use crate::state::AppState;
use atlas_accounts::Credential;
use atlas_ratelimit::{bucket_key, RouteClass};
use atlas_scopes::Principal;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What a bootstrap without a usable credential is told.
const BOOTSTRAP_HINT: &str = "bootstrap needs the admin key printed once at first start (the `admin api key: atlas_sk_…` line): \
     send it as `Authorization: Bearer atlas_sk_…`";

/// The presented credential, as text.
enum Presented<'a> {
    ApiKey(&'a str),
    Jwt(&'a str),
}

fn presented(parts: &Parts) -> Result<Option<Presented<'_>>, ApiError> {
    if let Some(value) = parts.headers.get("x-api-key") {
        let text = value.to_str().map_err(|_| ApiError::unauthorized("malformed X-API-Key header"))?;
        return Ok(Some(Presented::ApiKey(text.trim())));
    }
    let Some(value) = parts.headers.get("authorization") else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let (scheme, credential) = text.trim().split_once(' ').ok_or_else(|| ApiError::unauthorized("malformed Authorization header"))?;
    let credential = credential.trim();
    if scheme.eq_ignore_ascii_case("apikey") {
        Ok(Some(Presented::ApiKey(credential)))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if credential.starts_with("atlas_sk_") || credential.matches('.').count() != 2 {
            Ok(Some(Presented::ApiKey(credential)))
        } else {
            Ok(Some(Presented::Jwt(credential)))
        }
    } else {
        Err(ApiError::unauthorized(format!("unsupported authorization scheme `{scheme}`")))
    }
}

/// The caller a request's credential names (API key or access token), or 401.
pub(crate) async fn authenticate(state: &AppState, parts: &mut Parts) -> Result<Principal, ApiError> {
    let ip = ClientIp::from_request_parts(parts, state).await.map(|c| c.0).unwrap_or(None);
    match presented(parts)? {
        None => Err(ApiError::unauthorized("no credential: send `Authorization: Bearer <key or token>`")),
        Some(Presented::ApiKey(key)) => Ok(state.accounts.authenticate(Credential::ApiKey(key), ip).await?),
        Some(Presented::Jwt(token)) => state.jwt.verify(token, state.clock.now()).map_err(ApiError::unauthorized),
    }
}

/// Middleware for one route: credential, scope, quota, headers.
pub async fn guard(State((state, spec)): State<(AppState, &'static RouteSpec)>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let principal = if let Some(scope) = spec.scope {
        let principal = match authenticate(&state, &mut parts).await {
            Ok(p) => p,
            Err(mut e) => {
                if spec.operation == "auth.bootstrap" {
                    e.hint = Some(BOOTSTRAP_HINT.into());
                }
                return e.into_response();
            }
        };
        if !principal.has(scope) {
            return ApiError::missing_scope(scope).into_response();
        }
        Some(principal)
    } else {
        None
    };
    let Some(class) = spec.class else {
        if let Some(p) = principal {
            parts.extensions.insert(p);
        }
        return next.run(Request::from_parts(parts, body)).await;
    };
    let subject = match (&principal, class) {
        (Some(p), c) if c != RouteClass::Auth => p.org_id.to_string(),
        _ => {
            let ip = ClientIp::from_request_parts(&mut parts, &state).await.map(|c| c.0).unwrap_or(None);
            format!("ip:{}", ip.map(|i| i.to_string()).unwrap_or_else(|| "unknown".into()))
        }
    };
    let policy = state.policies.policy_for(principal.as_ref().map(|p| p.org_id), class);
    let now = state.clock.now();
    let verdict = match state.limiter.check(&bucket_key(class, &subject), &policy).await {
        Ok(v) => v,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut response = if verdict.allowed {
        if let Some(p) = principal {
            parts.extensions.insert(p);
        }
        next.run(Request::from_parts(parts, body)).await
    } else {
        state.metrics.rate_limited(class.as_str());
        ratelimit::limited(class, &verdict).into_response()
    };
    ratelimit::write_headers(response.headers_mut(), class, &policy, &verdict, now);
    response
}

/// The caller, as the guard verified it.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Principal>().cloned().map(Caller).ok_or_else(|| ApiError::unauthorized("no credential"))
    }
}
