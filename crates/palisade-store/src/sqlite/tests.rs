//! Tests that need to see or damage SQLite rows directly. Behaviour visible through the
//! [`Store`] trait alone is tested in `tests/`.

use serde_json::json;

use super::*;
use crate::types::ObjectKey;

fn put(key: &ObjectKey, spec: serde_json::Value) -> Mutation {
    Mutation::Put { key: key.clone(), spec }
}

fn admin() -> Actor {
    Actor("admin".into())
}

fn file_store() -> (tempfile::TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).unwrap();
    (dir, path, store)
}

#[test]
fn file_store_runs_in_wal_mode_with_full_sync_and_foreign_keys() {
    let (_dir, _path, store) = file_store();

    let conn = store.conn();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
    let fk: i64 = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();

    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous must be FULL (2)");
    assert_eq!(fk, 1);
}

#[test]
fn reopening_a_migrated_file_keeps_its_data_and_version() {
    let (_dir, path, store) = file_store();
    let key = ObjectKey::tenant("policy", "alpha", "web");
    store.commit(&admin(), "create", &[put(&key, json!({"a": 1}))], 10).unwrap();
    drop(store);

    let reopened = SqliteStore::open(&path).unwrap();

    let version: u32 = reopened.conn().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, SqliteStore::SCHEMA_VERSION);
    assert_eq!(reopened.revision().unwrap(), 1);
    assert_eq!(reopened.objects().unwrap()[0].spec, json!({"a": 1}));
}

#[test]
fn opening_a_file_from_a_newer_build_fails_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SqliteStore::SCHEMA_VERSION + 1).unwrap();
    drop(conn);

    let err = SqliteStore::open(&path).unwrap_err();

    assert!(
        matches!(err, StoreError::SchemaTooNew { found, supported }
            if found == SqliteStore::SCHEMA_VERSION + 1 && supported == SqliteStore::SCHEMA_VERSION),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the store database has schema version {}, newer than version {} that this build \
             supports; upgrade Palisade or restore a backup",
            SqliteStore::SCHEMA_VERSION + 1,
            SqliteStore::SCHEMA_VERSION
        )
    );
}

#[test]
fn opening_a_path_in_a_missing_directory_fails_with_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("state.db");

    let err = SqliteStore::open(&path).unwrap_err();

    assert!(matches!(&err, StoreError::Open { location, .. } if *location == path), "{err:?}");
    assert!(std::error::Error::source(&err).is_some(), "the driver error must be kept as source");
}

#[test]
fn corrupt_object_document_is_reported_with_its_key_not_a_panic() {
    let store = SqliteStore::open_in_memory().unwrap();
    let good = ObjectKey::tenant("policy", "alpha", "good");
    let bad = ObjectKey::tenant("policy", "alpha", "bad");
    store.commit(&admin(), "seed", &[put(&good, json!(1)), put(&bad, json!(2))], 0).unwrap();
    store.conn().execute("UPDATE objects SET spec_json = '{\"truncated' WHERE name = 'bad'", []).unwrap();

    let err = store.objects().unwrap_err();

    assert!(matches!(&err, StoreError::Corrupt { key, .. } if *key == bad), "{err:?}");
    assert_eq!(err.to_string(), "the stored document for policy \"bad\" of tenant \"alpha\" is corrupt");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn commit_touching_a_corrupt_object_fails_and_writes_nothing() {
    let store = SqliteStore::open_in_memory().unwrap();
    let bad = ObjectKey::global("settings", "main");
    let other = ObjectKey::global("settings", "other");
    store.commit(&admin(), "seed", &[put(&bad, json!(1))], 0).unwrap();
    store.conn().execute("UPDATE objects SET spec_json = 'nope'", []).unwrap();

    let err = store.commit(&admin(), "fix", &[put(&other, json!(3)), put(&bad, json!(2))], 1).unwrap_err();

    assert!(matches!(&err, StoreError::Corrupt { key, .. } if *key == bad), "{err:?}");
    assert_eq!(store.revision().unwrap(), 1, "the failed commit must not create a revision");
    let count: i64 = store.conn().query_row("SELECT count(*) FROM objects", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 1, "the put before the corrupt key must be rolled back");
}

#[test]
fn corrupt_audit_document_is_reported_with_its_key() {
    let store = SqliteStore::open_in_memory().unwrap();
    let key = ObjectKey::tenant("policy", "beta", "db");
    store.commit(&admin(), "seed", &[put(&key, json!({"x": 1}))], 0).unwrap();
    store.conn().execute("UPDATE audit_mutations SET after_json = '[1,'", []).unwrap();

    let err = store.audit(Some("beta"), 10).unwrap_err();

    assert!(matches!(&err, StoreError::Corrupt { key: k, .. } if *k == key), "{err:?}");
}

#[test]
fn corrupt_applied_groups_are_reported_with_the_cookie() {
    let store = SqliteStore::open_in_memory().unwrap();
    let owner = AppliedOwner { cookie: 0xabc, digest: "d".into(), flow_count: 1, groups: vec![7] };
    store.record_applied(0, &[owner]).unwrap();
    store.conn().execute("UPDATE applied_owners SET groups_json = '[\"x\"]'", []).unwrap();

    let err = store.applied().unwrap_err();

    assert!(matches!(err, StoreError::CorruptApplied { cookie: 0xabc, .. }), "{err:?}");
}

#[test]
fn negative_revision_in_the_file_is_reported_as_inconsistent() {
    let store = SqliteStore::open_in_memory().unwrap();
    let key = ObjectKey::global("k", "n");
    store.commit(&admin(), "seed", &[put(&key, json!(1))], 0).unwrap();
    // The schema's foreign key would refuse this write; damage does not ask permission.
    store.conn().pragma_update(None, "foreign_keys", false).unwrap();
    store.conn().execute("UPDATE objects SET revision = -3", []).unwrap();

    let err = store.objects().unwrap_err();

    assert!(matches!(&err, StoreError::Inconsistent { what: "object revision", value } if value == "-3"), "{err:?}");
}

#[test]
fn global_and_tenant_objects_with_the_same_kind_and_name_are_distinct_rows() {
    let store = SqliteStore::open_in_memory().unwrap();
    let global = ObjectKey::global("policy", "p");
    let empty_tenant = ObjectKey::tenant("policy", "", "p");

    store.commit(&admin(), "both", &[put(&global, json!(1)), put(&empty_tenant, json!(2))], 0).unwrap();

    let count: i64 = store.conn().query_row("SELECT count(*) FROM objects", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 2);
    let dup = store.conn().execute(
        "INSERT INTO objects (kind, tenant, name, spec_json, revision) VALUES ('policy', NULL, 'p', '3', 1)",
        [],
    );
    assert!(dup.is_err(), "the unique key index must reject a second global row");
}

fn scan_task(id: u64) -> StoredScanTask {
    StoredScanTask {
        id,
        tenant: "alpha".into(),
        state: "done".into(),
        started_unix_ms: 5,
        body: json!({ "id": id, "open": [] }),
    }
}

#[test]
fn corrupt_scan_task_body_is_reported_with_its_id_not_a_panic() {
    let store = SqliteStore::open_in_memory().unwrap();
    store.put_scan_task(&scan_task(3)).unwrap();
    store.put_scan_task(&scan_task(4)).unwrap();
    store.conn().execute("UPDATE scan_tasks SET body_json = '{\"open\": [' WHERE id = 4", []).unwrap();

    let one = store.scan_task(4).unwrap_err();
    let all = store.scan_tasks(None, None, 0, 10).unwrap_err();

    assert!(matches!(one, StoreError::CorruptScanTask { id: 4, .. }), "{one:?}");
    assert!(matches!(all, StoreError::CorruptScanTask { id: 4, .. }), "{all:?}");
    assert_eq!(one.to_string(), "the stored scan task 4 is corrupt");
    assert_eq!(store.scan_task(3).unwrap(), Some(scan_task(3)), "the sound row still reads");
}

#[test]
fn a_scan_task_id_beyond_sqlite_integers_is_refused_not_wrapped() {
    let store = SqliteStore::open_in_memory().unwrap();

    let err = store.put_scan_task(&scan_task(u64::MAX)).unwrap_err();

    assert!(matches!(err, StoreError::PutScanTask { id: u64::MAX, .. }), "{err:?}");
    assert_eq!(store.last_scan_task_id().unwrap(), 0);
}
