//! Desired state through `Store`: commit, read back, no-ops, deletes, ordering.

mod common;

use common::{admin, delete, put, stores};
use palisade_store::{AuditOp, ObjectKey, StoredObject};
use serde_json::json;

#[test]
fn empty_store_has_revision_zero_and_no_objects() {
    for f in stores() {
        assert_eq!(f.store.revision().unwrap(), 0, "{}", f.name);
        assert!(f.store.objects().unwrap().is_empty(), "{}", f.name);
    }
}

#[test]
fn committed_objects_read_back_sorted_by_key_with_their_revision() {
    for f in stores() {
        let web = ObjectKey::tenant("policy", "alpha", "web");
        let db = ObjectKey::tenant("policy", "alpha", "db");
        let global = ObjectKey::global("policy", "zz-default");
        let net = ObjectKey::tenant("network", "beta", "n1");

        let rev = f
            .store
            .commit(
                &admin(),
                "seed",
                &[
                    put(&web, json!({"port": 80})),
                    put(&global, json!(true)),
                    put(&net, json!([1])),
                    put(&db, json!({})),
                ],
                1_000,
            )
            .unwrap();

        assert_eq!(rev, 1, "{}", f.name);
        assert_eq!(f.store.revision().unwrap(), 1, "{}", f.name);
        let want = vec![
            StoredObject { key: net, spec: json!([1]), revision: 1 },
            StoredObject { key: global, spec: json!(true), revision: 1 },
            StoredObject { key: db, spec: json!({}), revision: 1 },
            StoredObject { key: web, spec: json!({"port": 80}), revision: 1 },
        ];
        assert_eq!(f.store.objects().unwrap(), want, "{}", f.name);
    }
}

#[test]
fn update_bumps_only_the_changed_object_revision() {
    for f in stores() {
        let a = ObjectKey::tenant("policy", "alpha", "a");
        let b = ObjectKey::tenant("policy", "alpha", "b");
        f.store.commit(&admin(), "seed", &[put(&a, json!(1)), put(&b, json!(1))], 0).unwrap();

        let rev = f.store.commit(&admin(), "change b", &[put(&a, json!(1)), put(&b, json!(2))], 1).unwrap();

        assert_eq!(rev, 2, "{}", f.name);
        let objs = f.store.objects().unwrap();
        assert_eq!((objs[0].revision, &objs[0].spec), (1, &json!(1)), "{}: a is unchanged", f.name);
        assert_eq!((objs[1].revision, &objs[1].spec), (2, &json!(2)), "{}", f.name);
        let entry = &f.store.audit(None, 1).unwrap()[0];
        assert_eq!(entry.mutations.len(), 1, "{}: the no-op put of a is not audited", f.name);
        assert_eq!(entry.mutations[0].before, Some(json!(1)), "{}", f.name);
    }
}

#[test]
fn commit_of_only_no_ops_creates_no_revision_and_no_audit_entry() {
    for f in stores() {
        let a = ObjectKey::global("settings", "a");
        let absent = ObjectKey::global("settings", "absent");
        f.store.commit(&admin(), "seed", &[put(&a, json!({"k": [1, 2]}))], 0).unwrap();

        let same_spec = f.store.commit(&admin(), "same", &[put(&a, json!({"k": [1, 2]}))], 1).unwrap();
        let delete_absent = f.store.commit(&admin(), "gone", &[delete(&absent)], 2).unwrap();
        let nothing = f.store.commit(&admin(), "empty", &[], 3).unwrap();

        assert_eq!((same_spec, delete_absent, nothing), (1, 1, 1), "{}", f.name);
        assert_eq!(f.store.revision().unwrap(), 1, "{}", f.name);
        assert_eq!(f.store.audit(None, 100).unwrap().len(), 1, "{}", f.name);
        // A later real commit takes the next number: no revision was burnt by the no-ops.
        assert_eq!(f.store.commit(&admin(), "real", &[delete(&a)], 4).unwrap(), 2, "{}", f.name);
    }
}

#[test]
fn delete_removes_the_object_and_audits_what_it_was() {
    for f in stores() {
        let keep = ObjectKey::tenant("policy", "alpha", "keep");
        let gone = ObjectKey::tenant("policy", "alpha", "gone");
        f.store.commit(&admin(), "seed", &[put(&keep, json!(1)), put(&gone, json!({"v": 2}))], 0).unwrap();

        let rev = f.store.commit(&admin(), "remove", &[delete(&gone)], 5).unwrap();

        assert_eq!(rev, 2, "{}", f.name);
        let keys: Vec<_> = f.store.objects().unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, vec![keep], "{}", f.name);
        let entry = &f.store.audit(None, 1).unwrap()[0];
        assert_eq!(entry.mutations[0].op, AuditOp::Delete, "{}", f.name);
        assert_eq!(entry.mutations[0].before, Some(json!({"v": 2})), "{}", f.name);
        assert_eq!(entry.mutations[0].after, None, "{}", f.name);
    }
}

#[test]
fn mutations_apply_in_order_within_one_commit() {
    for f in stores() {
        let k = ObjectKey::tenant("policy", "alpha", "k");

        let rev = f.store.commit(&admin(), "churn", &[put(&k, json!(1)), put(&k, json!(2)), delete(&k)], 0).unwrap();

        assert_eq!(rev, 1, "{}", f.name);
        assert!(f.store.objects().unwrap().is_empty(), "{}", f.name);
        let muts = &f.store.audit(None, 1).unwrap()[0].mutations;
        let seen: Vec<_> = muts.iter().map(|m| (m.op, m.before.clone(), m.after.clone())).collect();
        assert_eq!(
            seen,
            vec![
                (AuditOp::Put, None, Some(json!(1))),
                (AuditOp::Put, Some(json!(1)), Some(json!(2))),
                (AuditOp::Delete, Some(json!(2)), None),
            ],
            "{}",
            f.name
        );
    }
}

#[test]
fn global_object_and_tenant_object_of_the_same_name_are_independent() {
    for f in stores() {
        let global = ObjectKey::global("policy", "p");
        let owned = ObjectKey::tenant("policy", "alpha", "p");
        f.store.commit(&admin(), "both", &[put(&global, json!("g")), put(&owned, json!("t"))], 0).unwrap();

        f.store.commit(&admin(), "drop tenant one", &[delete(&owned)], 1).unwrap();

        let objs = f.store.objects().unwrap();
        assert_eq!(objs.len(), 1, "{}", f.name);
        assert_eq!((&objs[0].key, &objs[0].spec), (&global, &json!("g")), "{}", f.name);
    }
}
