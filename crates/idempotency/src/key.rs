//! Idempotency keys (1 to 255 printable ASCII characters, from the `Idempotency-Key` header,
//! bare or as a quoted structured-field string, or from the body's `idempotency_key`) and the
//! scope a key is unique within.

use atlas_kernel::OrgId;
use sha2::{Digest, Sha256};
use std::fmt;
use thiserror::Error;

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("an idempotency key is 1 to 255 characters")]
    Length,
    #[error("an idempotency key may hold only printable ASCII characters")]
    Character,
    #[error("the Idempotency-Key header's quoted string is not closed or has a bad escape")]
    Quoting,
}

/// A validated idempotency key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a key as sent in a body field.
    pub fn parse(key: &str) -> Result<Self, KeyError> {
        if key.is_empty() || key.len() > 255 {
            return Err(KeyError::Length);
        }
        if !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(KeyError::Character);
        }
        Ok(Self(key.to_owned()))
    }

    /// Validates an `Idempotency-Key` header: a bare token or an RFC 8941 string (`"…"`).
    pub fn parse_header(value: &str) -> Result<Self, KeyError> {
        let value = value.trim_matches(' ');
        let Some(inner) = value.strip_prefix('"') else {
            return Self::parse(value);
        };
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        loop {
            match chars.next() {
                None => return Err(KeyError::Quoting),
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some(c @ ('"' | '\\')) => out.push(c),
                    _ => return Err(KeyError::Quoting),
                },
                Some(c) => out.push(c),
            }
        }
        if chars.next().is_some() {
            return Err(KeyError::Quoting);
        }
        Self::parse(&out)
    }

    /// The key as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

/// Where a key is unique: the same key under another organization, scope or route is another key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyScope {
    pub org_id: OrgId,
    /// The scope the route requires (`atlas.keys.write`).
    pub scope: String,
    /// The route or tool (`POST /v1/atlas/keys`).
    pub route: String,
    pub key: IdempotencyKey,
}

impl IdempotencyScope {
    /// A fixed-length storage key: SHA-256 over the four parts, each length-prefixed so no two
    /// scopes collide.
    pub fn storage_key(&self) -> String {
        let mut hash = Sha256::new();
        for part in [self.org_id.to_string().as_str(), &self.scope, &self.route, self.key.as_str()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        hex::encode(hash.finalize())
    }
}

/// The fence of one claim: made by the request that claims a key (from randomness the caller
/// supplies), stored with the claim, and required to complete or release it, so a request whose
/// lease lapsed can never settle the claim of the request that took the key over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimToken([u8; 16]);

impl ClaimToken {
    /// A token from 16 random bytes.
    pub const fn from_entropy(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The token as stored (32 hex digits).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// A key as one request claims it: where it is unique, and the request's fence.
///
/// A claim is either **held** (`at_commit: None`: the store's `begin` recorded it in progress
/// before the request executed, and completing it updates that record) or **taken at commit**
/// (`at_commit: Some(fingerprint)`: nothing was written before the request executed; the
/// effect's own transaction inserts the record, completed, with this fingerprint, and the
/// effect is refused if a concurrent request inserted the key first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Claim {
    pub scope: IdempotencyScope,
    pub token: ClaimToken,
    pub at_commit: Option<crate::Fingerprint>,
}

impl Claim {
    /// A claim the store holds from `begin` on.
    pub fn held(scope: IdempotencyScope, token: ClaimToken) -> Self {
        Self { scope, token, at_commit: None }
    }

    /// A claim taken by the effect's own transaction (see [`Claim`]).
    pub fn at_commit(scope: IdempotencyScope, token: ClaimToken, fingerprint: crate::Fingerprint) -> Self {
        Self { scope, token, at_commit: Some(fingerprint) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        assert!(IdempotencyKey::parse("reply-001").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert_eq!(IdempotencyKey::parse(""), Err(KeyError::Length));
        assert_eq!(IdempotencyKey::parse(&"k".repeat(256)), Err(KeyError::Length));
        assert_eq!(IdempotencyKey::parse("tab\there"), Err(KeyError::Character));
        assert_eq!(IdempotencyKey::parse("ключ"), Err(KeyError::Character));
    }

    #[test]
    fn a_header_may_be_bare_or_a_quoted_structured_field_string() {
        assert_eq!(IdempotencyKey::parse_header("abc").unwrap().as_str(), "abc");
        assert_eq!(IdempotencyKey::parse_header("\"abc\"").unwrap().as_str(), "abc");
        assert_eq!(IdempotencyKey::parse_header(r#""a\"b""#).unwrap().as_str(), "a\"b");
        assert_eq!(IdempotencyKey::parse_header("\"open"), Err(KeyError::Quoting));
        assert_eq!(IdempotencyKey::parse_header("\"a\"b"), Err(KeyError::Quoting));
    }

    proptest! {
        /// Scopes that differ in any part have different storage keys.
        #[test]
        fn storage_keys_separate_scopes(a in "[ -~]{1,20}", b in "[ -~]{1,20}") {
            let org = OrgId::generate();
            let scope = |route: &str, key: &str| IdempotencyScope {
                org_id: org, scope: "atlas.keys.write".into(), route: route.into(), key: IdempotencyKey::parse(key).unwrap(),
            };
            prop_assume!(a != b);
            prop_assert_ne!(scope(&a, &b).storage_key(), scope(&b, &a).storage_key());
            prop_assert_ne!(scope("r", &a).storage_key(), scope("r", &b).storage_key());
        }
    }
}
