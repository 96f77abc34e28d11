//! The scan service end to end on the private bridge (issue #7): tasks per tenant find their
//! own tenant's ports, a failing task is recorded with its reason and leaves nothing, a
//! predecessor's leftovers are removed at start. Needs root and OVS.

mod common;

use std::sync::Arc;

use common::{listen, sh, Bed, BRIDGE};
use palisade_model::{merge_file, Inventory};
use palisade_ovs::{OfctlSwitch, Switch};
use palisade_scan::{AddressPool, FailureReason, Naming, Profile, ScanService, Target, TaskState, DEFAULT_POOL};
use palisade_store::{SqliteStore, Store, StoredScanTask};

fn target(inv: &Inventory, tenant: &str) -> Target {
    Target::resolve(inv, &tenant.parse().unwrap(), &"web1".parse().unwrap()).unwrap()
}

#[test]
fn tasks_find_their_own_tenants_ports_and_failures_leave_nothing() {
    let _bed = Bed::up();
    let inv = merge_file("bed.yaml", common::INVENTORY, &Inventory::default()).unwrap().after;
    let switch: Arc<dyn Switch> = Arc::new(OfctlSwitch::new(BRIDGE));
    // A crashed predecessor left a task namespace and a task flow.
    sh(&["ip", "netns", "add", "pst-s000000ff"]);
    let stale = palisade_flows::Cookie::new(palisade_flows::OwnerKind::Task, "task 255");
    switch.commit(&[format!("flow add cookie={stale},priority=4000,in_port=1,actions=drop")]).unwrap();

    let pool = AddressPool::new(DEFAULT_POOL.parse().unwrap()).unwrap();
    // ... and the controller's store a task it was running when it died.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let cut = palisade_scan::TaskRecord {
        id: 7,
        tenant: "alpha".into(),
        target: "alpha/web1".into(),
        kind: palisade_model::ScanKind::PortScan,
        state: TaskState::Running,
        reason: None,
        detail: None,
        started_ms: 0,
        duration_ms: 0.0,
        open: vec![],
        ports: vec![],
        services: vec![],
        findings: vec![],
    };
    store
        .put_scan_task(&StoredScanTask {
            id: 7,
            tenant: cut.tenant.clone(),
            state: "running".into(),
            started_unix_ms: 0,
            body: serde_json::to_value(&cut).unwrap(),
        })
        .unwrap();
    let svc = ScanService::start(BRIDGE, switch.clone(), Naming::new("pst-s").unwrap(), pool, store.clone()).unwrap();
    let old = svc.task(7).unwrap().unwrap();
    assert_eq!((old.state, old.reason), (TaskState::Failed, Some(FailureReason::EngineStopped)));
    assert!(!sh(&["ip", "netns", "list"]).contains("pst-s000000ff"));
    assert!(switch.installed().unwrap().flows.keys().all(|c| !c.is_task()));
    svc.check_pool(&inv).unwrap();

    let _a = listen("pst-a-web1", 8081);
    let _b = listen("pst-b-web1", 8082);
    let profile =
        Profile { tcp: vec![22, 80, 8081, 8082], udp: vec![], concurrency: 16, timeout_ms: 700, ..Profile::default() };
    let (ta, tb) = (target(&inv, "alpha"), target(&inv, "beta"));
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| svc.run(&ta, &profile));
        let b = s.spawn(|| svc.run(&tb, &profile));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a.state, TaskState::Done, "{a:?}");
    assert_eq!(a.open.iter().map(|p| p.port).collect::<Vec<_>>(), vec![8081]);
    assert_eq!(b.open.iter().map(|p| p.port).collect::<Vec<_>>(), vec![8082]);
    assert_eq!(a.ports.len(), 4);
    println!("task durations: {:.1} ms, {:.1} ms", a.duration_ms, b.duration_ms);

    // A target whose port is not on the bridge: the task fails, says why, and leaves nothing.
    let mut gone = target(&inv, "alpha");
    gone.port = "pst-missing".to_owned();
    let f = svc.run(&gone, &profile);
    assert_eq!(f.state, TaskState::Failed);
    assert_eq!(f.reason, Some(FailureReason::TargetNotAttached));
    let detail = f.detail.as_deref().unwrap_or_default();
    assert_eq!(detail, "the target cannot be reached: port pst-missing is not on the bridge");
    assert!(!sh(&["ip", "netns", "list"]).contains("pst-s"), "no task namespace remains");
    assert!(!sh(&["ovs-vsctl", "list-ports", BRIDGE]).contains("pst-s"), "no task port remains");
    assert!(switch.installed().unwrap().flows.keys().all(|c| !c.is_task()), "no task flow remains");

    // The history is per tenant.
    let alpha: Vec<_> = svc.tasks(Some("alpha")).unwrap().into_iter().map(|t| (t.id, t.target)).collect();
    let ids: Vec<u32> = alpha.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 3, "{alpha:?}");
    assert!(ids.iter().all(|id| *id >= 7), "ids continue after the stored ones: {ids:?}");
    assert_eq!(svc.tasks(Some("beta")).unwrap().len(), 1);
    assert_eq!(svc.tasks(None).unwrap().len(), 4);

    // Two scans of alpha/web1 compare: nothing opened or closed between them.
    let d = palisade_scan::diff(&a, &svc.task(a.id).unwrap().unwrap()).unwrap();
    assert!(d.opened.is_empty() && d.closed.is_empty());

    // A scheduled policy on alpha's subdomain runs once per period against both its VMs.
    let policy = "policies:\n  - name: web-ports\n    tenant: alpha\n    scan:\n      target: { subdomain: web }\n      profile: { tcp: [8081, 8082] }\n      schedule: { every: 1h }\n      concurrency: 2\n";
    let with_policy = merge_file("scan.yaml", policy, &inv).unwrap().after;
    let scheduler = palisade_scan::Scheduler::default();
    let ran = palisade_scan::schedule::run_due(&with_policy, &svc, &scheduler, 1_000_000);
    let mut seen: Vec<(String, Vec<u16>)> =
        ran.iter().map(|t| (t.target.clone(), t.open.iter().map(|p| p.port).collect())).collect();
    seen.sort();
    assert_eq!(seen, vec![("alpha/web1".to_owned(), vec![8081]), ("alpha/web2".to_owned(), vec![])]);
    assert!(
        palisade_scan::schedule::run_due(&with_policy, &svc, &scheduler, 1_000_060).is_empty(),
        "not due again yet"
    );
}
