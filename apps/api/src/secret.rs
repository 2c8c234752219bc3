//! The server secret (`ATLAS_SECRET_KEY`) and what is derived from it: the pepper of key and
//! token hashes, the key sealing channel secrets, and the JWT signing key unless `ATLAS_JWT_SECRET` is set. On SQLite, a missing
//! key is generated once beside the database file (readable by its owner only: mode 0600),
//! with a warning.

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

/// Creates `file` holding `text`, readable and writable by its owner only (mode 0600 from the
/// first byte: the key is never readable by others, not even briefly). Refuses to overwrite.
fn write_owner_only(file: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut handle = options.open(file)?;
    handle.write_all(text.as_bytes())?;
    handle.sync_all()
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
                        write_owner_only(&file, &key)
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

    fn random_suffix() -> String {
        let mut bytes = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        hex::encode(bytes)
    }

    #[cfg(unix)]
    #[test]
    fn a_generated_key_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("atlas-secret-{}-{}", std::process::id(), random_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("atlas.db");
        let env: std::collections::BTreeMap<String, String> =
            [("ATLAS_DATABASE_URL".to_owned(), format!("sqlite://{}?mode=rwc", db.display()))].into_iter().collect();
        let settings = Settings::load(None, &env).unwrap();
        let first = Secrets::resolve(&settings).unwrap();
        let file = dir.join("atlas.secret");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the generated secret file is mode 0600, not {mode:o}");
        let again = Secrets::resolve(&settings).unwrap();
        assert_eq!(first.pepper, again.pepper, "the next start reads the same key");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn derived_secrets_differ_by_purpose() {
        assert_ne!(derive("k", "a"), derive("k", "b"));
    }
}
