//! The one infrastructure failure every port can report: the backing store did not answer or
//! refused in a way the domain cannot act on. Domain errors wrap it; the HTTP layer maps it to
//! INTERNAL_ERROR (or PROVIDER_UNAVAILABLE) and logs its cause chain.

use std::error::Error;
use std::fmt;

/// A storage failure with its cause kept for the logs.
pub struct StoreError {
    context: &'static str,
    source: Box<dyn Error + Send + Sync + 'static>,
}

impl StoreError {
    /// Wraps `source`, saying what the store was doing.
    pub fn new(context: &'static str, source: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        Self { context, source: source.into() }
    }

    /// What the store was doing when it failed.
    pub fn context(&self) -> &'static str {
        self.context
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store failed while {}", self.context)
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}: {}", self.source)?;
        let mut cause = self.source.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.source.as_ref())
    }
}
