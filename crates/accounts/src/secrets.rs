//! One-way hashes of secrets: API keys and refresh tokens under HMAC-SHA256 with a server-side
//! pepper (fast, so authentication costs no more than a map lookup, and useless to whoever
//! steals the database without the pepper); passwords under argon2id with a per-user salt.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Hashes API keys and refresh tokens under the server's pepper.
#[derive(Clone)]
pub struct SecretHasher {
    pepper: Vec<u8>,
}

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHasher(..)")
    }
}

impl SecretHasher {
    /// A hasher keyed by `pepper` (derived from `ATLAS_SECRET_KEY`).
    pub fn new(pepper: impl Into<Vec<u8>>) -> Self {
        Self { pepper: pepper.into() }
    }

    /// HMAC-SHA256 of `secret`, hex.
    pub fn hash(&self, secret: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.pepper).expect("HMAC takes any key length");
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// An argon2id hash (default parameters) of a password nobody knows: an unknown email is
/// verified against it, so signing in costs the same argon2 work whether the account exists.
pub const DUMMY_PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$YXRsYXMtZHVtbXktc2FsdA$xQ90EnXfg9jqiXjNIWbFivlm2RoQGfIrlU5s76Vx9RY";

/// Where the (slow, on purpose) password work runs. The server runs it on its blocking pool so
/// the async workers keep serving; [`InlineArgon2`] runs it on the caller's thread.
#[async_trait::async_trait]
pub trait PasswordHashing: Send + Sync + std::fmt::Debug {
    /// [`hash_password`].
    async fn hash(&self, password: String, salt: [u8; 16]) -> String;
    /// [`verify_password`].
    async fn verify(&self, password: String, phc: String) -> bool;
}

/// Password work on the calling thread (embedders without a blocking pool, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct InlineArgon2;

#[async_trait::async_trait]
impl PasswordHashing for InlineArgon2 {
    async fn hash(&self, password: String, salt: [u8; 16]) -> String {
        hash_password(&password, &salt)
    }
    async fn verify(&self, password: String, phc: String) -> bool {
        verify_password(&password, &phc)
    }
}

/// Hashes a password with argon2id and a caller-supplied 16-byte salt; returns a PHC string.
pub fn hash_password(password: &str, salt: &[u8; 16]) -> String {
    let salt = SaltString::encode_b64(salt).expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .expect("argon2 with default parameters accepts any password")
}

/// Whether `password` matches the PHC string (false for a malformed one).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_and_nothing_else_does() {
        let phc = hash_password("correct horse", &[9; 16]);
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct horse!", &phc));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let dummy = PasswordHash::new(DUMMY_PASSWORD_HASH).expect("the dummy hash is a valid PHC string");
        let real_phc = hash_password("any password at all", &[3; 16]);
        let real = PasswordHash::new(&real_phc).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm, "same algorithm");
        assert_eq!(dummy.version, real.version, "same version");
        assert_eq!(dummy.params, real.params, "same memory, time and parallelism");
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()), "same output length");
        assert!(!verify_password("", DUMMY_PASSWORD_HASH));
    }

    #[test]
    fn secret_hashes_depend_on_the_pepper() {
        let a = SecretHasher::new(b"pepper-a".to_vec());
        let b = SecretHasher::new(b"pepper-b".to_vec());
        assert_eq!(a.hash("atlas_sk_x"), a.hash("atlas_sk_x"));
        assert_ne!(a.hash("atlas_sk_x"), b.hash("atlas_sk_x"));
        assert_eq!(a.hash("x").len(), 64);
    }
}
