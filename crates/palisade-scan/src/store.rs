//! Scan tasks and their findings, kept in SQLite (one JSON record per task).
//!
//! A task is written when it starts (`running`) and again when it ends. A task still `running`
//! when a service starts was cut short by a crash: it is marked failed with that reason.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use crate::service::{TaskRecord, TaskState};

/// Why the task store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("the scan task store failed")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored record does not read back.
    #[error("scan task {id} in the store is corrupt")]
    Corrupt {
        /// The task.
        id: i64,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// The reason given to tasks a crash cut short.
pub const INTERRUPTED: &str = "the scan engine stopped while the task ran; its space and flows were removed at restart";

/// Durable scan task history.
#[derive(Debug)]
pub struct TaskStore {
    conn: Mutex<Connection>,
}

impl TaskStore {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::init(Connection::open(path)?)
    }

    /// A store in memory (tests).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS scan_tasks (
               id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, target TEXT NOT NULL, record TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS scan_tasks_tenant ON scan_tasks(tenant);",
        )?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes (or rewrites) a task.
    pub fn put(&self, rec: &TaskRecord) -> Result<(), StoreError> {
        let json =
            serde_json::to_string(rec).map_err(|source| StoreError::Corrupt { id: i64::from(rec.id), source })?;
        self.lock().execute(
            "INSERT INTO scan_tasks (id, tenant, target, record) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET record = excluded.record",
            params![rec.id, rec.tenant, rec.target, json],
        )?;
        Ok(())
    }

    /// Tasks oldest first; `tenant` limits them to one tenant's.
    pub fn list(&self, tenant: Option<&str>) -> Result<Vec<TaskRecord>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT id, record FROM scan_tasks WHERE ?1 IS NULL OR tenant = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![tenant], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            out.push(serde_json::from_str(&json).map_err(|source| StoreError::Corrupt { id, source })?);
        }
        Ok(out)
    }

    /// One task.
    pub fn get(&self, id: u32) -> Result<Option<TaskRecord>, StoreError> {
        let json: Option<String> = self
            .lock()
            .query_row("SELECT record FROM scan_tasks WHERE id = ?1", params![id], |r| r.get(0))
            .optional()?;
        json.map(|j| serde_json::from_str(&j).map_err(|source| StoreError::Corrupt { id: i64::from(id), source }))
            .transpose()
    }

    /// The highest task id used so far (0 when none).
    pub fn last_id(&self) -> Result<u32, StoreError> {
        let id: Option<i64> = self.lock().query_row("SELECT MAX(id) FROM scan_tasks", [], |r| r.get(0))?;
        Ok(u32::try_from(id.unwrap_or(0)).unwrap_or(u32::MAX))
    }

    /// Marks every task still `running` as failed (a crash cut it short); returns how many.
    pub fn fail_interrupted(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for mut rec in self.list(None)? {
            if rec.state == TaskState::Running {
                rec.state = TaskState::Failed;
                rec.reason = Some(INTERRUPTED.to_owned());
                self.put(&rec)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
