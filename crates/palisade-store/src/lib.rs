//! Owns the controller's durable state: the desired-state objects, the audit log of every commit, the record of what the reconciler last applied, security events and scan tasks.
//! Does not own meaning: objects are opaque JSON documents keyed by (kind, tenant, name), events and scan tasks opaque bodies with the columns they are looked up by; policy semantics live in `palisade-model`, OVS in `palisade-ovs`, scan records in `palisade-scan`.
//! [`Store`] names no backend type, so a PostgreSQL backend can implement it later; [`SqliteStore`] (one WAL-mode file) is the implementation today.
//!
//! ```text
//!   API handlers ──commit()──▶ ┌──────────── Store ─────────────┐ ◀──objects()/revision()── reconciler
//!   (actor, summary)           │ objects  : desired state, rev  │
//!                              │ audit    : one entry per rev   │ ──audit(tenant)──▶ API (filtered)
//!                              │ applied  : rev + flow owners   │ ◀──record_applied()── reconciler
//!                              │ events, alerts : per tenant/VM │ ◀──append_*()── monitors, detectors
//!                              │ scan_tasks : per tenant, state │ ◀──put_scan_task()── scan service
//!                              └────────────────────────────────┘
//! ```
//!
//! Durability: a `commit` or `record_applied` that returned `Ok` is on disk (SQLite
//! `synchronous=FULL` in WAL mode) and survives a kill of the process or a power loss.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod sqlite;
mod types;

pub use error::{BackendError, StoreError};
pub use sqlite::SqliteStore;
pub use types::{
    Actor, AppliedOwner, AuditEntry, AuditMutation, AuditOp, EventStream, Mutation, ObjectKey, StoredEvent,
    StoredObject, StoredScanTask,
};

/// The controller's durable state, independent of the backend that keeps it.
///
/// Every method is one atomic operation: readers never see half of a commit, and a failed write
/// leaves no trace.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The whole desired state, sorted by [`ObjectKey`].
    fn objects(&self) -> Result<Vec<StoredObject>, StoreError>;

    /// The current desired-state revision: `0` before the first effective commit.
    fn revision(&self) -> Result<u64, StoreError>;

    /// Apply all `mutations`, in order, and one audit entry in one transaction; returns the new
    /// revision.
    ///
    /// Puts whose spec equals the stored one and deletes of absent keys are no-ops and are not
    /// audited. If every mutation is a no-op, no revision or audit entry is created and the
    /// current revision is returned. `clock_unix_ms` is the caller's clock, recorded verbatim.
    fn commit(
        &self,
        actor: &Actor,
        summary: &str,
        mutations: &[Mutation],
        clock_unix_ms: i64,
    ) -> Result<u64, StoreError>;

    /// Up to `limit` audit entries, newest first.
    ///
    /// With `tenant`, only entries that touched that tenant's objects are returned, and each
    /// entry's mutations are reduced to that tenant's objects, so a tenant never sees another
    /// tenant's documents. The entry's `actor` and `summary` are returned as written: callers
    /// committing across tenants must not put another tenant's details in the summary.
    fn audit(&self, tenant: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// The revision the reconciler last recorded as applied and the owners it programmed, sorted
    /// by cookie. `(0, [])` if nothing was ever recorded.
    fn applied(&self) -> Result<(u64, Vec<AppliedOwner>), StoreError>;

    /// Replace the applied-state record atomically (one transaction).
    ///
    /// Fails with [`StoreError::AppliedAhead`] if `revision` is newer than the desired state and
    /// with [`StoreError::DuplicateCookie`] if two owners share a cookie; the old record stays.
    fn record_applied(&self, revision: u64, owners: &[AppliedOwner]) -> Result<(), StoreError>;

    /// Append events to `stream` in one transaction (their `id`s are ignored and assigned;
    /// each stream numbers its own).
    fn append_events(&self, stream: EventStream, events: &[StoredEvent]) -> Result<(), StoreError>;

    /// Up to `limit` events of `stream` with an id above `after`, oldest first; with `tenant`,
    /// only that tenant's, and with `vm`, only that VM's.
    fn events(
        &self,
        stream: EventStream,
        tenant: Option<&str>,
        vm: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Write scan task `task.id`, replacing the stored one with that id (a task is written when
    /// it starts and again when it ends).
    fn put_scan_task(&self, task: &StoredScanTask) -> Result<(), StoreError>;

    /// Scan task `id`, if stored.
    fn scan_task(&self, id: u64) -> Result<Option<StoredScanTask>, StoreError>;

    /// Up to `limit` scan tasks with an id above `after`, by id; with `tenant`, only that
    /// tenant's, and with `state`, only those in that state.
    fn scan_tasks(
        &self,
        tenant: Option<&str>,
        state: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredScanTask>, StoreError>;

    /// The highest scan task id stored, `0` when none: a new task's id comes after it.
    fn last_scan_task_id(&self) -> Result<u64, StoreError>;
}
