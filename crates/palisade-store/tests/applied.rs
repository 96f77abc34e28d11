//! The reconciler's applied-state record through `Store`.

mod common;

use common::{admin, put, stores};
use palisade_store::{AppliedOwner, ObjectKey, SqliteStore, Store, StoreError};
use serde_json::json;

fn owner(cookie: u64, digest: &str, groups: &[u32]) -> AppliedOwner {
    AppliedOwner { cookie, digest: digest.into(), flow_count: groups.len() as u32 * 3, groups: groups.to_vec() }
}

fn advance_to(store: &dyn Store, revision: u64) {
    for i in 0..revision {
        let key = ObjectKey::global("counter", "c");
        store.commit(&admin(), "tick", &[put(&key, json!(i))], 0).unwrap();
    }
}

#[test]
fn nothing_recorded_reads_as_revision_zero_and_no_owners() {
    for f in stores() {
        assert_eq!(f.store.applied().unwrap(), (0, vec![]), "{}", f.name);
    }
}

#[test]
fn recorded_state_reads_back_sorted_by_cookie_with_all_64_bits() {
    for f in stores() {
        advance_to(f.store.as_ref(), 2);
        let owners = [owner(u64::MAX, "ff", &[9]), owner(5, "05", &[]), owner(1 << 63, "80", &[1, 2])];

        f.store.record_applied(2, &owners).unwrap();

        let want = vec![owners[1].clone(), owners[2].clone(), owners[0].clone()];
        assert_eq!(f.store.applied().unwrap(), (2, want), "{}", f.name);
    }
}

#[test]
fn recording_replaces_the_whole_previous_record() {
    for f in stores() {
        advance_to(f.store.as_ref(), 3);
        f.store.record_applied(2, &[owner(1, "a", &[1]), owner(2, "b", &[2])]).unwrap();

        f.store.record_applied(3, &[owner(2, "b2", &[])]).unwrap();

        assert_eq!(f.store.applied().unwrap(), (3, vec![owner(2, "b2", &[])]), "{}", f.name);
    }
}

#[test]
fn recording_a_revision_ahead_of_the_desired_state_fails_and_keeps_the_old_record() {
    for f in stores() {
        advance_to(f.store.as_ref(), 1);
        f.store.record_applied(1, &[owner(1, "a", &[])]).unwrap();

        let err = f.store.record_applied(4, &[]).unwrap_err();

        assert!(matches!(err, StoreError::AppliedAhead { applied: 4, current: 1 }), "{}: {err:?}", f.name);
        assert_eq!(f.store.applied().unwrap(), (1, vec![owner(1, "a", &[])]), "{}", f.name);
    }
}

#[test]
fn duplicate_cookies_are_rejected_and_keep_the_old_record() {
    for f in stores() {
        f.store.record_applied(0, &[owner(7, "x", &[])]).unwrap();

        let err = f.store.record_applied(0, &[owner(9, "a", &[]), owner(9, "b", &[])]).unwrap_err();

        assert!(matches!(err, StoreError::DuplicateCookie { cookie: 9 }), "{}: {err:?}", f.name);
        assert_eq!(f.store.applied().unwrap(), (0, vec![owner(7, "x", &[])]), "{}", f.name);
    }
}

#[test]
fn applied_state_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).unwrap();
    advance_to(&store, 1);
    store.record_applied(1, &[owner(42, "d", &[3, 4])]).unwrap();
    drop(store);

    let reopened = SqliteStore::open(&path).unwrap();

    assert_eq!(reopened.applied().unwrap(), (1, vec![owner(42, "d", &[3, 4])]));
}
