//! The one error of the work use cases; the HTTP layer maps each variant once.

use crate::model::TaskId;
use atlas_kernel::StoreError;
use thiserror::Error;

/// Why a work use case refused or failed.
#[derive(Debug, Error)]
pub enum WorkError {
    /// A field is malformed or not allowed (`VALIDATION_ERROR`, `details.fields[]` names it).
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The project or task is absent, deleted, or another organization's (`NOT_FOUND`).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Another live project of the organization has this key (`CONFLICT`).
    #[error("a project with this key exists")]
    DuplicateKey,
    /// `If-Match` named a version that is no longer current (`VERSION_CONFLICT`).
    #[error("the version is {current}, not the one given")]
    VersionConflict { current: i64 },
    /// The dependency (or parent link) would close a cycle (`CYCLE_DETECTED`): `path` runs from
    /// the task through what it would depend on back to itself, first id repeated at the end.
    #[error("the change would close a cycle")]
    Cycle { path: Vec<TaskId> },
    /// The task cannot be done while these dependencies are unfinished (`TASK_BLOCKED`).
    #[error("the task has unfinished dependencies")]
    Blocked { blocked_by: Vec<TaskId> },
    /// The store failed (`INTERNAL_ERROR`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WorkError {
    /// `Invalid` for one field.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        WorkError::Invalid { field, message: message.into() }
    }
}
