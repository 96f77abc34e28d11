//! Errors returned by every store backend.
//!
//! Messages are written for an API user or operator: they say what the store could not do, never
//! the SQL involved. The backend's own error stays reachable through `source()` for logs.

use std::path::PathBuf;

use crate::types::ObjectKey;

/// Backend error kept as the `source` of a [`StoreError`]. Boxed so that the variants carry no
/// backend type: a PostgreSQL backend returns the same variants with its own driver error inside.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in a [`Store`](crate::Store).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("failed to open the store database at {}", location.display())]
    Open {
        /// File path, or `:memory:` for an in-memory store.
        location: PathBuf,
        /// Backend error.
        #[source]
        source: BackendError,
    },

    /// The database opened but could not be given the settings the store relies on.
    #[error("failed to configure the store database: {setting}")]
    Configure {
        /// Which setting, in words, e.g. "write-ahead logging could not be enabled".
        setting: &'static str,
        /// Backend error, when there is one.
        #[source]
        source: Option<BackendError>,
    },

    /// A schema migration step failed; the database is left at schema version `from`.
    #[error("failed to migrate the store schema from version {from} to version {to}")]
    Migrate {
        /// Version before the failed step.
        from: u32,
        /// Version the failed step would have reached.
        to: u32,
        /// Backend error.
        #[source]
        source: BackendError,
    },

    /// The database was written by a newer build of Palisade.
    #[error(
        "the store database has schema version {found}, newer than version {supported} that this \
         build supports; upgrade Palisade or restore a backup"
    )]
    SchemaTooNew {
        /// Version found in the database.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },

    /// Reading desired state, audit log or applied state failed.
    #[error("failed to read from the store")]
    Read {
        /// Backend error.
        #[source]
        source: BackendError,
    },

    /// A desired-state commit failed; nothing of it was written.
    #[error("failed to commit change to the store")]
    Commit {
        /// Backend error.
        #[source]
        source: BackendError,
    },

    /// Replacing the applied-state record failed; the previous record is intact.
    #[error("failed to record the applied state in the store")]
    RecordApplied {
        /// Backend error.
        #[source]
        source: BackendError,
    },

    /// A stored document for `key` is not valid JSON.
    #[error("the stored document for {key} is corrupt")]
    Corrupt {
        /// The object whose row (or audit record) is damaged.
        key: ObjectKey,
        /// Parse error.
        #[source]
        source: serde_json::Error,
    },

    /// The applied-state record for one flow owner is not valid.
    #[error("the applied-state record for flow cookie {cookie:#x} is corrupt")]
    CorruptApplied {
        /// Flow cookie of the damaged record.
        cookie: u64,
        /// Parse error.
        #[source]
        source: serde_json::Error,
    },

    /// A stored value is outside the range the store ever writes (e.g. a negative revision).
    #[error("the store holds an invalid {what}: {value}")]
    Inconsistent {
        /// Which value, in words.
        what: &'static str,
        /// The value found.
        value: String,
    },

    /// `record_applied` was asked to record a revision the desired state has not reached.
    #[error("cannot record revision {applied} as applied: the desired state is only at revision {current}")]
    AppliedAhead {
        /// Revision the caller tried to record.
        applied: u64,
        /// Current desired-state revision.
        current: u64,
    },

    /// Appending events (monitor events or anomaly alerts) failed; none of the batch was written.
    #[error("failed to append {what}s to the store")]
    AppendEvents {
        /// `monitor event` or `anomaly alert`.
        what: &'static str,
        /// Backend error.
        #[source]
        source: BackendError,
    },

    /// A stored event (monitor event or anomaly alert) is not valid JSON.
    #[error("the stored {what} {id} is corrupt")]
    CorruptEvent {
        /// `monitor event` or `anomaly alert`.
        what: &'static str,
        /// Its row id.
        id: u64,
        /// Parse error.
        #[source]
        source: serde_json::Error,
    },

    /// Writing a scan task failed; the previously stored version of it (if any) is intact.
    #[error("failed to record scan task {id} in the store")]
    PutScanTask {
        /// The task.
        id: u64,
        /// Backend error.
        #[source]
        source: BackendError,
    },

    /// A stored scan task is not valid JSON.
    #[error("the stored scan task {id} is corrupt")]
    CorruptScanTask {
        /// The task.
        id: u64,
        /// Parse error.
        #[source]
        source: serde_json::Error,
    },

    /// `record_applied` was given two owners with the same cookie.
    #[error("cannot record the applied state: flow cookie {cookie:#x} appears more than once")]
    DuplicateCookie {
        /// The repeated cookie.
        cookie: u64,
    },
}
