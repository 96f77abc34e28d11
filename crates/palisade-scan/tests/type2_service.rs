//! The scan service end to end on the private bridge (issue #7): tasks per tenant find their
//! own tenant's ports, a failing task is recorded with its reason and leaves nothing, a
//! predecessor's leftovers are removed at start. Needs root and OVS.

mod common;

use std::sync::Arc;

use common::{listen, sh, Bed, BRIDGE};
use palisade_model::{merge_file, Inventory};
use palisade_ovs::{OfctlSwitch, Switch};
use palisade_scan::{AddressPool, Naming, Profile, ScanService, Target, TaskState, DEFAULT_POOL};

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
    let svc = ScanService::start(BRIDGE, switch.clone(), Naming::new("pst-s").unwrap(), pool).unwrap();
    assert!(!sh(&["ip", "netns", "list"]).contains("pst-s000000ff"));
    assert!(switch.installed().unwrap().flows.keys().all(|c| !c.is_task()));
    svc.check_pool(&inv).unwrap();

    let _a = listen("pst-a-web1", 8081);
    let _b = listen("pst-b-web1", 8082);
    let profile = Profile { tcp: vec![22, 80, 8081, 8082], udp: vec![], concurrency: 16, timeout_ms: 700 };
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
    assert_eq!(f.reason.as_deref(), Some("the target cannot be reached: port pst-missing is not on the bridge"));
    assert!(!sh(&["ip", "netns", "list"]).contains("pst-s"), "no task namespace remains");
    assert!(!sh(&["ovs-vsctl", "list-ports", BRIDGE]).contains("pst-s"), "no task port remains");
    assert!(switch.installed().unwrap().flows.keys().all(|c| !c.is_task()), "no task flow remains");

    // The history is per tenant.
    let alpha: Vec<_> = svc.tasks(Some("alpha")).into_iter().map(|t| t.target).collect();
    assert_eq!(alpha, vec!["alpha/web1".to_owned(), "alpha/web1".to_owned()]);
    assert_eq!(svc.tasks(Some("beta")).len(), 1);
    assert_eq!(svc.tasks(None).len(), 3);
}
