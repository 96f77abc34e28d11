//! Scan task records in the controller's store ([`palisade_store::Store`], issue #14).
//!
//! A task is written when it starts (`running`) and again when it ends. A task still `running`
//! when a service starts was cut short by a crash: it is marked failed
//! ([`FailureReason::EngineStopped`]). The store keeps each record as an opaque body with the
//! columns it is looked up by; what a body means is decided here. Records written before
//! failure reasons were typed hold the whole error chain in `reason`; they read back with the
//! reason its first sentence names and the chain as the operator's `detail`.

use std::num::TryFromIntError;
use std::sync::Arc;

use palisade_store::{Store, StoreError, StoredScanTask};
use serde_json::Value;

use crate::service::{FailureReason, TaskRecord, TaskState};

/// Why a scan task could not be recorded or read back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The store failed.
    #[error("the store failed")]
    Store(#[source] StoreError),
    /// A stored body is not a task record.
    #[error("scan task {id} in the store is not a task record")]
    Corrupt {
        /// The task.
        id: u64,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A record could not be encoded for the store.
    #[error("scan task {id} could not be encoded")]
    Encode {
        /// The task.
        id: u32,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The store holds a task id beyond the ids the service hands out.
    #[error("the store holds scan task id {id}, beyond the ids a task can have")]
    IdOutOfRange {
        /// The id found.
        id: u64,
        /// Why.
        #[source]
        source: TryFromIntError,
    },
}

/// The scan service's view of the store: task records in, task records out.
#[derive(Debug, Clone)]
pub(crate) struct TaskRecords {
    store: Arc<dyn Store>,
}

impl TaskRecords {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Writes (or rewrites) a task.
    pub(crate) fn put(&self, rec: &TaskRecord) -> Result<(), RecordError> {
        let body = serde_json::to_value(rec).map_err(|source| RecordError::Encode { id: rec.id, source })?;
        let stored = StoredScanTask {
            id: u64::from(rec.id),
            tenant: rec.tenant.clone(),
            state: rec.state.as_str().to_owned(),
            started_unix_ms: rec.started_ms,
            body,
        };
        self.store.put_scan_task(&stored).map_err(RecordError::Store)
    }

    /// Tasks oldest first; `tenant` limits them to one tenant's.
    pub(crate) fn list(&self, tenant: Option<&str>) -> Result<Vec<TaskRecord>, RecordError> {
        self.in_state(tenant, None)
    }

    fn in_state(&self, tenant: Option<&str>, state: Option<TaskState>) -> Result<Vec<TaskRecord>, RecordError> {
        let stored = self.store.scan_tasks(tenant, state.map(TaskState::as_str), 0, usize::MAX);
        stored.map_err(RecordError::Store)?.into_iter().map(read).collect()
    }

    /// One task.
    pub(crate) fn get(&self, id: u32) -> Result<Option<TaskRecord>, RecordError> {
        self.store.scan_task(u64::from(id)).map_err(RecordError::Store)?.map(read).transpose()
    }

    /// The highest task id used so far (0 when none).
    pub(crate) fn last_id(&self) -> Result<u32, RecordError> {
        let id = self.store.last_scan_task_id().map_err(RecordError::Store)?;
        u32::try_from(id).map_err(|source| RecordError::IdOutOfRange { id, source })
    }

    /// Marks every task still `running` as failed (a crash cut it short); returns how many.
    pub(crate) fn fail_interrupted(&self) -> Result<usize, RecordError> {
        let running = self.in_state(None, Some(TaskState::Running))?;
        for mut rec in running.iter().cloned() {
            rec.state = TaskState::Failed;
            rec.reason = Some(FailureReason::EngineStopped);
            self.put(&rec)?;
        }
        Ok(running.len())
    }
}

/// Reads a stored task. A record from before reasons were typed keeps its error chain
/// (`reason: cause: ...`) as `detail`; `reason` then reads as the reason the chain starts with.
fn read(stored: StoredScanTask) -> Result<TaskRecord, RecordError> {
    let id = stored.id;
    let mut v = stored.body;
    if let Some(rec) = v.as_object_mut().filter(|r| !r.contains_key("detail")) {
        if let Some(chain) = rec.get("reason").and_then(Value::as_str).filter(|r| r.contains(": ")) {
            let chain = chain.to_owned();
            rec.insert("detail".to_owned(), Value::String(chain));
        }
    }
    serde_json::from_value(v).map_err(|source| RecordError::Corrupt { id, source })
}

#[cfg(test)]
mod tests {
    use palisade_model::ScanKind;
    use palisade_store::SqliteStore;

    use super::*;

    fn records() -> (Arc<dyn Store>, TaskRecords) {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        (store.clone(), TaskRecords::new(store))
    }

    /// Stores `body` as a record written by an earlier build would be.
    fn insert(store: &dyn Store, id: u64, state: &str, body: Value) {
        let stored = StoredScanTask { id, tenant: "alpha".into(), state: state.into(), started_unix_ms: 0, body };
        store.put_scan_task(&stored).unwrap();
    }

    fn old_record(id: u32, state: &str, reason: Option<&str>) -> Value {
        let mut v = serde_json::json!({
            "id": id, "tenant": "alpha", "target": "alpha/web1", "kind": "port-scan", "state": state,
            "started_ms": 0, "duration_ms": 1.5, "open": [], "ports": [],
        });
        if let Some(r) = reason {
            v["reason"] = r.into();
        }
        v
    }

    #[test]
    fn records_from_before_typed_reasons_read_back() {
        let (store, records) = records();
        let chain = "could not create the task space: `ip netns add pst-00000001` failed: File exists";
        insert(&*store, 1, "failed", old_record(1, "failed", Some(chain)));
        insert(&*store, 2, "failed", old_record(2, "failed", Some(FailureReason::EngineStopped.message())));
        insert(&*store, 3, "failed", old_record(3, "failed", Some("the moon was in the way: of the probes")));
        insert(&*store, 4, "done", old_record(4, "done", None));

        let tasks = records.list(None).unwrap();

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
        assert_eq!(records.get(1).unwrap().unwrap(), tasks[0]);
    }

    #[test]
    fn a_reason_of_the_wrong_type_is_a_corrupt_record_not_a_panic() {
        let (store, records) = records();
        let mut body = old_record(5, "failed", None);
        body["reason"] = 7.into();
        insert(&*store, 5, "failed", body);

        let err = records.get(5).unwrap_err();

        assert!(matches!(err, RecordError::Corrupt { id: 5, .. }), "{err:?}");
    }

    #[test]
    fn a_record_is_stored_under_its_tenant_and_state() {
        let (store, records) = records();
        let rec: TaskRecord = serde_json::from_value(old_record(6, "done", None)).unwrap();

        records.put(&rec).unwrap();

        let stored = store.scan_task(6).unwrap().unwrap();
        assert_eq!((stored.tenant.as_str(), stored.state.as_str()), ("alpha", "done"));
        assert_eq!(records.get(6).unwrap(), Some(rec));
        assert_eq!(records.last_id().unwrap(), 6);
    }

    #[test]
    fn tasks_left_running_are_marked_stopped() {
        let (store, records) = records();
        insert(&*store, 1, "running", old_record(1, "running", None));
        insert(&*store, 2, "done", old_record(2, "done", None));

        assert_eq!(records.fail_interrupted().unwrap(), 1);

        let cut = records.get(1).unwrap().unwrap();
        assert_eq!((cut.state, cut.reason.clone()), (TaskState::Failed, Some(FailureReason::EngineStopped)));
        assert!(cut
            .reason
            .unwrap_or(FailureReason::Other(String::new()))
            .to_string()
            .starts_with("the scan engine stopped while the task ran"));
        assert_eq!(store.scan_task(1).unwrap().unwrap().state, "failed", "the state column follows");
        assert_eq!(records.get(2).unwrap().unwrap().state, TaskState::Done);
        assert_eq!(records.fail_interrupted().unwrap(), 0, "nothing is left running");
    }
}
