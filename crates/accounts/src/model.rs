//! The account records as stores hold them.

use atlas_kernel::{typed_id, OrgId};
use atlas_scopes::{KeyId, Role, ScopeSet, UserId};
use ipnet::IpNet;
use serde::Serialize;
use time::OffsetDateTime;

typed_id!(
    /// A chain of refresh tokens descending from one sign-in; reuse of a dead one kills it whole.
    RefreshFamilyId,
    "rtf"
);

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// An API key as stored: never the secret, only its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: KeyId,
    pub org_id: OrgId,
    pub name: String,
    /// The non-secret beginning of the key (`atlas_sk_AbCdEf`).
    pub prefix: String,
    /// HMAC-SHA256 of the whole key under the server's pepper, hex.
    pub hash: String,
    pub scopes: ScopeSet,
    pub expires_at: Option<OffsetDateTime>,
    /// Empty means any address.
    pub allowed_ips: Vec<IpNet>,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// A person who signs in with email and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub org_id: OrgId,
    /// Lower-cased.
    pub email: String,
    pub username: Option<String>,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub role: Role,
    pub created_at: OffsetDateTime,
}

/// A refresh token as stored: its keyed hash, its family, and whether it was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub hash: String,
    pub family: RefreshFamilyId,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The token was live: it is now dead and its successor (same family) is stored.
    Rotated { user: User, family: RefreshFamilyId },
    /// The token was already used or its family revoked: the whole family is now revoked.
    Reused { family: RefreshFamilyId, org_id: OrgId },
    /// The token expired; nothing changed.
    Expired,
    /// No such token.
    Unknown,
}
