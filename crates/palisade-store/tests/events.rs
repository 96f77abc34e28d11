//! Monitor events through `Store` (issue #5): append order, paging, tenant and VM scoping,
//! and durability across reopening.

mod common;

use common::stores;
use palisade_store::{EventStream, SqliteStore, Store, StoredEvent};
use serde_json::json;

fn event(tenant: &str, vm: &str, path: &str) -> StoredEvent {
    StoredEvent { id: 0, tenant: tenant.into(), vm: vm.into(), body: json!({ "path": path, "action": "block" }) }
}

#[test]
fn events_page_in_append_order_and_a_tenant_reads_only_its_own() {
    for f in stores() {
        let store = &f.store;
        store
            .append_events(
                EventStream::Monitor,
                &[event("alpha", "guest1", "/etc/hosts"), event("beta", "guest1", "/etc/secret")],
            )
            .unwrap();
        store.append_events(EventStream::Monitor, &[event("alpha", "guest2", "/root/note")]).unwrap();

        let all = store.events(EventStream::Monitor, None, None, 0, 10).unwrap();
        assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3]);
        let alpha = store.events(EventStream::Monitor, Some("alpha"), None, 0, 10).unwrap();
        assert_eq!(
            alpha.iter().map(|e| e.body["path"].as_str().unwrap()).collect::<Vec<_>>(),
            ["/etc/hosts", "/root/note"]
        );
        assert!(alpha.iter().all(|e| e.tenant == "alpha"));
        let guest1 = store.events(EventStream::Monitor, Some("alpha"), Some("guest1"), 0, 10).unwrap();
        assert_eq!(guest1.len(), 1);
        assert_eq!(
            store.events(EventStream::Monitor, Some("alpha"), None, alpha[0].id, 10).unwrap().len(),
            1,
            "after= pages"
        );
        assert_eq!(store.events(EventStream::Monitor, None, None, 0, 2).unwrap().len(), 2, "limit");
        assert!(store.events(EventStream::Monitor, Some("gamma"), None, 0, 10).unwrap().is_empty());
    }
}

#[test]
fn appended_events_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    SqliteStore::open(&path)
        .unwrap()
        .append_events(EventStream::Monitor, &[event("alpha", "guest1", "/etc/hosts")])
        .unwrap();

    let reopened = SqliteStore::open(&path).unwrap();

    let got = reopened.events(EventStream::Monitor, Some("alpha"), Some("guest1"), 0, 10).unwrap();
    assert_eq!(got, [StoredEvent { id: 1, ..event("alpha", "guest1", "/etc/hosts") }]);
}

#[test]
fn alerts_are_a_stream_of_their_own_scoped_like_events() {
    for f in stores() {
        let store = &f.store;
        store.append_events(EventStream::Monitor, &[event("alpha", "web1", "/etc/hosts")]).unwrap();
        let alert = |tenant: &str, vm: &str, score: f64| StoredEvent {
            id: 0,
            tenant: tenant.into(),
            vm: vm.into(),
            body: json!({ "score": score, "alert": true }),
        };
        store.append_events(EventStream::Alerts, &[alert("alpha", "web1", 0.9), alert("beta", "web1", 0.8)]).unwrap();
        store.append_events(EventStream::Alerts, &[alert("alpha", "web2", 0.7)]).unwrap();

        let all = store.events(EventStream::Alerts, None, None, 0, 10).unwrap();
        assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3], "alerts are numbered on their own");
        assert_eq!(
            store.events(EventStream::Monitor, None, None, 0, 10).unwrap().len(),
            1,
            "alerts are not monitor events"
        );
        let alpha = store.events(EventStream::Alerts, Some("alpha"), None, 0, 10).unwrap();
        assert_eq!(alpha.iter().map(|e| e.body["score"].as_f64().unwrap()).collect::<Vec<_>>(), [0.9, 0.7]);
        assert_eq!(store.events(EventStream::Alerts, Some("alpha"), Some("web1"), 0, 10).unwrap().len(), 1);
        assert_eq!(
            store.events(EventStream::Alerts, Some("alpha"), None, alpha[0].id, 10).unwrap().len(),
            1,
            "after= pages"
        );
        assert!(store.events(EventStream::Alerts, Some("gamma"), None, 0, 10).unwrap().is_empty());
    }
}
