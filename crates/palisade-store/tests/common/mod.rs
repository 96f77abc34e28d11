//! Shared fixtures: every behaviour test runs against an in-memory and a file-backed store,
//! through `dyn Store` only, so a future backend can be added to `stores()` unchanged.

#![allow(dead_code)] // each test file uses a different subset

use palisade_store::{Actor, Mutation, ObjectKey, SqliteStore, Store};
use serde_json::Value;

/// A store under test plus whatever keeps it alive (the temporary directory of a file store).
pub struct Fixture {
    pub name: &'static str,
    pub store: Box<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

/// One in-memory and one file-backed store, both empty.
pub fn stores() -> Vec<Fixture> {
    let dir = tempfile::tempdir().expect("create temp dir");
    let file = SqliteStore::open(dir.path().join("state.db")).expect("open file store");
    vec![
        Fixture {
            name: "in-memory",
            store: Box::new(SqliteStore::open_in_memory().expect("open in-memory store")),
            _dir: None,
        },
        Fixture { name: "file", store: Box::new(file), _dir: Some(dir) },
    ]
}

pub fn admin() -> Actor {
    Actor("admin".into())
}

pub fn put(key: &ObjectKey, spec: Value) -> Mutation {
    Mutation::Put { key: key.clone(), spec }
}

pub fn delete(key: &ObjectKey) -> Mutation {
    Mutation::Delete { key: key.clone() }
}
