//! Channel secrets at rest: XChaCha20-Poly1305 under a key derived from `ATLAS_SECRET_KEY`,
//! a fresh random 24-byte nonce per seal, stored as `version ‖ nonce ‖ ciphertext`.

use atlas_conversations::{SecretCipher, SecretsUnreadable};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// The AEAD that seals channel secrets.
#[derive(Clone)]
pub struct ChannelCipher {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for ChannelCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelCipher(..)")
    }
}

impl ChannelCipher {
    /// A cipher under a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Self { cipher: XChaCha20Poly1305::new(&Key::from(*key)) }
    }
}

impl SecretCipher for ChannelCipher {
    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let sealed = self.cipher.encrypt(&XNonce::from(nonce), plaintext).expect("XChaCha20-Poly1305 seals any length we store");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretsUnreadable> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(SecretsUnreadable);
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretsUnreadable)?;
        self.cipher.decrypt(&XNonce::from(nonce), ciphertext).map_err(|_| SecretsUnreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_under_the_same_key_only_and_never_show_the_plaintext() {
        let cipher = ChannelCipher::new(&[7; 32]);
        let sealed = cipher.seal(b"EAAG-token");
        assert!(!sealed.windows(10).any(|w| w == b"EAAG-token"));
        assert_eq!(cipher.open(&sealed).unwrap(), b"EAAG-token");
        assert_ne!(cipher.seal(b"EAAG-token"), sealed, "a fresh nonce every time");
        assert_eq!(ChannelCipher::new(&[8; 32]).open(&sealed), Err(SecretsUnreadable));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(cipher.open(&tampered), Err(SecretsUnreadable));
        assert_eq!(cipher.open(b"short"), Err(SecretsUnreadable));
    }
}
