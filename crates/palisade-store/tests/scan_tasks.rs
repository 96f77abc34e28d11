//! Scan tasks through `Store` (issues #7, #14): a task written at its start and rewritten at its
//! end, listing per tenant and state, the last id, and durability across reopening.

mod common;

use common::stores;
use palisade_store::{SqliteStore, Store, StoredScanTask};
use serde_json::json;

fn task(id: u64, tenant: &str, state: &str) -> StoredScanTask {
    StoredScanTask {
        id,
        tenant: tenant.into(),
        state: state.into(),
        started_unix_ms: 1_700_000_000_000 + i64::try_from(id).unwrap(),
        body: json!({ "id": id, "tenant": tenant, "state": state, "open": [{ "port": 8081 }] }),
    }
}

#[test]
fn a_task_rewritten_at_its_end_reads_back_as_written() {
    for f in stores() {
        let store = &f.store;
        store.put_scan_task(&task(1, "alpha", "running")).unwrap();

        store.put_scan_task(&task(1, "alpha", "done")).unwrap();

        assert_eq!(store.scan_task(1).unwrap(), Some(task(1, "alpha", "done")), "{}", f.name);
        assert_eq!(store.scan_tasks(None, None, 0, 10).unwrap().len(), 1, "{}: one row per task", f.name);
        assert_eq!(store.scan_task(2).unwrap(), None, "{}", f.name);
    }
}

#[test]
fn tasks_list_by_id_and_a_tenant_reads_only_its_own() {
    for f in stores() {
        let store = &f.store;
        for t in [task(3, "alpha", "done"), task(1, "beta", "failed"), task(2, "alpha", "running")] {
            store.put_scan_task(&t).unwrap();
        }

        let ids = |ts: Vec<StoredScanTask>| ts.into_iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(store.scan_tasks(None, None, 0, 10).unwrap()), [1, 2, 3], "{}", f.name);
        let alpha = store.scan_tasks(Some("alpha"), None, 0, 10).unwrap();
        assert!(alpha.iter().all(|t| t.tenant == "alpha" && t.body["tenant"] == "alpha"), "{alpha:?}");
        assert_eq!(ids(alpha), [2, 3]);
        assert_eq!(ids(store.scan_tasks(None, Some("running"), 0, 10).unwrap()), [2]);
        assert_eq!(ids(store.scan_tasks(Some("beta"), Some("running"), 0, 10).unwrap()), [] as [u64; 0]);
        assert_eq!(ids(store.scan_tasks(None, None, 1, 10).unwrap()), [2, 3], "after= pages");
        assert_eq!(ids(store.scan_tasks(None, None, 0, 2).unwrap()), [1, 2], "limit");
        assert!(store.scan_tasks(Some("gamma"), None, 0, 10).unwrap().is_empty());
    }
}

#[test]
fn the_last_task_id_is_the_highest_stored() {
    for f in stores() {
        let store = &f.store;
        assert_eq!(store.last_scan_task_id().unwrap(), 0, "{}: none yet", f.name);

        store.put_scan_task(&task(7, "alpha", "done")).unwrap();
        store.put_scan_task(&task(4, "beta", "done")).unwrap();

        assert_eq!(store.last_scan_task_id().unwrap(), 7, "{}", f.name);
    }
}

#[test]
fn scan_tasks_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    SqliteStore::open(&path).unwrap().put_scan_task(&task(9, "alpha", "failed")).unwrap();

    let reopened = SqliteStore::open(&path).unwrap();

    assert_eq!(reopened.scan_tasks(Some("alpha"), None, 0, 10).unwrap(), [task(9, "alpha", "failed")]);
    assert_eq!(reopened.last_scan_task_id().unwrap(), 9);
}
