//! The audit log through `Store`: order, limits, recorded fields, and tenant isolation.

mod common;

use common::{admin, delete, put, stores};
use palisade_store::{Actor, AuditOp, ObjectKey, Store};
use serde_json::json;

/// rev 1: alpha only; rev 2: beta only; rev 3: alpha, beta and a global object.
fn seed(store: &dyn Store) {
    let a = ObjectKey::tenant("policy", "alpha", "web");
    let b = ObjectKey::tenant("policy", "beta", "db");
    let g = ObjectKey::global("settings", "main");
    store.commit(&Actor("tenant:alpha".into()), "alpha web", &[put(&a, json!({"v": 1}))], 100).unwrap();
    store.commit(&Actor("tenant:beta".into()), "beta db", &[put(&b, json!({"secret": "b"}))], 200).unwrap();
    store.commit(&admin(), "bulk", &[put(&a, json!({"v": 2})), delete(&b), put(&g, json!(1))], 300).unwrap();
}

#[test]
fn audit_is_newest_first_with_actor_summary_and_time() {
    for f in stores() {
        seed(f.store.as_ref());

        let log = f.store.audit(None, 10).unwrap();

        let heads: Vec<_> =
            log.iter().map(|e| (e.revision, e.at_unix_ms, e.actor.as_str(), e.summary.as_str())).collect();
        assert_eq!(
            heads,
            vec![(3, 300, "admin", "bulk"), (2, 200, "tenant:beta", "beta db"), (1, 100, "tenant:alpha", "alpha web")],
            "{}",
            f.name
        );
        assert_eq!(log[0].mutations.len(), 3, "{}: unfiltered entries keep every mutation", f.name);
    }
}

#[test]
fn audit_limit_keeps_the_newest_entries() {
    for f in stores() {
        seed(f.store.as_ref());

        let revs: Vec<_> = f.store.audit(None, 2).unwrap().iter().map(|e| e.revision).collect();

        assert_eq!(revs, vec![3, 2], "{}", f.name);
        assert!(f.store.audit(None, 0).unwrap().is_empty(), "{}", f.name);
    }
}

#[test]
fn tenant_sees_only_entries_and_mutations_touching_its_own_objects() {
    for f in stores() {
        seed(f.store.as_ref());

        let alpha = f.store.audit(Some("alpha"), 10).unwrap();

        let revs: Vec<_> = alpha.iter().map(|e| e.revision).collect();
        assert_eq!(revs, vec![3, 1], "{}", f.name);
        for entry in &alpha {
            for m in &entry.mutations {
                assert_eq!(m.key.tenant.as_deref(), Some("alpha"), "{}: leaked {:?}", f.name, m.key);
            }
        }
        let bulk = &alpha[0].mutations;
        assert_eq!(bulk.len(), 1, "{}", f.name);
        assert_eq!((bulk[0].before.clone(), bulk[0].after.clone()), (Some(json!({"v": 1})), Some(json!({"v": 2}))));
    }
}

#[test]
fn tenant_never_sees_another_tenants_documents() {
    for f in stores() {
        seed(f.store.as_ref());

        let alpha = serde_json::to_string(&f.store.audit(Some("alpha"), 10).unwrap()).unwrap();
        let beta = f.store.audit(Some("beta"), 10).unwrap();

        assert!(!alpha.contains("secret"), "{}: beta's document reached alpha: {alpha}", f.name);
        let revs: Vec<_> = beta.iter().map(|e| e.revision).collect();
        assert_eq!(revs, vec![3, 2], "{}", f.name);
        assert_eq!(beta[0].mutations.len(), 1, "{}", f.name);
        assert_eq!(beta[0].mutations[0].op, AuditOp::Delete, "{}", f.name);
        assert!(f.store.audit(Some("gamma"), 10).unwrap().is_empty(), "{}", f.name);
    }
}

#[test]
fn tenant_limit_counts_only_that_tenants_entries() {
    for f in stores() {
        seed(f.store.as_ref());
        let other = ObjectKey::tenant("policy", "beta", "x");
        f.store.commit(&admin(), "beta again", &[put(&other, json!(0))], 400).unwrap();

        let revs: Vec<_> = f.store.audit(Some("alpha"), 2).unwrap().iter().map(|e| e.revision).collect();

        assert_eq!(revs, vec![3, 1], "{}: beta's newer entry must not use up alpha's limit", f.name);
    }
}
