//! The API key format: `atlas_sk_`, 30 random base62 characters, then a 6-character base62
//! CRC32 of the random part (as GitHub's tokens). A malformed or corrupted key is refused from
//! its text alone, before any store is asked, and secret scanners can recognise one.

use std::fmt;
use thiserror::Error;

/// Every Atlas API key starts with this.
pub const KEY_PREFIX: &str = "atlas_sk_";
/// Random base62 characters in a key.
pub const KEY_RANDOM_LEN: usize = 30;
const CHECKSUM_LEN: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a well-formed Atlas API key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyFormatError {
    #[error("an API key starts with `atlas_sk_`")]
    Prefix,
    #[error("an API key has 36 base62 characters after its prefix")]
    Shape,
    #[error("the API key's checksum does not match: it was mistyped or truncated")]
    Checksum,
}

/// A well-formed API key (its checksum verified). Its `Debug` form hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyToken(String);

impl ApiKeyToken {
    /// Makes a key from 30 bytes of caller-supplied randomness.
    pub fn from_entropy(entropy: &[u8; KEY_RANDOM_LEN]) -> Self {
        let random: String = entropy.iter().map(|b| BASE62[usize::from(*b) % 62] as char).collect();
        let checksum = encode_checksum(crc32fast::hash(random.as_bytes()));
        Self(format!("{KEY_PREFIX}{random}{checksum}"))
    }

    /// Validates a presented key's shape and checksum.
    pub fn parse(text: &str) -> Result<Self, KeyFormatError> {
        let body = text.strip_prefix(KEY_PREFIX).ok_or(KeyFormatError::Prefix)?;
        if body.len() != KEY_RANDOM_LEN + CHECKSUM_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeyFormatError::Shape);
        }
        let (random, checksum) = body.split_at(KEY_RANDOM_LEN);
        if encode_checksum(crc32fast::hash(random.as_bytes())) != checksum {
            return Err(KeyFormatError::Checksum);
        }
        Ok(Self(text.to_owned()))
    }

    /// The whole secret, to show once and to hash.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The non-secret beginning shown in listings (`atlas_sk_` and 6 characters).
    pub fn display_prefix(&self) -> String {
        self.0[..KEY_PREFIX.len() + 6].to_owned()
    }
}

impl fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyToken({}…)", self.display_prefix())
    }
}

fn encode_checksum(mut value: u32) -> String {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_generated_key_has_the_documented_shape_and_parses() {
        let key = ApiKeyToken::from_entropy(&[7u8; KEY_RANDOM_LEN]);
        assert_eq!(key.expose().len(), KEY_PREFIX.len() + 36);
        assert_eq!(ApiKeyToken::parse(key.expose()).unwrap(), key);
        assert!(!format!("{key:?}").contains(&key.expose()[20..]));
    }

    #[test]
    fn wrong_prefix_and_shape_are_named() {
        assert_eq!(ApiKeyToken::parse("sk_live_abc"), Err(KeyFormatError::Prefix));
        assert_eq!(ApiKeyToken::parse("atlas_sk_short"), Err(KeyFormatError::Shape));
    }

    proptest! {
        /// Every single-character corruption of a key is refused.
        #[test]
        fn any_single_character_corruption_is_refused(
            entropy in proptest::array::uniform30(any::<u8>()),
            position in 0usize..(KEY_PREFIX.len() + 36),
            replacement in proptest::char::range('!', '~'),
        ) {
            let key = ApiKeyToken::from_entropy(&entropy);
            let mut chars: Vec<char> = key.expose().chars().collect();
            prop_assume!(chars[position] != replacement);
            chars[position] = replacement;
            let corrupted: String = chars.into_iter().collect();
            prop_assert!(ApiKeyToken::parse(&corrupted).is_err());
        }

        /// Every generated key parses.
        #[test]
        fn every_generated_key_parses(entropy in proptest::array::uniform30(any::<u8>())) {
            let key = ApiKeyToken::from_entropy(&entropy);
            prop_assert_eq!(ApiKeyToken::parse(key.expose()), Ok(key));
        }
    }
}
