//! The server secret (`ATLAS_SECRET_KEY`) and what is derived from it: the pepper of key and
//! token hashes, the key sealing channel secrets, and the JWT signing key unless `ATLAS_JWT_SECRET` is set. On SQLite, a missing
//! key is generated once beside the database file, with a warning.

use crate::config::Settings;
use crate::StartError;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::path::PathBuf;

/// Secrets derived for this process.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub pepper: Vec<u8>,
    pub jwt: Vec<u8>,
    /// Seals channel secrets at rest.
    pub channel_key: [u8; 32],
}

fn derive(secret: &str, purpose: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn sqlite_key_file(database_url: &str) -> PathBuf {
    let path = database_url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or("atlas.db");
    if path.is_empty() || path == ":memory:" {
        return PathBuf::from("atlas.secret");
    }
    let db = PathBuf::from(path);
    db.with_extension("secret")
}

impl Secrets {
    /// Reads or (SQLite only) makes the secret key and derives the rest.
    pub fn resolve(settings: &Settings) -> Result<Self, StartError> {
        let secret = match &settings.secret_key {
            Some(key) => key.clone(),
            None => {
                let file = sqlite_key_file(&settings.database_url);
                match std::fs::read_to_string(&file) {
                    Ok(text) if text.trim().len() >= 32 => text.trim().to_owned(),
                    Ok(_) => return Err(StartError::Secret(format!("secret key: {} holds no usable key", file.display()))),
                    Err(_) => {
                        let mut bytes = [0u8; 32];
                        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
                        let key = hex::encode(bytes);
                        std::fs::write(&file, &key)
                            .map_err(|e| StartError::Secret(format!("secret key: cannot write {}: {e}", file.display())))?;
                        tracing::warn!(file = %file.display(), "ATLAS_SECRET_KEY is unset: generated one beside the database; keep this file with it");
                        key
                    }
                }
            }
        };
        let jwt = settings.jwt_secret.as_ref().map(|s| s.as_bytes().to_vec()).unwrap_or_else(|| derive(&secret, "atlas jwt v1"));
        let mut channel_key = [0u8; 32];
        channel_key.copy_from_slice(&derive(&secret, "atlas channel secrets v1"));
        Ok(Self { pepper: derive(&secret, "atlas key pepper v1"), jwt, channel_key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_sits_beside_the_database() {
        assert_eq!(sqlite_key_file("sqlite://atlas.db?mode=rwc"), PathBuf::from("atlas.secret"));
        assert_eq!(sqlite_key_file("sqlite:///var/lib/atlas/data.db"), PathBuf::from("/var/lib/atlas/data.secret"));
    }

    #[test]
    fn derived_secrets_differ_by_purpose() {
        assert_ne!(derive("k", "a"), derive("k", "b"));
    }
}
