//! [`SqliteStore`]: the [`Store`] kept in one SQLite file in WAL mode.
//!
//! SQLite stays inside this module: values are converted at its edge (u64 revisions and cookies
//! to SQLite's i64, JSON documents to text) and its errors are boxed into [`StoreError`].

mod applied;
mod commit;
mod events;
mod read;
mod scans;
mod schema;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::StoreError;
use crate::types::{Actor, AppliedOwner, AuditEntry, EventStream, Mutation, StoredEvent, StoredObject, StoredScanTask};
use crate::Store;

/// How long a write waits for another connection (e.g. a backup tool) to release the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`] in one SQLite file.
///
/// The file is in WAL mode with `synchronous=FULL`, so every acknowledged write is on disk. One
/// connection is shared behind a mutex; SQLite serialises writers anyway, and the controller's
/// write rate is that of human-driven API calls.
pub struct SqliteStore {
    location: PathBuf,
    conn: Mutex<Connection>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("location", &self.location).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Schema version this build creates and understands.
    pub const SCHEMA_VERSION: u32 = schema::SCHEMA_VERSION;

    /// Open the store at `path`, creating the file if absent and migrating its schema to
    /// [`Self::SCHEMA_VERSION`]. Fails with [`StoreError::SchemaTooNew`] on a database written by a
    /// newer build.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let location = path.as_ref().to_path_buf();
        let conn = Connection::open(&location)
            .map_err(|e| StoreError::Open { location: location.clone(), source: e.into() })?;
        Self::init(location, conn, true)
    }

    /// A store that lives in memory and vanishes when dropped, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let location = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory()
            .map_err(|e| StoreError::Open { location: location.clone(), source: e.into() })?;
        Self::init(location, conn, false)
    }

    /// The file this store lives in (`:memory:` for an in-memory store).
    pub fn location(&self) -> &Path {
        &self.location
    }

    fn init(location: PathBuf, mut conn: Connection, on_disk: bool) -> Result<Self, StoreError> {
        configure(&conn, on_disk)?;
        schema::migrate(&mut conn)?;
        Ok(Self { location, conn: Mutex::new(conn) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot have left a half-done write: every write runs in
        // a rusqlite `Transaction`, which rolls back when dropped during unwinding. The
        // connection is therefore still sound and the poison flag carries no information.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Apply the connection settings the store's guarantees rest on, and check that they took.
fn configure(conn: &Connection, on_disk: bool) -> Result<(), StoreError> {
    let failed =
        |setting: &'static str| move |e: rusqlite::Error| StoreError::Configure { setting, source: Some(e.into()) };
    conn.busy_timeout(BUSY_TIMEOUT).map_err(failed("the busy timeout could not be set"))?;
    conn.pragma_update(None, "foreign_keys", true).map_err(failed("foreign key checks could not be enabled"))?;
    if on_disk {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(failed("write-ahead logging could not be enabled"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // SQLite reports the mode it kept instead of failing (e.g. on some network file
            // systems). Without WAL our durability reasoning does not hold: refuse loudly.
            return Err(StoreError::Configure { setting: "write-ahead logging could not be enabled", source: None });
        }
    }
    // FULL: in WAL mode the log is fsynced at every commit, so an acknowledged commit survives
    // power loss, not only a process crash.
    conn.pragma_update(None, "synchronous", "FULL").map_err(failed("full synchronous writes could not be enabled"))?;
    Ok(())
}

impl Store for SqliteStore {
    fn objects(&self) -> Result<Vec<StoredObject>, StoreError> {
        read::objects(&self.conn())
    }

    fn revision(&self) -> Result<u64, StoreError> {
        read::current_revision(&self.conn(), read::read_failed)
    }

    fn commit(
        &self,
        actor: &Actor,
        summary: &str,
        mutations: &[Mutation],
        clock_unix_ms: i64,
    ) -> Result<u64, StoreError> {
        commit::commit(&mut self.conn(), actor, summary, mutations, clock_unix_ms)
    }

    fn audit(&self, tenant: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        read::audit(&self.conn(), tenant, limit)
    }

    fn applied(&self) -> Result<(u64, Vec<AppliedOwner>), StoreError> {
        applied::applied(&self.conn())
    }

    fn record_applied(&self, revision: u64, owners: &[AppliedOwner]) -> Result<(), StoreError> {
        applied::record_applied(&mut self.conn(), revision, owners)
    }

    fn append_events(&self, stream: EventStream, batch: &[StoredEvent]) -> Result<(), StoreError> {
        events::append(&mut self.conn(), stream, batch)
    }

    fn events(
        &self,
        stream: EventStream,
        tenant: Option<&str>,
        vm: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        events::events(&self.conn(), stream, tenant, vm, after, limit)
    }

    fn put_scan_task(&self, task: &StoredScanTask) -> Result<(), StoreError> {
        scans::put(&self.conn(), task)
    }

    fn scan_task(&self, id: u64) -> Result<Option<StoredScanTask>, StoreError> {
        scans::task(&self.conn(), id)
    }

    fn scan_tasks(
        &self,
        tenant: Option<&str>,
        state: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredScanTask>, StoreError> {
        scans::tasks(&self.conn(), tenant, state, after, limit)
    }

    fn last_scan_task_id(&self) -> Result<u64, StoreError> {
        scans::last_id(&self.conn())
    }
}

/// SQLite integers are i64; the store only writes values that fit, so a negative one is damage.
fn to_u64(what: &'static str, value: i64) -> Result<u64, StoreError> {
    if value < 0 {
        return Err(StoreError::Inconsistent { what, value: value.to_string() });
    }
    Ok(value.unsigned_abs())
}
