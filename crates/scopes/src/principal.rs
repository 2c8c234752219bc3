//! Principals: who a verified credential speaks for (an organization, an actor, its scopes),
//! and the roles users hold, each a fixed scope set.

use crate::{Scope, ScopeSet};
use atlas_kernel::{typed_id, OrgId};
use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

typed_id!(
    /// An API key.
    KeyId,
    "key"
);
typed_id!(
    /// A user who signs in with a password.
    UserId,
    "usr"
);

/// Who acted: recorded on every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Actor {
    ApiKey(KeyId),
    User(UserId),
    /// The server itself (workers, first start) or an unauthenticated caller.
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::ApiKey(id) => write!(f, "{id}"),
            Actor::User(id) => write!(f, "{id}"),
            Actor::System => f.write_str("system"),
        }
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub org_id: OrgId,
    pub actor: Actor,
    pub scopes: ScopeSet,
}

impl Principal {
    /// Whether the caller may use `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(scope)
    }
}

/// A role name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown role `{0}`")]
pub struct UnknownRole(pub String);

/// What a user may do, as a named scope set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Every organization scope.
    Admin,
    /// Everything but minting and revoking keys.
    Member,
    /// Every read scope.
    Viewer,
}

impl Role {
    /// The role's wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Result<Self, UnknownRole> {
        match name {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            "viewer" => Ok(Role::Viewer),
            other => Err(UnknownRole(other.to_owned())),
        }
    }

    /// The scopes the role grants.
    pub fn scopes(self) -> ScopeSet {
        let admin = ScopeSet::organization_admin();
        match self {
            Role::Admin => admin,
            Role::Member => admin.iter().filter(|s| *s != Scope::KeysWrite).collect(),
            Role::Viewer => admin.iter().filter(|s| s.as_str().ends_with(".read")).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_nested_viewer_within_member_within_admin() {
        assert!(Role::Viewer.scopes().is_subset_of(&Role::Member.scopes()));
        assert!(Role::Member.scopes().is_subset_of(&Role::Admin.scopes()));
        assert!(!Role::Member.scopes().contains(Scope::KeysWrite));
        assert!(Role::Viewer.scopes().iter().all(|s| s.as_str().ends_with(".read")));
    }

    #[test]
    fn actors_serialize_with_their_kind() {
        let id = KeyId::generate();
        let json = serde_json::to_value(Actor::ApiKey(id)).unwrap();
        assert_eq!(json, serde_json::json!({"type": "api_key", "id": id.to_string()}));
    }
}
