//! Shared pieces of the root-only integration tests: a root check, unique names, a guard
//! that tears the lab down if a test panics, and checks on what is left on the machine.

#![allow(dead_code)]

use std::process::Command;

use palisade_lab::{HostRole, HostSpec, Lab, LabSpec};

/// Fails the test (never skips it) when not running as root.
pub fn require_root() {
    let out = Command::new("id").arg("-u").output().expect("run `id -u`");
    let uid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        uid, "0",
        "this integration test drives real namespaces and Open vSwitch and must run as root (uid is {uid}); \
         run `cargo test -p palisade-lab` as root, as CI does"
    );
}

/// A short tag unique to this test process, so parallel runs do not collide.
pub fn tag(prefix: &str) -> String {
    format!("{prefix}{:x}", std::process::id() % 0xfff)
}

/// A VM host spec.
pub fn vm(t: &str, n: u8, gateway: Option<&str>) -> HostSpec {
    HostSpec {
        netns: format!("{t}-vm{n}"),
        port: format!("{t}v{n}"),
        mac: format!("02:00:00:00:10:{n:02x}"),
        addr: format!("198.18.0.{n}/24").parse().expect("address"),
        gateway: gateway.map(|g| g.parse().expect("gateway")),
        vlan: 10,
        role: HostRole::Vm,
    }
}

pub use palisade_testkit::sh;

/// Installs the plain L2 flow the controller would otherwise provide.
pub fn add_normal_flow(bridge: &str) {
    sh(&["ovs-ofctl", "-O", "OpenFlow13", "add-flow", bridge, "priority=0,actions=NORMAL"]);
}

/// Pings `dst` once from `netns`; true if a reply came back.
pub fn ping(lab: &Lab, netns: &str, dst: &str) -> bool {
    let out = lab.exec(netns, &["busybox", "ping", "-c", "1", "-W", "2", dst]).expect("ping runs");
    out.status.success()
}

/// Tears the lab down when dropped, so a failing test does not leave it behind.
pub struct Guard<'a> {
    pub lab: &'a Lab,
    pub spec: LabSpec,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.lab.down(&self.spec, &mut |_| {});
        }
    }
}

/// Processes whose command line mentions `needle` (zombies have none, so they do not count).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Asserts nothing of the lab remains: namespaces, veths, bridge, tap processes.
pub fn assert_gone(lab: &Lab, spec: &LabSpec) {
    let netns = sh(&["ip", "netns", "list"]);
    let links = sh(&["ip", "-o", "link", "show"]);
    for h in &spec.hosts {
        assert!(
            !netns.lines().any(|l| l.split_whitespace().next() == Some(h.netns.as_str())),
            "namespace {} remains",
            h.netns
        );
        assert!(
            !links.contains(&format!(": {}@", h.port)) && !links.contains(&format!(": {}:", h.port)),
            "veth {} remains",
            h.port
        );
        let pcap = lab.tap_files(&h.netns).pcap.display().to_string();
        assert_eq!(processes_mentioning(&pcap), Vec::<u32>::new(), "tap process for {} remains", h.netns);
    }
    let br = Command::new("ovs-vsctl").args(["br-exists", &spec.bridge]).status().expect("ovs-vsctl");
    assert_eq!(br.code(), Some(2), "bridge {} remains", spec.bridge);
}
