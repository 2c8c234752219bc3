//! Access tokens: HS256 JWTs (algorithm pinned), issuer and audience checked, 15 minutes of
//! life, carrying the user's organization and the scopes of its role.

use atlas_kernel::OrgId;
use atlas_scopes::{Actor, Principal, Role, UserId};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

const ISSUER: &str = "atlas";
const AUDIENCE: &str = "atlas-api";
/// How long an access token lives.
pub const ACCESS_LIFETIME: Duration = Duration::minutes(15);

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    org: String,
    role: String,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    jti: String,
}

/// The keys that sign and verify access tokens.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    /// Keys from a shared secret.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret) }
    }

    /// Signs an access token for a user; returns it and its expiry.
    pub fn issue(
        &self,
        user: UserId,
        org: OrgId,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<(String, OffsetDateTime), jsonwebtoken::errors::Error> {
        let expires_at = now + ACCESS_LIFETIME;
        let claims = Claims {
            sub: user.to_string(),
            org: org.to_string(),
            role: role.as_str().to_owned(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now.unix_timestamp(),
            exp: expires_at.unix_timestamp(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        Ok((encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?, expires_at))
    }

    /// Verifies an access token at `now` and returns its principal, or why not.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Principal, String> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = decode::<Claims>(token, &self.decoding, &validation).map_err(|e| format!("invalid access token: {e}"))?;
        let claims = data.claims;
        if claims.exp <= now.unix_timestamp() {
            return Err("the access token expired; refresh it at /v1/atlas/auth/refresh".into());
        }
        let user: UserId = claims.sub.parse().map_err(|_| "invalid access token subject".to_owned())?;
        let org: OrgId = claims.org.parse().map_err(|_| "invalid access token organization".to_owned())?;
        let role = Role::parse(&claims.role).map_err(|e| e.to_string())?;
        Ok(Principal { org_id: org, actor: Actor::User(user), scopes: role.scopes() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_until_it_expires_and_only_under_its_key() {
        let keys = JwtKeys::from_secret(b"secret-one");
        let now = OffsetDateTime::now_utc();
        let (token, exp) = keys.issue(UserId::generate(), OrgId::generate(), Role::Viewer, now).unwrap();
        assert_eq!(exp, now + ACCESS_LIFETIME);
        let principal = keys.verify(&token, now).unwrap();
        assert_eq!(principal.scopes, Role::Viewer.scopes());
        assert!(keys.verify(&token, now + ACCESS_LIFETIME).is_err());
        assert!(JwtKeys::from_secret(b"secret-two").verify(&token, now).is_err());
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        let keys = JwtKeys::from_secret(b"k");
        // header {"alg":"none"} . claims . no signature
        let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
        assert!(keys.verify(forged, OffsetDateTime::now_utc()).is_err());
    }
}
