//! What can go wrong when calling the Graph API, and whether trying again can help.
//!
//! This module owns [`GraphError`], the parsing of Meta's error envelope
//! (`{"error": {"message", "type", "code", "error_subcode", "error_data": {"details"},
//! "fbtrace_id"}}`) and the classification of every failure as *retryable* (the outbox worker
//! backs off and tries again) or *permanent* (the message fails with the provider's code).
//!
//! # Classification
//!
//! A known Graph `error.code` decides first; without one (or with a code not in the table) the
//! HTTP status decides: 429 and 5xx are retryable, everything else is permanent.
//!
//! | Graph code | meaning (Meta's title) | [`GraphErrorKind`] | retryable |
//! |---|---|---|---|
//! | 4 | API too many calls (app rate limit) | `RateLimited` | yes |
//! | 80007 | rate limit issues (WABA rate limit) | `RateLimited` | yes |
//! | 130429 | rate limit hit (Cloud API throughput reached) | `RateLimited` | yes |
//! | 131056 | pair rate limit (too many messages to one recipient) | `RateLimited` | yes |
//! | 1 | API unknown (possibly temporary) | `Temporary` | yes |
//! | 2 | API service (temporary downtime) | `Temporary` | yes |
//! | 131000 | something went wrong | `Temporary` | yes |
//! | 131016 | service unavailable | `Temporary` | yes |
//! | 131047 | re-engagement message (more than 24 h since the customer last replied) | `ReEngagementRequired` | no |
//! | 131026 | message undeliverable | `Undeliverable` | no |
//! | 131051 | unsupported message type | `UnsupportedMessageType` | no |
//! | 131052, 131053 | media download / upload error | `Media` | no |
//! | 132000–132069 | template errors (param count mismatch, does not exist, paused, disabled…) | `Template` | no |
//! | 100 | invalid parameter | `InvalidParameter` | no |
//! | 190 | access token expired or invalid: permanent for this message; the *channel* needs a new token ([`GraphError::is_access_token_error`]) | `AccessToken` | no |
//! | 131030 | recipient phone number not in allowed list (test numbers) | `RecipientNotAllowed` | no |
//! | 133010 | business phone number not registered | `PhoneNumberNotRegistered` | no |
//! | *(other code or none)*, HTTP 429 | | `RateLimited` | yes |
//! | *(other code or none)*, HTTP 5xx | | `ServerError` | yes |
//! | *(other code or none)*, other HTTP status | | `Other` | no |
//! | *(no HTTP response)*: timeout, connection refused/reset | | `Transport` | yes |
//! | a 2xx whose body has no message id | | `InvalidResponse` | no (Meta may have accepted the message: resending could deliver it twice) |
//! | refused before any call (e.g. an empty phone number id) | | `InvalidRequest` | no |
//!
//! `retry_after` carries the response's `Retry-After` header (delta-seconds or an HTTP date)
//! when there is one; the caller's backoff should wait at least that long.
//!
//! Note on duplicates: the Graph API has no idempotency key. A timeout after Meta received the
//! request is retryable, and the retry may deliver the message a second time; that is the
//! at-least-once end of the trade-off, chosen because a lost message is worse than a repeated one.

use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

/// A failed call to the Graph API, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct GraphError {
    /// Whether sending the same request again later can succeed.
    pub retryable: bool,
    /// What kind of failure this is (see the module table).
    pub kind: GraphErrorKind,
    /// The HTTP status, when a response arrived.
    pub http_status: Option<u16>,
    /// Graph `error.code`.
    pub code: Option<i64>,
    /// Graph `error.error_subcode`.
    pub subcode: Option<i64>,
    /// Graph `error.message`, or a description of the transport failure.
    pub message: String,
    /// Graph `error.error_data.details`.
    pub details: Option<String>,
    /// Graph `error.fbtrace_id`, for Meta support.
    pub fbtrace_id: Option<String>,
    /// The `Retry-After` header, when present and parseable.
    pub retry_after: Option<Duration>,
}

/// The class of a [`GraphError`]; see the module documentation for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GraphErrorKind {
    /// Throughput or rate limit (codes 4, 80007, 130429, 131056, or HTTP 429). Retryable.
    RateLimited,
    /// Meta says the failure is temporary (codes 1, 2, 131000, 131016). Retryable.
    Temporary,
    /// HTTP 5xx without a known code. Retryable.
    ServerError,
    /// No HTTP response: timeout, connection refused or reset. Retryable.
    Transport,
    /// 131047: more than 24 hours since the customer last replied; only a template can be sent.
    ReEngagementRequired,
    /// 131026: the message could not be delivered to this recipient.
    Undeliverable,
    /// 131051: unsupported message type.
    UnsupportedMessageType,
    /// 131052 / 131053: media download or upload failed.
    Media,
    /// 132000–132069: template errors (does not exist, parameter mismatch, paused, disabled…).
    Template,
    /// 100: invalid parameter.
    InvalidParameter,
    /// 190: the access token expired or is invalid. The channel needs a new token.
    AccessToken,
    /// 131030: the recipient is not in the allowed list (test phone numbers).
    RecipientNotAllowed,
    /// 133010: the business phone number is not registered.
    PhoneNumberNotRegistered,
    /// A 2xx response whose body carries no message id. Not retried: Meta may have accepted it.
    InvalidResponse,
    /// Refused locally before any request was made.
    InvalidRequest,
    /// Any other error: permanent.
    Other,
}

impl GraphErrorKind {
    /// The kind a known Graph `error.code` maps to, `None` for codes outside the table.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            4 | 80007 | 130429 | 131056 => Self::RateLimited,
            1 | 2 | 131000 | 131016 => Self::Temporary,
            131047 => Self::ReEngagementRequired,
            131026 => Self::Undeliverable,
            131051 => Self::UnsupportedMessageType,
            131052 | 131053 => Self::Media,
            132000..=132069 => Self::Template,
            100 => Self::InvalidParameter,
            190 => Self::AccessToken,
            131030 => Self::RecipientNotAllowed,
            133010 => Self::PhoneNumberNotRegistered,
            _ => return None,
        })
    }

    /// Classifies a response: the code first, then the HTTP status (429 and 5xx retryable).
    pub fn classify(http_status: Option<u16>, code: Option<i64>) -> Self {
        if let Some(kind) = code.and_then(Self::from_code) {
            return kind;
        }
        match http_status {
            None => Self::Transport,
            Some(429) => Self::RateLimited,
            Some(s) if (500..=599).contains(&s) => Self::ServerError,
            Some(_) => Self::Other,
        }
    }

    /// Whether an error of this kind is worth retrying.
    pub const fn is_retryable(self) -> bool {
        matches!(self, Self::RateLimited | Self::Temporary | Self::ServerError | Self::Transport)
    }

    /// A stable snake_case name, for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Temporary => "temporary",
            Self::ServerError => "server_error",
            Self::Transport => "transport",
            Self::ReEngagementRequired => "re_engagement_required",
            Self::Undeliverable => "undeliverable",
            Self::UnsupportedMessageType => "unsupported_message_type",
            Self::Media => "media",
            Self::Template => "template",
            Self::InvalidParameter => "invalid_parameter",
            Self::AccessToken => "access_token",
            Self::RecipientNotAllowed => "recipient_not_allowed",
            Self::PhoneNumberNotRegistered => "phone_number_not_registered",
            Self::InvalidResponse => "invalid_response",
            Self::InvalidRequest => "invalid_request",
            Self::Other => "other",
        }
    }
}

impl GraphError {
    /// True when the access token was refused (code 190): the message fails, and the channel's
    /// token must be replaced before any other send can succeed.
    pub fn is_access_token_error(&self) -> bool {
        self.kind == GraphErrorKind::AccessToken
    }

    /// True for throughput and rate limits (back off, possibly per channel).
    pub fn is_rate_limited(&self) -> bool {
        self.kind == GraphErrorKind::RateLimited
    }

    /// Builds the error for an HTTP error response from its status, headers' `Retry-After`
    /// value and body. A body that is not Meta's envelope still yields an error classified by
    /// status, with (a bounded excerpt of) the body as its message.
    pub fn from_response(http_status: u16, retry_after: Option<&str>, body: &[u8]) -> Self {
        let retry_after = retry_after.and_then(parse_retry_after);
        match serde_json::from_slice::<Envelope>(body) {
            Ok(Envelope { error: Some(e) }) => {
                let kind = GraphErrorKind::classify(Some(http_status), e.code);
                GraphError {
                    retryable: kind.is_retryable(),
                    kind,
                    http_status: Some(http_status),
                    code: e.code,
                    subcode: e.error_subcode,
                    message: e.message.unwrap_or_else(|| format!("HTTP {http_status} from the Graph API")),
                    details: e.error_data.and_then(|d| d.details),
                    fbtrace_id: e.fbtrace_id,
                    retry_after,
                }
            }
            _ => {
                let kind = GraphErrorKind::classify(Some(http_status), None);
                let excerpt = excerpt(body);
                GraphError {
                    retryable: kind.is_retryable(),
                    kind,
                    http_status: Some(http_status),
                    code: None,
                    subcode: None,
                    message: if excerpt.is_empty() {
                        format!("HTTP {http_status} from the Graph API")
                    } else {
                        format!("HTTP {http_status} from the Graph API: {excerpt}")
                    },
                    details: None,
                    fbtrace_id: None,
                    retry_after,
                }
            }
        }
    }

    /// A failure with no HTTP response (timeout, connection error). Retryable.
    pub fn transport(message: impl Into<String>) -> Self {
        Self::local(GraphErrorKind::Transport, None, message)
    }

    pub(crate) fn local(kind: GraphErrorKind, http_status: Option<u16>, message: impl Into<String>) -> Self {
        GraphError {
            retryable: kind.is_retryable(),
            kind,
            http_status,
            code: None,
            subcode: None,
            message: message.into(),
            details: None,
            fbtrace_id: None,
            retry_after: None,
        }
    }

    fn describe(&self) -> String {
        let mut out = String::from("WhatsApp Graph API error");
        match (self.http_status, self.code) {
            (Some(s), Some(c)) => out.push_str(&format!(" (HTTP {s}, code {c})")),
            (Some(s), None) => out.push_str(&format!(" (HTTP {s})")),
            (None, Some(c)) => out.push_str(&format!(" (code {c})")),
            (None, None) => {}
        }
        out.push_str(&format!(", {}{}: {}", self.kind.as_str(), if self.retryable { ", retryable" } else { "" }, self.message));
        out
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
    code: Option<i64>,
    error_subcode: Option<i64>,
    error_data: Option<ErrorData>,
    fbtrace_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorData {
    details: Option<String>,
}

const EXCERPT_CHARS: usize = 300;

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut out: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Parses a `Retry-After` value: delta-seconds (`"30"`) or an IMF-fixdate
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, counted from now; a date in the past gives zero).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let format = time::macros::format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    let at = time::PrimitiveDateTime::parse(value, format).ok()?.assume_utc();
    let delta = at - OffsetDateTime::now_utc();
    Some(if delta.is_positive() { Duration::from_secs(delta.whole_seconds().unsigned_abs()) } else { Duration::ZERO })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_in_the_table_has_its_documented_class() {
        let retryable = [4, 80007, 130429, 131056, 131000, 131016, 2, 1];
        let permanent = [131047, 131026, 131051, 131052, 131053, 132000, 132001, 132015, 132069, 100, 190, 131030, 133010];
        for code in retryable {
            let kind = GraphErrorKind::from_code(code).unwrap();
            assert!(kind.is_retryable(), "code {code} should be retryable");
        }
        for code in permanent {
            let kind = GraphErrorKind::from_code(code).unwrap();
            assert!(!kind.is_retryable(), "code {code} should be permanent");
        }
        assert_eq!(GraphErrorKind::from_code(132070), None);
        assert_eq!(GraphErrorKind::from_code(131999), None);
    }

    #[test]
    fn without_a_known_code_the_http_status_decides() {
        use GraphErrorKind as K;
        assert_eq!(K::classify(Some(429), None), K::RateLimited);
        assert_eq!(K::classify(Some(500), Some(999_999)), K::ServerError);
        assert_eq!(K::classify(Some(503), None), K::ServerError);
        assert_eq!(K::classify(Some(400), Some(999_999)), K::Other);
        assert_eq!(K::classify(None, None), K::Transport);
        // a known code wins over the status
        assert_eq!(K::classify(Some(500), Some(131047)), K::ReEngagementRequired);
        assert_eq!(K::classify(Some(400), Some(130429)), K::RateLimited);
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let future = OffsetDateTime::now_utc() + time::Duration::seconds(120);
        let format =
            time::macros::format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
        let header = future.format(format).unwrap();
        let got = parse_retry_after(&header).unwrap();
        assert!(got <= Duration::from_secs(120) && got >= Duration::from_secs(110));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), None);
        assert_eq!(parse_retry_after(""), None);
    }

    #[test]
    fn a_non_json_error_body_is_kept_as_a_bounded_excerpt() {
        let body = "<html>".to_string() + &"x".repeat(1000);
        let e = GraphError::from_response(502, None, body.as_bytes());
        assert!(e.retryable);
        assert_eq!(e.kind, GraphErrorKind::ServerError);
        assert!(e.message.starts_with("HTTP 502 from the Graph API: <html>"));
        assert!(e.message.chars().count() < 400);
    }

    #[test]
    fn display_names_status_code_and_class() {
        let body = br#"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."},"fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}}"#;
        let e = GraphError::from_response(400, None, body);
        assert_eq!(
            e.to_string(),
            "WhatsApp Graph API error (HTTP 400, code 131047), re_engagement_required: (#131047) Re-engagement message"
        );
        assert_eq!(e.fbtrace_id.as_deref(), Some("Az8or2yhqkZfEZ-_4Qn_Bam"));
        assert!(e.details.unwrap().contains("24 hours"));
    }
}
