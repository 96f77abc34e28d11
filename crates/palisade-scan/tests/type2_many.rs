//! 20 concurrent tasks across 5 tenants whose VMs all have the same IP (issue #7): every task
//! finds its own tenant's port only, shared flows survive while any task on their target runs,
//! and afterwards no task namespace, port or flow remains. Needs root and OVS.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{listen, sh, Bed, Host, BRIDGE};
use palisade_model::{merge_file, Inventory};
use palisade_ovs::{OfctlSwitch, Switch};
use palisade_scan::{AddressPool, Naming, Profile, ScanService, Target, TaskState, DEFAULT_POOL};
use palisade_store::SqliteStore;

const TENANTS: usize = 5;
const TASKS_PER_TENANT: usize = 4;

const HOSTS: [Host; 10] = [
    ("pst-m1-web", 111, "02:00:00:6f:01:0a", "198.18.1.10", true),
    ("pst-m1-gw", 111, "02:00:00:6f:01:01", "198.18.1.1", false),
    ("pst-m2-web", 112, "02:00:00:70:01:0a", "198.18.1.10", true),
    ("pst-m2-gw", 112, "02:00:00:70:01:01", "198.18.1.1", false),
    ("pst-m3-web", 113, "02:00:00:71:01:0a", "198.18.1.10", true),
    ("pst-m3-gw", 113, "02:00:00:71:01:01", "198.18.1.1", false),
    ("pst-m4-web", 114, "02:00:00:72:01:0a", "198.18.1.10", true),
    ("pst-m4-gw", 114, "02:00:00:72:01:01", "198.18.1.1", false),
    ("pst-m5-web", 115, "02:00:00:73:01:0a", "198.18.1.10", true),
    ("pst-m5-gw", 115, "02:00:00:73:01:01", "198.18.1.1", false),
];

fn inventory() -> String {
    let mut y = String::from("tenants:\n");
    for t in 1..=TENANTS {
        let vlan = 110 + t;
        let hex = format!("{:02x}", 0x6e + t);
        y.push_str(&format!(
            "  - name: t{t}\n    domains:\n      - name: prod\n        segment: {vlan}\n        subdomains:\n\
             \x20         - name: web\n            cidr: 198.18.1.0/24\n            gateway: 198.18.1.1\n\
             \x20           gateway_mac: \"02:00:00:{hex}:01:01\"\n            gateway_port: pst-m{t}-gw\n\
             \x20           vms:\n              - {{ name: web, mac: \"02:00:00:{hex}:01:0a\", ip: 198.18.1.10, port: pst-m{t}-web }}\n"
        ));
    }
    y
}

/// A `VmRSS`/`VmHWM` line of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn twenty_concurrent_tasks_across_five_same_ip_tenants() {
    let _bed = Bed::up_with(&HOSTS);
    let inv = merge_file("many.yaml", &inventory(), &Inventory::default()).expect("valid inventory").after;
    let switch: Arc<dyn Switch> = Arc::new(OfctlSwitch::new(BRIDGE));
    let pool = AddressPool::new(DEFAULT_POOL.parse().unwrap()).unwrap();
    let svc = ScanService::start(
        BRIDGE,
        switch.clone(),
        Naming::new("pst-m").unwrap(),
        pool,
        Arc::new(SqliteStore::open_in_memory().unwrap()),
    )
    .unwrap();
    svc.check_pool(&inv).unwrap();
    // Tenant t<i>'s VM listens on 9000+i only; all five VMs are 198.18.1.10.
    let _listeners: Vec<_> = (1..=TENANTS).map(|t| listen(&format!("pst-m{t}-web"), 9000 + t as u16)).collect();
    let profile =
        Profile { tcp: (9001..=9005).collect(), udp: vec![], concurrency: 5, timeout_ms: 1000, ..Profile::default() };

    let rss_before = status_kib("VmRSS");
    let started = Instant::now();
    let records = std::thread::scope(|s| {
        let handles: Vec<_> = (0..TENANTS * TASKS_PER_TENANT)
            .map(|i| {
                let t = i % TENANTS + 1;
                let target = Target::resolve(&inv, &format!("t{t}").parse().unwrap(), &"web".parse().unwrap()).unwrap();
                let (svc, profile) = (&svc, &profile);
                s.spawn(move || (t, svc.run(&target, profile)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    let wall = started.elapsed().as_secs_f64() * 1e3;

    assert_eq!(records.len(), 20);
    for (t, rec) in &records {
        assert_eq!(rec.state, TaskState::Done, "{rec:?}");
        let open: Vec<u16> = rec.open.iter().map(|p| p.port).collect();
        assert_eq!(open, vec![9000 + *t as u16], "task {} on t{t} found {open:?}", rec.id);
        assert_eq!(rec.ports.len(), 5, "every port answered (open or closed)");
    }
    let longest = records.iter().map(|(_, r)| r.duration_ms).fold(0.0, f64::max);
    // Memory: the engine's peak resident set over its resident set before the tasks, per task
    // (an upper bound: the peak may include the test's own earlier allocations).
    let per_task_kib = status_kib("VmHWM").saturating_sub(rss_before) / 20;
    println!(
        "20 tasks across 5 tenants: {wall:.0} ms wall, longest task {longest:.0} ms, <= {per_task_kib} KiB per task"
    );
    assert!(per_task_kib <= 5 * 1024, "memory per concurrent task stays within 5 MB");

    assert!(!sh(&["ip", "netns", "list"]).lines().any(|l| l.starts_with("pst-m0")), "no task namespace remains");
    assert!(!sh(&["ovs-vsctl", "list-ports", BRIDGE]).lines().any(|l| l.starts_with("pst-m0")), "no task port remains");
    assert!(switch.installed().unwrap().flows.keys().all(|c| !c.is_task()), "no task flow remains");
}
