//! The shared kernel every Atlas crate speaks: typed prefixed ids, the organization id, the
//! `Clock` port, E.164 phone numbers and opaque pagination cursors. No I/O lives here.

mod clock;
mod id;
mod page;
mod phone;

pub use clock::{Clock, ManualClock, SystemClock};
pub use id::{IdError, OrgId};
pub use page::{Cursor, CursorError, Page, PageError, PageRequest, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
pub use phone::{PhoneNumber, PhoneNumberError};

/// Re-exported so dependants name one `OffsetDateTime`.
pub use time::OffsetDateTime;

mod store_error;
pub use store_error::StoreError;

#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use uuid;
}
