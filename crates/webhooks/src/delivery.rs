//! Deliveries and their attempts, as the API lists them: one [`Delivery`] per (event, endpoint),
//! its status, its schedule and its recorded [`Attempt`]s (status code, latency, a bounded
//! [`ResponseExcerpt`], error), and the pure step that puts a finished delivery back on the
//! schedule ([`Delivery::replayed`]).

use crate::endpoint::EndpointId;
use crate::event::{EventId, EventType};
use atlas_kernel::{typed_id, OrgId};
use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

typed_id!(
    /// One event bound for one endpoint: the `webhook-id` and `X-Atlas-Delivery` of every
    /// attempt, the same on retries and replays, so receivers can deduplicate by it.
    DeliveryId,
    "dlv"
);
typed_id!(
    /// One attempt at a delivery.
    AttemptId,
    "dla"
);

/// The most bytes of a receiver's response body that are kept.
pub const MAX_EXCERPT_BYTES: usize = 1024;
/// The most attempts a listed delivery shows (the newest).
pub const MAX_LISTED_ATTEMPTS: usize = 50;

/// The beginning of a receiver's response body: at most [`MAX_EXCERPT_BYTES`] bytes of UTF-8
/// (invalid sequences replaced, cut at a character boundary), and whether more was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseExcerpt {
    text: String,
    truncated: bool,
}

impl ResponseExcerpt {
    /// The excerpt of `body` (the sender reads at most `MAX_EXCERPT_BYTES + 1` bytes and passes
    /// them here; any longer input is cut the same way).
    pub fn new(body: &[u8]) -> Self {
        let mut truncated = body.len() > MAX_EXCERPT_BYTES;
        let mut text = String::from_utf8_lossy(&body[..body.len().min(MAX_EXCERPT_BYTES)]).into_owned();
        if text.len() > MAX_EXCERPT_BYTES {
            let mut cut = MAX_EXCERPT_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            truncated = true;
        }
        Self { text, truncated }
    }

    /// Rebuilds a stored excerpt (cut again if it is too long).
    pub fn from_stored(text: &str, truncated: bool) -> Self {
        let excerpt = Self::new(text.as_bytes());
        Self { truncated: truncated || excerpt.truncated, ..excerpt }
    }

    /// The text kept.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the body was longer than what is kept.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or in one).
    Pending,
    /// A 2xx answer arrived within the timeout.
    Succeeded,
    /// Retries ran out, the receiver answered 410, the target was refused, or its endpoint
    /// was disabled. A replay puts it back to `Pending`.
    Failed,
}

impl DeliveryStatus {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        [DeliveryStatus::Pending, DeliveryStatus::Succeeded, DeliveryStatus::Failed].into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an attempt (or a delivery) failed: a stable `code` and a human message.
///
/// Codes: `http_status` (a non-2xx answer), `gone` (410), `timeout`, `connect`, `tls`,
/// `protocol` (a malformed answer), `dns` (the host did not resolve), `address_refused` (the
/// SSRF guard refused the target), `invalid_url`, `no_secret`, `endpoint_disabled`,
/// `retries_exhausted` (added to the delivery's error when the schedule gives up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    pub code: String,
    pub message: String,
}

impl AttemptError {
    /// An error with this code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub id: AttemptId,
    pub delivery_id: DeliveryId,
    /// The attempt's number: 1 for the first, counting on across replays, so (delivery,
    /// number) is unique.
    pub number: u32,
    /// When the attempt started (and the time it was signed with).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// From the start of the attempt (name resolution included) to the answer or the failure.
    pub latency_ms: u64,
    pub outcome: AttemptOutcome,
    /// The receiver's status code, when it answered.
    pub status_code: Option<u16>,
    pub response_excerpt: Option<ResponseExcerpt>,
    pub error: Option<AttemptError>,
}

/// One event bound for one endpoint, with its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: DeliveryId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub endpoint_id: EndpointId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    /// Attempts made in all, replays included (0 before the first).
    pub attempt_count: u32,
    /// Attempts made before the current schedule began: 0, or `attempt_count` at the last
    /// replay. The schedule counts attempts from here.
    #[serde(skip)]
    pub schedule_base: u32,
    /// When the current schedule's first attempt was claimed: its 24-hour deadline counts
    /// from here.
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_attempt_at: Option<OffsetDateTime>,
    /// When the next attempt is due (pending deliveries only).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// The last failed attempt's error, or why the delivery failed.
    pub last_error: Option<AttemptError>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// The newest attempts first, at most [`MAX_LISTED_ATTEMPTS`].
    pub attempts: Vec<Attempt>,
}

/// A replay was asked of a delivery still on its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the delivery is still pending: it will be attempted on its schedule")]
pub struct StillPending;

impl Delivery {
    /// The delivery put back on a fresh schedule at `now`: pending, due now, its schedule
    /// starting after the attempts made so far (`schedule_base = attempt_count`), no first
    /// attempt yet (the claim of its next attempt starts a new 24-hour window), no finish time.
    /// Its id, and so its `webhook-id`, stays: a receiver that processed it before may
    /// recognise it. Earlier attempts stay listed, and attempt numbers count on.
    ///
    /// # Errors
    /// `StillPending` when it has not finished.
    pub fn replayed(&self, now: OffsetDateTime) -> Result<Self, StillPending> {
        if self.status == DeliveryStatus::Pending {
            return Err(StillPending);
        }
        Ok(Self {
            status: DeliveryStatus::Pending,
            schedule_base: self.attempt_count,
            first_attempt_at: None,
            next_attempt_at: Some(now),
            finished_at: None,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_excerpt_keeps_at_most_one_kibibyte_of_text() {
        let short = ResponseExcerpt::new(b"ok");
        assert_eq!((short.text(), short.truncated()), ("ok", false));
        let exact = ResponseExcerpt::new(&[b'a'; MAX_EXCERPT_BYTES]);
        assert_eq!((exact.text().len(), exact.truncated()), (MAX_EXCERPT_BYTES, false));
        let long = ResponseExcerpt::new(&[b'a'; 5000]);
        assert_eq!((long.text().len(), long.truncated()), (MAX_EXCERPT_BYTES, true));
    }

    #[test]
    fn an_excerpt_cuts_at_a_character_boundary_and_replaces_invalid_bytes() {
        let mut body = vec![b'a'; MAX_EXCERPT_BYTES - 1];
        body.extend_from_slice("é".as_bytes());
        let excerpt = ResponseExcerpt::new(&body);
        assert!(excerpt.text().len() <= MAX_EXCERPT_BYTES);
        assert!(excerpt.truncated());
        let invalid = vec![0xff; MAX_EXCERPT_BYTES];
        let excerpt = ResponseExcerpt::new(&invalid);
        assert!(excerpt.text().len() <= MAX_EXCERPT_BYTES && excerpt.text().starts_with('\u{fffd}'));
        assert_eq!(ResponseExcerpt::from_stored(&"x".repeat(3000), false).text().len(), MAX_EXCERPT_BYTES);
    }

    fn finished() -> Delivery {
        let at = datetime!(2026-04-07 12:00 UTC);
        Delivery {
            id: DeliveryId::generate(),
            org_id: OrgId::generate(),
            endpoint_id: EndpointId::generate(),
            event_id: EventId::generate(),
            event_type: EventType::RUN_UPDATED,
            status: DeliveryStatus::Failed,
            attempt_count: 29,
            schedule_base: 0,
            first_attempt_at: Some(at),
            next_attempt_at: None,
            last_error: Some(AttemptError::new("http_status", "HTTP 500")),
            created_at: at,
            finished_at: Some(at + time::Duration::hours(24)),
            attempts: Vec::new(),
        }
    }

    #[test]
    fn a_replay_puts_a_finished_delivery_on_a_fresh_schedule_under_the_same_id() {
        let d = finished();
        let now = datetime!(2026-04-09 08:00 UTC);
        let r = d.replayed(now).unwrap();
        assert_eq!((r.id, r.status, r.attempt_count, r.schedule_base), (d.id, DeliveryStatus::Pending, 29, 29));
        assert_eq!((r.first_attempt_at, r.next_attempt_at, r.finished_at), (None, Some(now), None));
        assert_eq!(r.replayed(now), Err(StillPending));
    }

    #[test]
    fn statuses_have_wire_names() {
        for s in [DeliveryStatus::Pending, DeliveryStatus::Succeeded, DeliveryStatus::Failed] {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let json = serde_json::to_value(finished()).unwrap();
        assert_eq!(json["event_type"], "atlas.run.updated");
        assert!(json.get("org_id").is_none());
    }
}
