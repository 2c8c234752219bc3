//! Who may do what: the scope catalogue of DESIGN.md, scope sets and the minting rule, the
//! principals a credential resolves to, roles, and the API key format with its CRC32 checksum.

mod catalogue;
mod key_format;
mod principal;

pub use catalogue::{Scope, ScopeSet, UnknownScope};
pub use key_format::{ApiKeyToken, KeyFormatError, KEY_PREFIX, KEY_RANDOM_LEN};
pub use principal::{Actor, KeyId, Principal, Role, UnknownRole, UserId};
