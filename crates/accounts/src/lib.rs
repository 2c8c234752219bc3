//! Organizations, API keys, users and refresh-token families: their records, the
//! `AccountStore` port, the secrets' one-way hashes, and the use cases that mint, verify and
//! revoke credentials.

mod model;
mod secrets;
mod service;
mod store;

pub use model::{ApiKeyRecord, Organization, RefreshFamilyId, RefreshToken, RotateOutcome, User};
pub use secrets::{hash_password, verify_password, InlineArgon2, PasswordHashing, SecretHasher, DUMMY_PASSWORD_HASH};
pub use service::{
    AccessError, Accounts, AuthError, BootstrapRequest, Bootstrapped, Credential, IssuedSession, MintKeyRequest, MintedKey, NewOrganization,
};
pub use store::{AccountError, AccountStore};
