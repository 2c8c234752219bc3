//! The inbound side: Meta's webhook requests.
//!
//! This module owns the three things a webhook handler does before it touches any store:
//! - [`verify_handshake`]: the `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`
//!   subscription check;
//! - [`verify_signature`]: `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the *raw*
//!   body under the app secret, compared in constant time;
//! - [`parse_webhook`]: Meta's nested payload turned into two flat lists, [`InboundMessage`]s
//!   and [`StatusUpdate`]s (plus the changes of other fields, kept raw).
//!
//! Facts from Meta's documentation that the parser honours:
//! - one POST batches up to 1000 updates (bodies up to 3 MB, see [`MAX_BODY_BYTES`]): every
//!   `entry`, every `change`, every message and every status is returned, in payload order;
//! - a message is matched to its contact by `contacts[].wa_id == messages[].from`, never by
//!   array position;
//! - each message and status carries its own `timestamp` (unix seconds, as a string), which is
//!   what [`InboundMessage::timestamp`] holds: never the arrival time;
//! - unknown message types are kept (`kind` is the type string, `text` is `None`); unknown
//!   fields are ignored; unknown status values are kept as [`DeliveryStatus::Other`];
//! - `read` may arrive without `delivered`, and `failed` carries `errors[]`: both are reported
//!   as they come; deciding what they imply is the caller's job;
//! - duplicates happen (Meta retries for 7 days): the parser does not deduplicate.
//!
//! A malformed timestamp, a missing id, or a payload that is not JSON is a [`ParseError`] naming
//! the JSON path of the problem.

use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

/// The request header carrying the payload signature.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// The largest webhook body Meta sends (3 MB); a handler's body limit must be at least this.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// The most updates (messages plus statuses) Meta batches into one POST.
pub const MAX_BATCH_UPDATES: usize = 1000;
/// The `object` of WhatsApp webhooks.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";

type HmacSha256 = Hmac<Sha256>;

/// The `X-Hub-Signature-256` value Meta would send for `raw_body`: `sha256=<lowercase hex>`.
/// For tests and for the sandbox provider, which signs like Meta does.
pub fn signature_header_value(app_secret: &[u8], raw_body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(app_secret, raw_body)))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// True when `header` (the `X-Hub-Signature-256` value) is `sha256=<hex>` and the hex is the
/// HMAC-SHA256 of `raw_body` (the bytes exactly as received) under `app_secret`. The comparison
/// is constant-time. False for a missing or malformed header, and for an empty app secret (a
/// channel without a secret cannot authenticate anything).
pub fn verify_signature(app_secret: &[u8], raw_body: &[u8], header: Option<&str>) -> bool {
    if app_secret.is_empty() {
        return false;
    }
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    if given.len() != 32 {
        return false;
    }
    let expected = hmac_sha256(app_secret, raw_body);
    bool::from(expected.ct_eq(&given))
}

/// The subscription handshake: returns the challenge to echo (as the 200 body) when
/// `hub.mode` is `subscribe` and `hub.verify_token` equals `expected_verify_token` (compared in
/// constant time), `None` otherwise (answer 403). An empty expected token never matches.
pub fn verify_handshake(mode: Option<&str>, token: Option<&str>, challenge: Option<&str>, expected_verify_token: &str) -> Option<String> {
    if mode != Some("subscribe") || expected_verify_token.is_empty() {
        return None;
    }
    let token = token?;
    if !bool::from(token.as_bytes().ct_eq(expected_verify_token.as_bytes())) {
        return None;
    }
    challenge.map(str::to_owned)
}

/// Everything one webhook POST carried, flattened, in payload order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebhookBatch {
    /// Customer messages (`changes[].value.messages[]`).
    pub messages: Vec<InboundMessage>,
    /// Delivery receipts of our outbound messages (`changes[].value.statuses[]`).
    pub statuses: Vec<StatusUpdate>,
    /// Changes of any field other than `messages` (template status updates, account updates…),
    /// untouched.
    pub other_changes: Vec<OtherChange>,
}

impl WebhookBatch {
    /// True when the batch carried no messages, statuses or other changes.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.statuses.is_empty() && self.other_changes.is_empty()
    }
}

/// A message a customer sent to one of our numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// Our number that received it (`metadata.phone_number_id`): identifies the channel.
    pub phone_number_id: String,
    /// Meta's message id (`wamid.…`): the deduplication key.
    pub wamid: String,
    /// The customer's WhatsApp id, E.164 digits without `+`.
    pub from: String,
    /// The customer's profile name, from the contact whose `wa_id` equals `from`.
    pub profile_name: Option<String>,
    /// When the customer sent it (the message's own `timestamp`).
    pub timestamp: OffsetDateTime,
    /// The message type as Meta names it: `text`, `image`, `audio`, `video`, `document`,
    /// `sticker`, `location`, `contacts`, `interactive`, `button`, `reaction`, `unsupported`…
    pub kind: String,
    /// The text, for `kind == "text"`.
    pub text: Option<String>,
}

/// A delivery receipt for a message we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// Our number that sent the message.
    pub phone_number_id: String,
    /// The id [`crate::GraphClient::send`] returned for the message.
    pub wamid: String,
    pub status: DeliveryStatus,
    /// When the status happened (the status's own `timestamp`).
    pub timestamp: OffsetDateTime,
    /// The customer's WhatsApp id.
    pub recipient_id: Option<String>,
    /// The first of `errors[]` (present on `failed`, e.g. code 131047).
    pub error: Option<StatusError>,
}

/// A status value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
    Failed,
    /// Any other value Meta sends (`deleted`, `warning`, `played`…), kept verbatim.
    Other(String),
}

impl DeliveryStatus {
    /// Maps Meta's value; anything unknown becomes [`DeliveryStatus::Other`].
    pub fn parse(value: &str) -> Self {
        match value {
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "failed" => Self::Failed,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Meta's value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Other(s) => s,
        }
    }
}

/// An entry of a status's `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusError {
    /// The Graph error code (e.g. 131047); see [`crate::GraphErrorKind::from_code`].
    pub code: Option<i64>,
    pub title: Option<String>,
    pub message: Option<String>,
    /// `error_data.details`.
    pub details: Option<String>,
}

/// A change of a field other than `messages`, kept as Meta sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct OtherChange {
    /// The WhatsApp Business Account id (`entry[].id`).
    pub waba_id: Option<String>,
    /// The change's `field`, e.g. `message_template_status_update`.
    pub field: String,
    pub value: Value,
}

/// Why a webhook body could not be read. The handler should answer 400: Meta will retry, and a
/// payload that never parses shows up in logs with the exact path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the webhook body is not valid JSON: {0}")]
    Json(String),
    #[error("unexpected webhook object {0:?} (expected \"whatsapp_business_account\")")]
    UnexpectedObject(String),
    #[error("invalid webhook payload at {path}: {reason}")]
    Invalid { path: String, reason: String },
}

fn invalid(path: impl Into<String>, reason: impl Into<String>) -> ParseError {
    ParseError::Invalid { path: path.into(), reason: reason.into() }
}

/// Parses a webhook body (the raw bytes whose signature was verified) into a flat batch.
pub fn parse_webhook(raw: &[u8]) -> Result<WebhookBatch, ParseError> {
    let envelope: Envelope = typed("$", serde_json::from_slice::<Value>(raw).map_err(|e| ParseError::Json(e.to_string()))?)?;
    match envelope.object.as_deref() {
        Some(WHATSAPP_OBJECT) => {}
        Some(other) => return Err(ParseError::UnexpectedObject(other.to_owned())),
        None => return Err(invalid("$.object", "missing")),
    }

    let mut batch = WebhookBatch::default();
    for (i, entry) in envelope.entry.unwrap_or_default().into_iter().enumerate() {
        for (j, change) in entry.changes.unwrap_or_default().into_iter().enumerate() {
            let path = format!("$.entry[{i}].changes[{j}].value");
            let field = change.field.unwrap_or_default();
            if field != "messages" {
                batch.other_changes.push(OtherChange {
                    waba_id: entry.id.clone().map(|id| id.0),
                    field,
                    value: change.value.unwrap_or(Value::Null),
                });
                continue;
            }
            let Some(value) = change.value else {
                continue;
            };
            let value: MessagesValue = typed(&path, value)?;
            parse_messages_value(&path, value, &mut batch)?;
        }
    }
    Ok(batch)
}

fn parse_messages_value(path: &str, value: MessagesValue, batch: &mut WebhookBatch) -> Result<(), ParseError> {
    let messages = value.messages.unwrap_or_default();
    let statuses = value.statuses.unwrap_or_default();
    if messages.is_empty() && statuses.is_empty() {
        return Ok(());
    }
    let phone_number_id = value
        .metadata
        .and_then(|m| m.phone_number_id)
        .map(|id| id.0)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid(format!("{path}.metadata.phone_number_id"), "missing"))?;
    let contacts = value.contacts.unwrap_or_default();

    for (k, m) in messages.into_iter().enumerate() {
        let at = |field: &str| format!("{path}.messages[{k}].{field}");
        let wamid = required(m.id, at("id"))?;
        let from = required(m.from.map(|f| f.0), at("from"))?;
        let timestamp = unix_timestamp(m.timestamp.as_ref(), at("timestamp"))?;
        let kind = required(m.kind, at("type"))?;
        let profile_name = contacts
            .iter()
            .find(|c| c.wa_id.as_ref().is_some_and(|w| w.0 == from))
            .and_then(|c| c.profile.as_ref())
            .and_then(|p| p.name.clone());
        let text = if kind == "text" { m.text.and_then(|t| t.body) } else { None };
        batch.messages.push(InboundMessage { phone_number_id: phone_number_id.clone(), wamid, from, profile_name, timestamp, kind, text });
    }

    for (k, s) in statuses.into_iter().enumerate() {
        let at = |field: &str| format!("{path}.statuses[{k}].{field}");
        let wamid = required(s.id, at("id"))?;
        let status = DeliveryStatus::parse(&required(s.status, at("status"))?);
        let timestamp = unix_timestamp(s.timestamp.as_ref(), at("timestamp"))?;
        let error = s.errors.unwrap_or_default().into_iter().next().map(|e| StatusError {
            code: e.code,
            title: e.title,
            message: e.message,
            details: e.error_data.and_then(|d| d.details),
        });
        batch.statuses.push(StatusUpdate {
            phone_number_id: phone_number_id.clone(),
            wamid,
            status,
            timestamp,
            recipient_id: s.recipient_id.map(|r| r.0),
            error,
        });
    }
    Ok(())
}

fn typed<T: DeserializeOwned>(path: &str, value: Value) -> Result<T, ParseError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let full = if inner == "." || inner.is_empty() { path.to_owned() } else { format!("{path}.{inner}") };
        invalid(full, e.into_inner().to_string())
    })
}

fn required(value: Option<String>, path: String) -> Result<String, ParseError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(invalid(path, "missing")),
    }
}

/// Meta sends unix seconds as a string (`"1700000000"`); a JSON integer is accepted too.
fn unix_timestamp(value: Option<&Value>, path: String) -> Result<OffsetDateTime, ParseError> {
    let seconds = match value {
        None | Some(Value::Null) => return Err(invalid(path, "missing")),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64().filter(|n| *n >= 0),
        Some(_) => None,
    };
    let bad = || invalid(path.clone(), format!("not a unix timestamp in seconds: {}", value.map(Value::to_string).unwrap_or_default()));
    let seconds = seconds.ok_or_else(bad)?;
    OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| bad())
}

// ---- the wire shapes: lenient (every field optional, unknown fields ignored) ----

#[derive(Deserialize)]
struct Envelope {
    object: Option<String>,
    entry: Option<Vec<Entry>>,
}

#[derive(Deserialize)]
struct Entry {
    id: Option<Id>,
    changes: Option<Vec<Change>>,
}

#[derive(Deserialize)]
struct Change {
    field: Option<String>,
    value: Option<Value>,
}

#[derive(Deserialize)]
struct MessagesValue {
    metadata: Option<Metadata>,
    contacts: Option<Vec<Contact>>,
    messages: Option<Vec<RawMessage>>,
    statuses: Option<Vec<RawStatus>>,
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: Option<Id>,
}

#[derive(Deserialize)]
struct Contact {
    wa_id: Option<Id>,
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    from: Option<Id>,
    id: Option<String>,
    timestamp: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<RawText>,
}

#[derive(Deserialize)]
struct RawText {
    body: Option<String>,
}

#[derive(Deserialize)]
struct RawStatus {
    id: Option<String>,
    status: Option<String>,
    timestamp: Option<Value>,
    recipient_id: Option<Id>,
    errors: Option<Vec<RawError>>,
}

#[derive(Deserialize)]
struct RawError {
    code: Option<i64>,
    title: Option<String>,
    message: Option<String>,
    error_data: Option<RawErrorData>,
}

#[derive(Deserialize)]
struct RawErrorData {
    details: Option<String>,
}

/// A numeric id Meta sends as a string; a JSON integer is accepted too.
#[derive(Clone)]
struct Id(String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            S(String),
            U(u64),
        }
        match Repr::deserialize(d) {
            Ok(Repr::S(s)) => Ok(Id(s)),
            Ok(Repr::U(u)) => Ok(Id(u.to_string())),
            Err(_) => Err(serde::de::Error::custom("expected a string id")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_raw_body() {
        // RFC 4231 test case 2
        let header = signature_header_value(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(header, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(verify_signature(b"Jefe", b"what do ya want for nothing?", Some(&header)));
    }

    #[test]
    fn status_values_round_trip() {
        for s in ["sent", "delivered", "read", "failed", "deleted"] {
            assert_eq!(DeliveryStatus::parse(s).as_str(), s);
        }
        assert_eq!(DeliveryStatus::parse("played"), DeliveryStatus::Other("played".into()));
    }
}
