//! Scan tasks and their findings, kept in SQLite (one JSON record per task).
//!
//! A task is written when it starts (`running`) and again when it ends. A task still `running`
//! when a service starts was cut short by a crash: it is marked failed
//! ([`FailureReason::EngineStopped`]). Records written before failure reasons were typed hold
//! the whole error chain in `reason`; they read back with the reason its first sentence names
//! and the chain as the operator's `detail`.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::service::{FailureReason, TaskRecord, TaskState};

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
            out.push(read(id, &json)?);
        }
        Ok(out)
    }

    /// One task.
    pub fn get(&self, id: u32) -> Result<Option<TaskRecord>, StoreError> {
        let json: Option<String> = self
            .lock()
            .query_row("SELECT record FROM scan_tasks WHERE id = ?1", params![id], |r| r.get(0))
            .optional()?;
        json.map(|j| read(i64::from(id), &j)).transpose()
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
                rec.reason = Some(FailureReason::EngineStopped);
                self.put(&rec)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Reads stored record `id`. A record from before reasons were typed keeps its error chain
/// (`reason: cause: ...`) as `detail`; `reason` then reads as the reason the chain starts with.
fn read(id: i64, json: &str) -> Result<TaskRecord, StoreError> {
    let corrupt = |source| StoreError::Corrupt { id, source };
    let mut v: Value = serde_json::from_str(json).map_err(corrupt)?;
    if let Some(rec) = v.as_object_mut().filter(|r| !r.contains_key("detail")) {
        if let Some(chain) = rec.get("reason").and_then(Value::as_str).filter(|r| r.contains(": ")) {
            let chain = chain.to_owned();
            rec.insert("detail".to_owned(), Value::String(chain));
        }
    }
    serde_json::from_value(v).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use palisade_model::ScanKind;

    use super::*;

    fn insert(store: &TaskStore, id: u32, record: &str) {
        store
            .lock()
            .execute(
                "INSERT INTO scan_tasks (id, tenant, target, record) VALUES (?1, 'alpha', 'alpha/web1', ?2)",
                params![id, record],
            )
            .unwrap();
    }

    fn old_record(id: u32, state: &str, reason: Option<&str>) -> String {
        let mut v = serde_json::json!({
            "id": id, "tenant": "alpha", "target": "alpha/web1", "kind": "port-scan", "state": state,
            "started_ms": 0, "duration_ms": 1.5, "open": [], "ports": [],
        });
        if let Some(r) = reason {
            v["reason"] = r.into();
        }
        v.to_string()
    }

    #[test]
    fn records_from_before_typed_reasons_read_back() {
        let store = TaskStore::open_in_memory().unwrap();
        let chain = "could not create the task space: `ip netns add pst-00000001` failed: File exists";
        insert(&store, 1, &old_record(1, "failed", Some(chain)));
        insert(&store, 2, &old_record(2, "failed", Some(FailureReason::EngineStopped.message())));
        insert(&store, 3, &old_record(3, "failed", Some("the moon was in the way: of the probes")));
        insert(&store, 4, &old_record(4, "done", None));

        let tasks = store.list(None).unwrap();

        let reasons: Vec<_> = tasks.iter().map(|t| (t.reason.clone(), t.detail.as_deref())).collect();
        assert_eq!(
            reasons,
            [
                (Some(FailureReason::SpaceCreate), Some(chain)),
                (Some(FailureReason::EngineStopped), None),
                (
                    Some(FailureReason::Other("the moon was in the way".into())),
                    Some("the moon was in the way: of the probes")
                ),
                (None, None),
            ]
        );
        assert_eq!(tasks[3].kind, ScanKind::PortScan);
        assert_eq!(store.get(1).unwrap().unwrap(), tasks[0]);
    }

    #[test]
    fn a_reason_of_the_wrong_type_is_a_corrupt_record_not_a_panic() {
        let store = TaskStore::open_in_memory().unwrap();
        insert(&store, 5, &old_record(5, "failed", None).replace(r#""state""#, r#""reason":7,"state""#));

        let err = store.get(5).unwrap_err();

        assert!(matches!(err, StoreError::Corrupt { id: 5, .. }), "{err:?}");
    }

    #[test]
    fn tasks_left_running_are_marked_stopped() {
        let store = TaskStore::open_in_memory().unwrap();
        insert(&store, 1, &old_record(1, "running", None));
        insert(&store, 2, &old_record(2, "done", None));

        assert_eq!(store.fail_interrupted().unwrap(), 1);

        let cut = store.get(1).unwrap().unwrap();
        assert_eq!((cut.state, cut.reason.clone()), (TaskState::Failed, Some(FailureReason::EngineStopped)));
        assert!(cut
            .reason
            .unwrap_or(FailureReason::Other(String::new()))
            .to_string()
            .starts_with("the scan engine stopped while the task ran"));
        assert_eq!(store.get(2).unwrap().unwrap().state, TaskState::Done);
    }
}
