//! Endpoints (subscriptions): where events go, which ones ([`EventFilters`]), whether delivery
//! is on ([`EndpointState`], and why it is off), the signing secrets through rotations
//! ([`SecretRotation`]), and the pure transitions an endpoint goes through (patch, rotate,
//! disable). Every transition bumps `version` and `updated_at`; stores write them with a
//! compare-and-swap on the previous version.

use crate::event::EventFilters;
use crate::signing::WebhookSecret;
use crate::ssrf::TargetUrl;
use atlas_kernel::{typed_id, OrgId};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};
use std::fmt;
use time::{Duration, OffsetDateTime};

typed_id!(
    /// A webhook endpoint (subscription).
    EndpointId,
    "whep"
);

/// How long a rotated-out secret keeps signing beside the new one.
pub const SECRET_OVERLAP: Duration = Duration::hours(24);
/// How long an endpoint may fail every attempt before it is disabled.
pub const FAILING_LIMIT: Duration = Duration::hours(24);
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// Why delivery to an endpoint is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisabledReason {
    /// Someone disabled it (`PATCH {"enabled": false}`).
    ByUser,
    /// The receiver answered `410 Gone`.
    Gone,
    /// Every attempt failed for [`FAILING_LIMIT`].
    #[serde(rename = "failing_for_24h")]
    FailingFor24h,
}

impl DisabledReason {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DisabledReason::ByUser => "by_user",
            DisabledReason::Gone => "gone",
            DisabledReason::FailingFor24h => "failing_for_24h",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        [DisabledReason::ByUser, DisabledReason::Gone, DisabledReason::FailingFor24h].into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for DisabledReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether events are delivered to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointState {
    Enabled,
    /// Nothing is fanned out to it or delivered; it says why and since when.
    Disabled {
        reason: DisabledReason,
        at: OffsetDateTime,
    },
}

impl EndpointState {
    /// Whether deliveries go out.
    pub const fn is_enabled(&self) -> bool {
        matches!(self, EndpointState::Enabled)
    }
}

/// A secret on its way out: it signs beside the current one until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiringSecret {
    pub secret: WebhookSecret,
    pub expires_at: OffsetDateTime,
}

/// An endpoint's signing secrets: the current one and, for [`SECRET_OVERLAP`] after a
/// rotation, the one it replaced. Rotating again within the overlap drops the oldest secret
/// at once (only two secrets ever sign).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRotation {
    pub current: WebhookSecret,
    pub previous: Option<RetiringSecret>,
}

impl SecretRotation {
    /// A fresh endpoint's secrets: one, nothing retiring.
    pub fn new(current: WebhookSecret) -> Self {
        Self { current, previous: None }
    }

    /// `new_secret` becomes current at `now`; the current one keeps signing until
    /// `now + SECRET_OVERLAP`.
    #[must_use]
    pub fn rotate(&self, now: OffsetDateTime, new_secret: WebhookSecret) -> Self {
        let retiring = RetiringSecret { secret: self.current.clone(), expires_at: now.saturating_add(SECRET_OVERLAP) };
        Self { current: new_secret, previous: Some(retiring) }
    }

    /// The secrets that sign at `now`, newest first: the current one, then the previous one
    /// while `now < expires_at`.
    pub fn signing_secrets(&self, now: OffsetDateTime) -> Vec<&WebhookSecret> {
        let mut secrets = vec![&self.current];
        if let Some(previous) = self.previous.as_ref().filter(|p| now < p.expires_at) {
            secrets.push(&previous.secret);
        }
        secrets
    }
}

/// Whether an endpoint failing since `failing_since` has failed for long enough, at `now`, to
/// be disabled ([`FAILING_LIMIT`]).
pub fn failing_too_long(failing_since: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    failing_since.is_some_and(|since| now - since >= FAILING_LIMIT)
}

/// A webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: EndpointId,
    pub org_id: OrgId,
    pub url: TargetUrl,
    pub description: Option<String>,
    /// Which events it receives (the API's `events`).
    pub filters: EventFilters,
    pub state: EndpointState,
    /// Never serialized: the secret is shown once, at creation and at rotation.
    pub secrets: SecretRotation,
    /// Since when every attempt has failed (`None` after any success). The queue keeps it.
    pub failing_since: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// 1 at creation, plus one per change.
    pub version: i64,
}

/// A validated `PATCH`: `None` leaves a field as it is (`description: Some(None)` clears it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointPatch {
    pub url: Option<TargetUrl>,
    pub description: Option<Option<String>>,
    pub filters: Option<EventFilters>,
    pub enabled: Option<bool>,
}

impl WebhookEndpoint {
    /// A new, enabled endpoint at version 1.
    pub fn new(
        org_id: OrgId,
        url: TargetUrl,
        description: Option<String>,
        filters: EventFilters,
        secret: WebhookSecret,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: EndpointId::generate(),
            org_id,
            url,
            description,
            filters,
            state: EndpointState::Enabled,
            secrets: SecretRotation::new(secret),
            failing_since: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    /// Whether deliveries go out.
    pub fn is_enabled(&self) -> bool {
        self.state.is_enabled()
    }

    fn changed(mut self, now: OffsetDateTime) -> Self {
        self.updated_at = now;
        self.version += 1;
        self
    }

    /// The endpoint after `patch` at `now`. Enabling a disabled endpoint clears its
    /// `failing_since` (it starts afresh); disabling an enabled one records `ByUser`;
    /// `enabled` equal to the current state changes nothing (a disabled endpoint keeps its
    /// reason). The version is bumped even by an empty patch (the write still happened).
    #[must_use]
    pub fn patched(&self, patch: &EndpointPatch, now: OffsetDateTime) -> Self {
        let mut next = self.clone();
        if let Some(url) = &patch.url {
            next.url = url.clone();
        }
        if let Some(description) = &patch.description {
            next.description = description.clone();
        }
        if let Some(filters) = &patch.filters {
            next.filters = filters.clone();
        }
        match (patch.enabled, self.state) {
            (Some(true), EndpointState::Disabled { .. }) => {
                next.state = EndpointState::Enabled;
                next.failing_since = None;
            }
            (Some(false), EndpointState::Enabled) => next.state = EndpointState::Disabled { reason: DisabledReason::ByUser, at: now },
            _ => {}
        }
        next.changed(now)
    }

    /// The endpoint after `new_secret` replaced the current one at `now`.
    #[must_use]
    pub fn rotated(&self, new_secret: WebhookSecret, now: OffsetDateTime) -> Self {
        let mut next = self.clone();
        next.secrets = self.secrets.rotate(now, new_secret);
        next.changed(now)
    }

    /// The endpoint disabled for `reason` at `now` (unchanged when already disabled).
    #[must_use]
    pub fn disabled(&self, reason: DisabledReason, now: OffsetDateTime) -> Self {
        if !self.is_enabled() {
            return self.clone();
        }
        let mut next = self.clone();
        next.state = EndpointState::Disabled { reason, at: now };
        next.changed(now)
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// The API shape: `{"id", "url", "description", "events", "enabled", "disabled_reason",
/// "disabled_at", "failing_since", "created_at", "updated_at", "version"}`. Never the secrets,
/// never the organization.
impl Serialize for WebhookEndpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (reason, at) = match self.state {
            EndpointState::Enabled => (None, None),
            EndpointState::Disabled { reason, at } => (Some(reason), Some(rfc3339(at))),
        };
        let mut st = s.serialize_struct("WebhookEndpoint", 11)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("url", &self.url)?;
        st.serialize_field("description", &self.description)?;
        st.serialize_field("events", &self.filters)?;
        st.serialize_field("enabled", &self.is_enabled())?;
        st.serialize_field("disabled_reason", &reason)?;
        st.serialize_field("disabled_at", &at)?;
        st.serialize_field("failing_since", &self.failing_since.map(rfc3339))?;
        st.serialize_field("created_at", &rfc3339(self.created_at))?;
        st.serialize_field("updated_at", &rfc3339(self.updated_at))?;
        st.serialize_field("version", &self.version)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssrf::validate_url;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-04-07 12:00 UTC);

    fn secret(byte: u8) -> WebhookSecret {
        WebhookSecret::from_entropy(&[byte; 32]).unwrap()
    }

    fn endpoint() -> WebhookEndpoint {
        WebhookEndpoint::new(
            OrgId::generate(),
            validate_url("https://hooks.example.com/atlas").unwrap(),
            Some("CRM".into()),
            EventFilters::parse(&["incident.*"]).unwrap(),
            secret(1),
            NOW,
        )
    }

    #[test]
    fn a_fresh_endpoint_is_enabled_at_version_one_with_one_signing_secret() {
        let e = endpoint();
        assert!(e.is_enabled());
        assert_eq!(e.version, 1);
        assert_eq!(e.secrets.signing_secrets(NOW), vec![&secret(1)]);
    }

    #[test]
    fn after_a_rotation_both_secrets_sign_for_24_hours_newest_first_then_only_the_new_one() {
        let rotated = SecretRotation::new(secret(1)).rotate(NOW, secret(2));
        assert_eq!(rotated.signing_secrets(NOW), vec![&secret(2), &secret(1)]);
        assert_eq!(rotated.signing_secrets(NOW + Duration::hours(24) - Duration::SECOND), vec![&secret(2), &secret(1)]);
        assert_eq!(rotated.signing_secrets(NOW + Duration::hours(24)), vec![&secret(2)]);
    }

    #[test]
    fn rotating_twice_within_the_overlap_drops_the_oldest_secret() {
        let twice = SecretRotation::new(secret(1)).rotate(NOW, secret(2)).rotate(NOW + Duration::hours(1), secret(3));
        assert_eq!(twice.signing_secrets(NOW + Duration::hours(1)), vec![&secret(3), &secret(2)]);
        assert_eq!(twice.previous.unwrap().expires_at, NOW + Duration::hours(25));
    }

    #[test]
    fn rotating_an_endpoint_bumps_its_version() {
        let e = endpoint().rotated(secret(9), NOW + Duration::minutes(1));
        assert_eq!((e.version, e.updated_at), (2, NOW + Duration::minutes(1)));
        assert_eq!(e.secrets.current, secret(9));
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let e = endpoint();
        let later = NOW + Duration::minutes(5);
        let patch = EndpointPatch { description: Some(None), ..EndpointPatch::default() };
        let p = e.patched(&patch, later);
        assert_eq!(p.description, None);
        assert_eq!((p.url.clone(), p.filters.clone(), p.state), (e.url.clone(), e.filters.clone(), e.state));
        assert_eq!((p.version, p.updated_at), (2, later));
    }

    #[test]
    fn disabling_by_patch_records_the_user_and_enabling_starts_afresh() {
        let later = NOW + Duration::minutes(5);
        let off = endpoint().patched(&EndpointPatch { enabled: Some(false), ..EndpointPatch::default() }, later);
        assert_eq!(off.state, EndpointState::Disabled { reason: DisabledReason::ByUser, at: later });

        let mut failing = endpoint().disabled(DisabledReason::FailingFor24h, later);
        failing.failing_since = Some(NOW - Duration::days(1));
        let still_off = failing.patched(&EndpointPatch { enabled: Some(false), ..EndpointPatch::default() }, later);
        assert_eq!(still_off.state, EndpointState::Disabled { reason: DisabledReason::FailingFor24h, at: later }, "keeps its reason");
        let on = failing.patched(&EndpointPatch { enabled: Some(true), ..EndpointPatch::default() }, later);
        assert_eq!((on.state, on.failing_since), (EndpointState::Enabled, None));
    }

    #[test]
    fn disabling_an_already_disabled_endpoint_changes_nothing() {
        let gone = endpoint().disabled(DisabledReason::Gone, NOW);
        assert_eq!(gone.version, 2);
        assert_eq!(gone.disabled(DisabledReason::FailingFor24h, NOW + Duration::hours(1)), gone);
    }

    #[test]
    fn an_endpoint_is_failing_too_long_after_24_hours_of_failures() {
        assert!(!failing_too_long(None, NOW));
        assert!(!failing_too_long(Some(NOW - Duration::hours(24) + Duration::SECOND), NOW));
        assert!(failing_too_long(Some(NOW - Duration::hours(24)), NOW));
    }

    #[test]
    fn the_api_shape_never_shows_secrets_or_the_organization() {
        let e = endpoint().disabled(DisabledReason::Gone, NOW);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["events"], serde_json::json!(["incident.*"]));
        assert_eq!(json["enabled"], false);
        assert_eq!(json["disabled_reason"], "gone");
        assert_eq!(json["disabled_at"], "2026-04-07T12:00:00Z");
        assert_eq!(json["url"], "https://hooks.example.com/atlas");
        let text = json.to_string();
        assert!(!text.contains("whsec_") && !text.contains("org_") && !text.contains("secret"), "{text}");
        assert_eq!(DisabledReason::parse("failing_for_24h"), Some(DisabledReason::FailingFor24h));
        assert_eq!(serde_json::to_value(DisabledReason::FailingFor24h).unwrap(), "failing_for_24h");
    }
}
