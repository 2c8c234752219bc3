//! Signing and verifying deliveries. Every delivery is signed twice, so both conventions verify:
//!
//! - **Standard Webhooks** (<https://www.standardwebhooks.com>): `webhook-id` (the delivery id,
//!   the same on every retry and replay of that delivery), `webhook-timestamp` (Unix seconds of
//!   this attempt) and `webhook-signature: v1,<base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}">`.
//!   During a secret rotation every live secret signs, newest first, space-separated, so a
//!   receiver holding either secret verifies (see `SecretRotation`). Any official Standard
//!   Webhooks library verifies these headers with the `whsec_…` secret.
//! - **Atlas**: `X-Atlas-Event` (the event type), `X-Atlas-Delivery` (the delivery id) and
//!   `X-Atlas-Signature: sha256=<lowercase hex of HMAC-SHA256 over the body alone>`, as GitHub
//!   signs. Only the **current** (newest) secret signs it: a receiver verifying this header
//!   switches to the new secret at rotation (the Standard Webhooks header is the one that
//!   carries both during the 24-hour overlap). It has no timestamp, so it does not protect
//!   against replays; receivers that care use the Standard Webhooks headers.
//!
//! Key bytes: for both signatures the HMAC key is the secret's **decoded bytes** (the base64
//! after `whsec_`, decoded), never the `whsec_…` text, as the Standard Webhooks libraries do.
//!
//! A secret is `whsec_` and the standard base64 (with padding) of 24 to 64 random bytes; Atlas
//! generates 32, from entropy the caller supplies. Verification helpers for receivers and
//! embedders compare in constant time.

use crate::event::EventType;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;
use thiserror::Error;
use time::{Duration, OffsetDateTime};

type HmacSha256 = Hmac<Sha256>;

/// The prefix of every secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The fewest random bytes a secret may hold.
pub const MIN_SECRET_BYTES: usize = 24;
/// The most random bytes a secret may hold.
pub const MAX_SECRET_BYTES: usize = 64;
/// How many random bytes Atlas puts in the secrets it generates.
pub const GENERATED_SECRET_BYTES: usize = 32;
/// How far a `webhook-timestamp` may lie from the verifier's clock, either way, by default.
pub const DEFAULT_TOLERANCE: Duration = Duration::minutes(5);

/// `webhook-id`: the delivery id.
pub const HEADER_ID: &str = "webhook-id";
/// `webhook-timestamp`: Unix seconds of the attempt.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// `webhook-signature`: space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// `X-Atlas-Event`: the event type.
pub const HEADER_ATLAS_EVENT: &str = "X-Atlas-Event";
/// `X-Atlas-Delivery`: the delivery id.
pub const HEADER_ATLAS_DELIVERY: &str = "X-Atlas-Delivery";
/// `X-Atlas-Signature`: `sha256=<hex>` of the body under the current secret.
pub const HEADER_ATLAS_SIGNATURE: &str = "X-Atlas-Signature";
/// The `User-Agent` deliveries carry.
pub const USER_AGENT: &str = "Atlas-Webhooks/1";

/// Why a string or some bytes are not a webhook secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SecretError {
    #[error("a webhook secret starts with `whsec_`")]
    MissingPrefix,
    #[error("a webhook secret is `whsec_` and standard base64")]
    NotBase64,
    #[error("a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len}")]
    WrongLength { len: usize },
}

/// A signing secret. Its `Debug` never shows it; [`WebhookSecret::expose`] does, for the one
/// response that reveals it and for the store.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    bytes: Vec<u8>,
}

impl WebhookSecret {
    /// A secret made of `entropy`, which the caller draws from a CSPRNG (32 bytes, normally).
    ///
    /// # Errors
    /// `WrongLength` unless it holds 24 to 64 bytes.
    pub fn from_entropy(entropy: &[u8]) -> Result<Self, SecretError> {
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&entropy.len()) {
            return Err(SecretError::WrongLength { len: entropy.len() });
        }
        Ok(Self { bytes: entropy.to_vec() })
    }

    /// Reads `whsec_<base64>` (padding optional, as some libraries drop it).
    ///
    /// # Errors
    /// `MissingPrefix`, `NotBase64` or `WrongLength`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.trim().strip_prefix(SECRET_PREFIX).ok_or(SecretError::MissingPrefix)?;
        let bytes = STANDARD.decode(encoded).or_else(|_| STANDARD_NO_PAD.decode(encoded)).map_err(|_| SecretError::NotBase64)?;
        Self::from_entropy(&bytes)
    }

    /// The secret as receivers configure it: `whsec_` and standard base64 with padding.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.bytes))
    }

    /// The HMAC key: the decoded bytes.
    pub fn key_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.bytes).expect("HMAC takes keys of any length")
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(whsec_…)")
    }
}

fn standard_mac(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = secret.mac();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn body_mac(secret: &WebhookSecret, body: &[u8]) -> Vec<u8> {
    let mut mac = secret.mac();
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// One Standard Webhooks signature: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn sign_standard(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    format!("v1,{}", STANDARD.encode(standard_mac(secret, id, timestamp, body)))
}

/// The `X-Atlas-Signature` value: `sha256=<lowercase hex HMAC-SHA256 of the body>`.
pub fn sign_atlas(secret: &WebhookSecret, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(body_mac(secret, body)))
}

/// Signing needs at least one secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("a delivery is signed with at least one secret")]
pub struct NoSigningSecret;

/// Every header a delivery carries beside the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub webhook_id: String,
    pub webhook_timestamp: String,
    /// One `v1,…` per secret, newest first, space-separated.
    pub webhook_signature: String,
    pub atlas_event: String,
    pub atlas_delivery: String,
    pub atlas_signature: String,
}

impl SignedHeaders {
    /// The headers as (name, value) pairs, with `Content-Type: application/json` and the
    /// `User-Agent`, ready for an HTTP client.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Content-Type", "application/json".to_owned()),
            ("User-Agent", USER_AGENT.to_owned()),
            (HEADER_ID, self.webhook_id.clone()),
            (HEADER_TIMESTAMP, self.webhook_timestamp.clone()),
            (HEADER_SIGNATURE, self.webhook_signature.clone()),
            (HEADER_ATLAS_EVENT, self.atlas_event.clone()),
            (HEADER_ATLAS_DELIVERY, self.atlas_delivery.clone()),
            (HEADER_ATLAS_SIGNATURE, self.atlas_signature.clone()),
        ]
    }
}

/// Signs one attempt of a delivery: `delivery_id` becomes `webhook-id` and `X-Atlas-Delivery`,
/// `timestamp` (the attempt's, whole seconds) `webhook-timestamp`; every secret in `secrets`
/// (newest first, as `SecretRotation::signing_secrets` gives them) adds a `v1` signature, and
/// the first one alone signs `X-Atlas-Signature`.
///
/// # Errors
/// `NoSigningSecret` when `secrets` is empty.
pub fn sign(
    delivery_id: &str,
    event_type: &EventType,
    timestamp: OffsetDateTime,
    body: &[u8],
    secrets: &[&WebhookSecret],
) -> Result<SignedHeaders, NoSigningSecret> {
    let current = secrets.first().ok_or(NoSigningSecret)?;
    let seconds = timestamp.unix_timestamp();
    let signatures: Vec<String> = secrets.iter().map(|s| sign_standard(s, delivery_id, seconds, body)).collect();
    Ok(SignedHeaders {
        webhook_id: delivery_id.to_owned(),
        webhook_timestamp: seconds.to_string(),
        webhook_signature: signatures.join(" "),
        atlas_event: event_type.as_str().to_owned(),
        atlas_delivery: delivery_id.to_owned(),
        atlas_signature: sign_atlas(current, body),
    })
}

/// Why a delivery does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    #[error("`webhook-timestamp` is not Unix seconds")]
    MalformedTimestamp,
    #[error("the message timestamp is older than the tolerance")]
    TimestampTooOld,
    #[error("the message timestamp is further in the future than the tolerance")]
    TimestampTooNew,
    #[error("the signature header is not `sha256=<64 hex digits>`")]
    MalformedSignature,
    #[error("no signature matches")]
    NoMatchingSignature,
}

/// The three Standard Webhooks headers as a receiver got them (`None` when absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StandardHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

impl<'a> StandardHeaders<'a> {
    /// Reads the headers through `lookup`, which gets the lower-case header name (as an HTTP
    /// library's case-insensitive map takes it).
    pub fn from_lookup(mut lookup: impl FnMut(&'static str) -> Option<&'a str>) -> Self {
        Self { id: lookup(HEADER_ID), timestamp: lookup(HEADER_TIMESTAMP), signature: lookup(HEADER_SIGNATURE) }
    }
}

/// Verifies a delivery the Standard Webhooks way: the timestamp lies within `tolerance` of
/// `now` (either way; [`DEFAULT_TOLERANCE`] is 5 minutes), and one of the space-separated `v1,`
/// signatures is the HMAC of `"{id}.{timestamp}.{body}"` under `secret` (compared in constant
/// time; signatures of other versions are ignored). `body` is the raw body, byte for byte.
///
/// # Errors
/// `MissingHeader`, `MalformedTimestamp`, `TimestampTooOld`, `TimestampTooNew` or
/// `NoMatchingSignature`.
pub fn verify(
    secret: &WebhookSecret,
    headers: &StandardHeaders<'_>,
    body: &[u8],
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let id = headers.id.ok_or(VerifyError::MissingHeader(HEADER_ID))?;
    let timestamp = headers.timestamp.ok_or(VerifyError::MissingHeader(HEADER_TIMESTAMP))?;
    let signatures = headers.signature.ok_or(VerifyError::MissingHeader(HEADER_SIGNATURE))?;
    let timestamp = timestamp.trim();
    if timestamp.is_empty() || timestamp.len() > 18 || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp);
    }
    let seconds: i64 = timestamp.parse().map_err(|_| VerifyError::MalformedTimestamp)?;
    let age = now.unix_timestamp().saturating_sub(seconds);
    let tolerance = tolerance.whole_seconds().max(0);
    if age > tolerance {
        return Err(VerifyError::TimestampTooOld);
    }
    if age < -tolerance {
        return Err(VerifyError::TimestampTooNew);
    }
    let expected = standard_mac(secret, id, seconds, body);
    let mut matched = subtle::Choice::from(0u8);
    for candidate in signatures.split_ascii_whitespace() {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        if let Ok(given) = STANDARD.decode(encoded) {
            matched |= given.ct_eq(&expected);
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

/// Verifies an `X-Atlas-Signature` header (`sha256=<hex>`) against the raw body, in constant
/// time. No timestamp is involved.
///
/// # Errors
/// `MissingHeader`, `MalformedSignature` or `NoMatchingSignature`.
pub fn verify_atlas_signature(secret: &WebhookSecret, header: Option<&str>, body: &[u8]) -> Result<(), VerifyError> {
    let header = header.ok_or(VerifyError::MissingHeader(HEADER_ATLAS_SIGNATURE))?;
    let encoded = header.trim().strip_prefix("sha256=").ok_or(VerifyError::MalformedSignature)?;
    let given = hex::decode(encoded).map_err(|_| VerifyError::MalformedSignature)?;
    if given.len() != 32 {
        return Err(VerifyError::MalformedSignature);
    }
    if bool::from(given.ct_eq(&body_mac(secret, body))) {
        Ok(())
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The published Standard Webhooks test vector (standard-webhooks spec and libraries).
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn vector_now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(VECTOR_TIMESTAMP).unwrap()
    }

    fn vector_headers(signature: &str) -> StandardHeaders<'_> {
        StandardHeaders { id: Some(VECTOR_ID), timestamp: Some("1614265330"), signature: Some(signature) }
    }

    fn secret(byte: u8) -> WebhookSecret {
        WebhookSecret::from_entropy(&[byte; GENERATED_SECRET_BYTES]).unwrap()
    }

    #[test]
    fn the_standard_webhooks_test_vector_signs_as_published() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        assert_eq!(secret.key_bytes().len(), 24);
        assert_eq!(sign_standard(&secret, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY), VECTOR_SIGNATURE);
        assert_eq!(verify(&secret, &vector_headers(VECTOR_SIGNATURE), VECTOR_BODY, vector_now(), DEFAULT_TOLERANCE), Ok(()));
    }

    #[test]
    fn the_test_vector_fails_with_another_body_id_or_secret() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let now = vector_now();
        let wrong = Err(VerifyError::NoMatchingSignature);
        assert_eq!(verify(&secret, &vector_headers(VECTOR_SIGNATURE), br#"{"test": 2432232315}"#, now, DEFAULT_TOLERANCE), wrong);
        let other_id = StandardHeaders { id: Some("msg_other"), ..vector_headers(VECTOR_SIGNATURE) };
        assert_eq!(verify(&secret, &other_id, VECTOR_BODY, now, DEFAULT_TOLERANCE), wrong);
        assert_eq!(verify(&self::secret(1), &vector_headers(VECTOR_SIGNATURE), VECTOR_BODY, now, DEFAULT_TOLERANCE), wrong);
    }

    #[test]
    fn any_one_of_several_v1_signatures_verifies_and_other_versions_are_ignored() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let now = vector_now();
        let several = format!("v1,Zm9v v2,abc {VECTOR_SIGNATURE}");
        assert_eq!(verify(&secret, &vector_headers(&several), VECTOR_BODY, now, DEFAULT_TOLERANCE), Ok(()));
        let only_other_versions = "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(
            verify(&secret, &vector_headers(only_other_versions), VECTOR_BODY, now, DEFAULT_TOLERANCE),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn timestamps_outside_the_tolerance_either_way_are_refused() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let h = vector_headers(VECTOR_SIGNATURE);
        let at = vector_now();
        assert_eq!(verify(&secret, &h, VECTOR_BODY, at + Duration::minutes(5), DEFAULT_TOLERANCE), Ok(()));
        assert_eq!(verify(&secret, &h, VECTOR_BODY, at - Duration::minutes(5), DEFAULT_TOLERANCE), Ok(()));
        assert_eq!(
            verify(&secret, &h, VECTOR_BODY, at + Duration::minutes(5) + Duration::seconds(1), DEFAULT_TOLERANCE),
            Err(VerifyError::TimestampTooOld)
        );
        assert_eq!(
            verify(&secret, &h, VECTOR_BODY, at - Duration::minutes(5) - Duration::seconds(1), DEFAULT_TOLERANCE),
            Err(VerifyError::TimestampTooNew)
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let now = vector_now();
        let full = vector_headers(VECTOR_SIGNATURE);
        for (headers, error) in [
            (StandardHeaders { id: None, ..full }, VerifyError::MissingHeader(HEADER_ID)),
            (StandardHeaders { timestamp: None, ..full }, VerifyError::MissingHeader(HEADER_TIMESTAMP)),
            (StandardHeaders { signature: None, ..full }, VerifyError::MissingHeader(HEADER_SIGNATURE)),
            (StandardHeaders { timestamp: Some("16142653x0"), ..full }, VerifyError::MalformedTimestamp),
            (StandardHeaders { timestamp: Some("-5"), ..full }, VerifyError::MalformedTimestamp),
            (StandardHeaders { timestamp: Some("99999999999999999999999"), ..full }, VerifyError::MalformedTimestamp),
            (StandardHeaders { signature: Some("v1,***"), ..full }, VerifyError::NoMatchingSignature),
        ] {
            assert_eq!(verify(&secret, &headers, VECTOR_BODY, now, DEFAULT_TOLERANCE), Err(error), "{headers:?}");
        }
    }

    #[test]
    fn headers_are_read_case_insensitively_through_a_lookup() {
        let received = [("Webhook-Id", VECTOR_ID), ("WEBHOOK-TIMESTAMP", "1614265330"), ("webhook-signature", VECTOR_SIGNATURE)];
        let headers = StandardHeaders::from_lookup(|name| received.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v));
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        assert_eq!(verify(&secret, &headers, VECTOR_BODY, vector_now(), DEFAULT_TOLERANCE), Ok(()));
    }

    #[test]
    fn secrets_are_whsec_and_base64_of_24_to_64_bytes() {
        let s = secret(7);
        let text = s.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&text).unwrap(), s);
        assert_eq!(WebhookSecret::parse(text.trim_end_matches('=')).unwrap(), s);
        assert_eq!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(SecretError::MissingPrefix));
        assert_eq!(WebhookSecret::parse("whsec_!!!"), Err(SecretError::NotBase64));
        assert_eq!(WebhookSecret::parse("whsec_AAAA"), Err(SecretError::WrongLength { len: 3 }));
        assert_eq!(WebhookSecret::from_entropy(&[0; 23]), Err(SecretError::WrongLength { len: 23 }));
        assert_eq!(WebhookSecret::from_entropy(&[0; 65]), Err(SecretError::WrongLength { len: 65 }));
        assert!(WebhookSecret::from_entropy(&[0; 64]).is_ok());
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let s = secret(9);
        let debug = format!("{s:?}");
        assert!(!debug.contains(&s.expose()[6..12]), "{debug}");
    }

    #[test]
    fn every_header_is_produced_and_both_conventions_verify() {
        let s = secret(3);
        let body = br#"{"type":"atlas.run.updated","timestamp":"2026-04-07T12:00:00Z","data":{"version":2}}"#;
        let at = OffsetDateTime::from_unix_timestamp(1_775_563_200).unwrap();
        let h = sign("dlv_0192", &EventType::RUN_UPDATED, at, body, &[&s]).unwrap();
        assert_eq!(h.webhook_id, "dlv_0192");
        assert_eq!(h.atlas_delivery, "dlv_0192");
        assert_eq!(h.webhook_timestamp, "1775563200");
        assert_eq!(h.atlas_event, "atlas.run.updated");
        assert!(h.atlas_signature.starts_with("sha256=") && h.atlas_signature.len() == 7 + 64);
        let names: Vec<&str> = h.pairs().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "Content-Type",
                "User-Agent",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "X-Atlas-Event",
                "X-Atlas-Delivery",
                "X-Atlas-Signature"
            ]
        );
        let standard =
            StandardHeaders { id: Some(&h.webhook_id), timestamp: Some(&h.webhook_timestamp), signature: Some(&h.webhook_signature) };
        assert_eq!(verify(&s, &standard, body, at, DEFAULT_TOLERANCE), Ok(()));
        assert_eq!(verify_atlas_signature(&s, Some(&h.atlas_signature), body), Ok(()));
    }

    #[test]
    fn during_a_rotation_both_secrets_sign_the_standard_header_and_the_newest_signs_the_atlas_one() {
        let (new, old) = (secret(1), secret(2));
        let body = b"{}";
        let at = OffsetDateTime::from_unix_timestamp(1_775_563_200).unwrap();
        let h = sign("dlv_1", &EventType::RUN_UPDATED, at, body, &[&new, &old]).unwrap();
        assert_eq!(h.webhook_signature.split(' ').count(), 2);
        let standard = StandardHeaders { id: Some("dlv_1"), timestamp: Some(&h.webhook_timestamp), signature: Some(&h.webhook_signature) };
        assert_eq!(verify(&new, &standard, body, at, DEFAULT_TOLERANCE), Ok(()));
        assert_eq!(verify(&old, &standard, body, at, DEFAULT_TOLERANCE), Ok(()));
        assert_eq!(verify_atlas_signature(&new, Some(&h.atlas_signature), body), Ok(()));
        assert_eq!(verify_atlas_signature(&old, Some(&h.atlas_signature), body), Err(VerifyError::NoMatchingSignature));
        assert_eq!(sign("dlv_1", &EventType::RUN_UPDATED, at, body, &[]), Err(NoSigningSecret));
    }

    #[test]
    fn the_atlas_signature_is_hex_hmac_of_the_body_under_the_decoded_secret_bytes() {
        let s = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(s.key_bytes()).unwrap();
        mac.update(VECTOR_BODY);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(sign_atlas(&s, VECTOR_BODY), expected);
        assert_eq!(verify_atlas_signature(&s, None, VECTOR_BODY), Err(VerifyError::MissingHeader(HEADER_ATLAS_SIGNATURE)));
        assert_eq!(verify_atlas_signature(&s, Some("sha1=abcd"), VECTOR_BODY), Err(VerifyError::MalformedSignature));
        assert_eq!(verify_atlas_signature(&s, Some("sha256=zz"), VECTOR_BODY), Err(VerifyError::MalformedSignature));
        assert_eq!(verify_atlas_signature(&s, Some("sha256=abcd"), VECTOR_BODY), Err(VerifyError::MalformedSignature));
    }

    proptest! {
        /// Whatever the secret, id, time and body, what `sign` produces verifies with that
        /// secret (both conventions) and with no other.
        #[test]
        fn signing_round_trips(
            key in proptest::collection::vec(any::<u8>(), MIN_SECRET_BYTES..=MAX_SECRET_BYTES),
            other in proptest::collection::vec(any::<u8>(), MIN_SECRET_BYTES..=MAX_SECRET_BYTES),
            id in "[a-z]{3}_[0-9a-f]{32}",
            seconds in 0i64..4_000_000_000,
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let secret = WebhookSecret::from_entropy(&key).unwrap();
            let at = OffsetDateTime::from_unix_timestamp(seconds).unwrap();
            let h = sign(&id, &EventType::EVENT_RECEIVED, at, &body, &[&secret]).unwrap();
            let standard = StandardHeaders { id: Some(&h.webhook_id), timestamp: Some(&h.webhook_timestamp), signature: Some(&h.webhook_signature) };
            prop_assert_eq!(verify(&secret, &standard, &body, at, DEFAULT_TOLERANCE), Ok(()));
            prop_assert_eq!(verify_atlas_signature(&secret, Some(&h.atlas_signature), &body), Ok(()));
            prop_assert_eq!(WebhookSecret::parse(&secret.expose()).unwrap(), secret);
            if other != key {
                let other = WebhookSecret::from_entropy(&other).unwrap();
                prop_assert_eq!(verify(&other, &standard, &body, at, DEFAULT_TOLERANCE), Err(VerifyError::NoMatchingSignature));
            }
        }

        /// Verification never panics on arbitrary header text.
        #[test]
        fn verification_never_panics(id in ".{0,40}", ts in ".{0,24}", sig in ".{0,120}") {
            let secret = WebhookSecret::from_entropy(&[5; 32]).unwrap();
            let headers = StandardHeaders { id: Some(&id), timestamp: Some(&ts), signature: Some(&sig) };
            let _ = verify(&secret, &headers, b"{}", OffsetDateTime::UNIX_EPOCH, DEFAULT_TOLERANCE);
            let _ = verify_atlas_signature(&secret, Some(&sig), b"{}");
        }
    }
}
