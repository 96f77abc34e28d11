//! Type 2 access with real traffic on a private bridge (issue #7): task spaces reach their own
//! tenant's VM through a virtual address, even though both tenants' VMs share one IP; nobody
//! else sees a packet from a task space; teardown leaves nothing. Needs root and OVS.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{listen, sh, Bed, BRIDGE};
use palisade_model::{merge_file, Inventory};
use palisade_ovs::{OfctlSwitch, Switch};
use palisade_scan::{
    compile_task, scan_in, AddressPool, Naming, PortState, Proto, ScanSpec, Target, TaskFlows, TaskId, TaskSpace,
    DEFAULT_POOL,
};
use palisade_testkit::Capture;

struct Task {
    id: TaskId,
    space: TaskSpace,
}

fn start(flows: &TaskFlows, pool: &mut AddressPool, inv: &Inventory, id: u32, tenant: &str) -> Task {
    let naming = Naming::new("pst-t").unwrap();
    let id = TaskId(id);
    let addrs = pool.allocate().unwrap();
    let space = TaskSpace::create(&naming, id, addrs, BRIDGE).expect("task space");
    let target = Target::resolve(inv, &tenant.parse().unwrap(), &"web1".parse().unwrap()).unwrap();
    let ports = flows.switch().ports().unwrap();
    let rules = compile_task(id, &addrs, space.name(), &target, pool.net(), &ports).unwrap();
    flows.setup(id, &rules).expect("flows installed");
    Task { id, space }
}

fn stop(flows: &TaskFlows, pool: &mut AddressPool, task: Task) {
    pool.release(task.space.addrs()).unwrap();
    let (down, removed) = palisade_scan::service::teardown(flows, task.id, task.space);
    down.unwrap();
    removed.unwrap();
}

fn scan(task: &Task, ports: &[u16]) -> BTreeSet<u16> {
    let spec = ScanSpec {
        target: task.space.addrs().vir.ip,
        tcp: ports.to_vec(),
        udp: vec![],
        concurrency: 8,
        timeout: Duration::from_millis(700),
    };
    let report = scan_in(&task.space.netns_path(), spec).unwrap();
    for p in &report.ports {
        assert!(p.state == PortState::Open || p.state == PortState::Closed, "every port answers: {p:?}");
    }
    report.open().filter(|p| p.proto == Proto::Tcp).map(|p| p.port).collect()
}

/// Average ping RTT in ms from namespace `ns` to `ip`.
fn rtt_ms(ns: &str, ip: &str) -> f64 {
    let out = sh(&["ip", "netns", "exec", ns, "ping", "-q", "-c", "50", "-i", "0.01", "-W", "1", ip]);
    let stats = out.lines().find(|l| l.starts_with("rtt")).unwrap_or_else(|| panic!("no rtt line: {out}"));
    stats.split(" = ").nth(1).unwrap().split('/').nth(1).unwrap().parse().unwrap()
}

#[test]
fn same_ip_tenants_each_reach_only_their_own_vm() {
    let _bed = Bed::up();
    let tmp = tempfile::tempdir().unwrap();
    let inv = merge_file("bed.yaml", common::INVENTORY, &Inventory::default()).unwrap().after;
    let mut pool = AddressPool::new(DEFAULT_POOL.parse().unwrap()).unwrap();
    pool.check_against(&inv).unwrap();
    let switch: Arc<dyn Switch> = Arc::new(OfctlSwitch::new(BRIDGE));
    let flows = TaskFlows::new(switch.clone());
    assert_eq!(flows.purge_orphans().unwrap(), 0);

    // Same IP 198.18.1.10 in both tenants, different open ports.
    let alpha_peers = listen("pst-a-web1", 8081);
    let beta_peers = listen("pst-b-web1", 8082);
    let pool_net = "net 100.64.0.0/10";
    let bystanders: Vec<Capture> = ["pst-a-web2", "pst-a-gw", "pst-b-web2", "pst-b-gw"]
        .iter()
        .map(|p| Capture::start(tmp.path(), p, pool_net))
        .collect();
    let target_capture = Capture::start(tmp.path(), "pst-a-web1", pool_net);

    // Two tasks, one per tenant, timed from nothing to ready.
    let t0 = Instant::now();
    let alpha = start(&flows, &mut pool, &inv, 1, "alpha");
    let setup_ms = t0.elapsed().as_secs_f64() * 1e3;
    let beta = start(&flows, &mut pool, &inv, 2, "beta");
    println!("{}", sh(&["ovs-ofctl", "-O", "OpenFlow14", "--names", "dump-flows", BRIDGE]));
    // A task space has no default route.
    let routes = sh(&["ip", "-n", alpha.space.name(), "route", "show"]);
    assert!(!routes.contains("default"), "{routes}");

    // Concurrent scans, one process, two namespaces: each finds its own tenant's port.
    let ports = [22, 8081, 8082];
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| scan(&alpha, &ports));
        let b = s.spawn(|| scan(&beta, &ports));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a, BTreeSet::from([8081]), "alpha's task sees alpha/web1 only");
    assert_eq!(b, BTreeSet::from([8082]), "beta's task sees beta/web1 only");
    // The VM saw the task's own pool address (off its subnet, so it answered via its gateway).
    // (The listener threads record accepted peers a moment after the scanner saw "open".)
    let recorded = |peers: &std::sync::Mutex<Vec<std::net::SocketAddr>>| {
        for _ in 0..100 {
            if !peers.lock().unwrap().is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    };
    assert!(recorded(&alpha_peers) && recorded(&beta_peers), "both listeners accepted a connection");
    let vport_a = alpha.space.addrs().vport.ip;
    assert!(alpha_peers.lock().unwrap().iter().all(|p| p.ip() == vport_a), "{alpha_peers:?}");

    // Nothing else is reachable: other VMs' real addresses, the other task's virtual address.
    let other = ScanSpec {
        target: Ipv4Addr::new(198, 18, 1, 20),
        tcp: vec![8081],
        udp: vec![],
        concurrency: 1,
        timeout: Duration::from_millis(300),
    };
    let r = scan_in(&alpha.space.netns_path(), other.clone()).unwrap();
    assert_eq!(r.ports[0].state, PortState::Unreachable);
    let r = scan_in(&alpha.space.netns_path(), ScanSpec { target: beta.space.addrs().vir.ip, ..other }).unwrap();
    assert_eq!(r.ports[0].state, PortState::Unreachable);

    // Added round-trip time: task space -> vir vs the gateway -> the VM directly.
    let via_vir = rtt_ms(alpha.space.name(), &alpha.space.addrs().vir.ip.to_string());
    let direct = rtt_ms("pst-a-gw", "198.18.1.10");
    println!("rtt: via virtual address {via_vir:.3} ms, direct {direct:.3} ms, added {:.3} ms", via_vir - direct);

    // UDP through the virtual address: beta/web1 echoes on 5353; the reply comes back as vir.
    let echo = palisade_scan::netns::run_in(&common::netns("pst-b-web1"), || {
        std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 5353))
    })
    .unwrap()
    .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(b"pong", from);
        }
    });
    let udp = ScanSpec {
        target: beta.space.addrs().vir.ip,
        tcp: vec![],
        udp: vec![5353, 5354],
        concurrency: 2,
        timeout: Duration::from_millis(500),
    };
    let r = scan_in(&beta.space.netns_path(), udp).unwrap();
    let states: Vec<(u16, PortState)> = r.ports.iter().map(|p| (p.port, p.state)).collect();
    assert_eq!(states, vec![(5353, PortState::Open), (5354, PortState::OpenFiltered)]);

    // Tearing alpha's task down leaves beta's working.
    let t1 = Instant::now();
    stop(&flows, &mut pool, alpha);
    let teardown_ms = t1.elapsed().as_secs_f64() * 1e3;
    assert_eq!(scan(&beta, &ports), BTreeSet::from([8082]));
    stop(&flows, &mut pool, beta);
    println!("task space setup {setup_ms:.1} ms + teardown {teardown_ms:.1} ms = {:.1} ms", setup_ms + teardown_ms);

    // Nobody but the target saw a packet from a task space.
    for cap in bystanders {
        let port = cap.port.clone();
        let packets = cap.stop(&["-e"]);
        assert!(packets.is_empty(), "{port} saw task traffic: {packets:?}");
    }
    let seen = target_capture.stop(&["-e"]);
    assert!(seen.iter().any(|l| l.contains(&format!("{vport_a}."))), "the capture works: {seen:?}");
    assert!(
        seen.iter().all(|l| l.contains("02:00:00:65:01:01")),
        "frames to the VM come from its gateway MAC: {seen:?}"
    );

    // Nothing remains: no task namespace, port or flow.
    assert_eq!(pool.in_use(), 0);
    assert!(!sh(&["ip", "netns", "list"]).contains("pst-t"));
    assert!(!sh(&["ovs-vsctl", "list-ports", BRIDGE]).contains("pst-t"));
    assert!(switch.installed().unwrap().flows.keys().all(|c| !c.is_task()));
}
