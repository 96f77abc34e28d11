//! A private Type 2 test bed: bridge `pst-br0` and `pst-` namespaces shaped like the lab
//! (two tenants, same subnet and IPs, VLAN 101/102, a gateway each). Nothing here touches the
//! lab's bridge or namespaces.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

pub const BRIDGE: &str = "pst-br0";

/// The inventory the test bed implements (ports are the root ends of the hosts' veths).
pub const INVENTORY: &str = r#"
tenants:
  - name: alpha
    domains:
      - name: prod
        segment: 101
        subdomains:
          - name: web
            cidr: 198.18.1.0/24
            gateway: 198.18.1.1
            gateway_mac: "02:00:00:65:01:01"
            gateway_port: pst-a-gw
            vms:
              - { name: web1, mac: "02:00:00:65:01:0a", ip: 198.18.1.10, port: pst-a-web1 }
              - { name: web2, mac: "02:00:00:65:01:14", ip: 198.18.1.20, port: pst-a-web2 }
  - name: beta
    domains:
      - name: prod
        segment: 102
        subdomains:
          - name: web
            cidr: 198.18.1.0/24
            gateway: 198.18.1.1
            gateway_mac: "02:00:00:66:01:01"
            gateway_port: pst-b-gw
            vms:
              - { name: web1, mac: "02:00:00:66:01:0a", ip: 198.18.1.10, port: pst-b-web1 }
              - { name: web2, mac: "02:00:00:66:01:14", ip: 198.18.1.20, port: pst-b-web2 }
"#;

/// (namespace = root port name, VLAN, MAC, IP, default gateway?)
pub const HOSTS: [(&str, u16, &str, &str, bool); 6] = [
    ("pst-a-web1", 101, "02:00:00:65:01:0a", "198.18.1.10", true),
    ("pst-a-web2", 101, "02:00:00:65:01:14", "198.18.1.20", true),
    ("pst-a-gw", 101, "02:00:00:65:01:01", "198.18.1.1", false),
    ("pst-b-web1", 102, "02:00:00:66:01:0a", "198.18.1.10", true),
    ("pst-b-web2", 102, "02:00:00:66:01:14", "198.18.1.20", true),
    ("pst-b-gw", 102, "02:00:00:66:01:01", "198.18.1.1", false),
];

pub use palisade_testkit::{is_root, sh};

fn quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// One host of a bed: namespace (= root port name), VLAN, MAC, IP, whether it has a default route.
pub type Host = (&'static str, u16, &'static str, &'static str, bool);

/// The test bed; dropping it removes everything it made.
pub struct Bed {
    hosts: Vec<Host>,
}

impl Bed {
    /// The two-tenant bed of `INVENTORY`.
    pub fn up() -> Bed {
        Bed::up_with(&HOSTS)
    }

    /// A bed with these hosts on `BRIDGE`.
    pub fn up_with(hosts: &[Host]) -> Bed {
        assert!(is_root(), "this test needs root and Open vSwitch (CI runs as root)");
        let bed = Bed { hosts: hosts.to_vec() };
        bed.down();
        let dp = if Path::new("/sys/module/openvswitch").exists() { "system" } else { "netdev" };
        sh(&[
            "ovs-vsctl",
            "add-br",
            BRIDGE,
            "--",
            "set",
            "bridge",
            BRIDGE,
            &format!("datapath_type={dp}"),
            "fail_mode=secure",
            "protocols=OpenFlow13,OpenFlow14,OpenFlow15",
        ]);
        sh(&["ovs-ofctl", "-O", "OpenFlow13", "add-flow", BRIDGE, "priority=0,actions=NORMAL"]);
        for &(name, vlan, mac, ip, routed) in hosts {
            sh(&["ip", "netns", "add", name]);
            sh(&["ip", "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", name]);
            sh(&["ip", "-n", name, "link", "set", "eth0", "address", mac]);
            sh(&["ip", "-n", name, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
            sh(&["ip", "-n", name, "link", "set", "lo", "up"]);
            sh(&["ip", "-n", name, "link", "set", "eth0", "up"]);
            sh(&["ip", "link", "set", name, "up"]);
            sh(&["ethtool", "-K", name, "tx", "off"]);
            sh(&["ip", "netns", "exec", name, "ethtool", "-K", "eth0", "tx", "off"]);
            if routed {
                sh(&["ip", "-n", name, "route", "add", "default", "via", "198.18.1.1", "dev", "eth0"]);
            }
            sh(&["ovs-vsctl", "add-port", BRIDGE, name, &format!("tag={vlan}")]);
        }
        bed
    }

    fn down(&self) {
        quiet(&["ovs-vsctl", "--if-exists", "del-br", BRIDGE]);
        for (name, ..) in &self.hosts {
            quiet(&["ip", "netns", "del", name]);
            quiet(&["ip", "link", "del", name]);
        }
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.down();
    }
}

pub fn netns(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// A TCP listener inside `ns` on `port` that accepts forever and records each peer.
pub fn listen(ns: &str, port: u16) -> Arc<Mutex<Vec<SocketAddr>>> {
    let listener = palisade_scan::netns::run_in(&netns(ns), move || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))
        .expect("enter netns")
        .expect("bind");
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            match conn {
                Ok(c) => seen.lock().unwrap().push(c.peer_addr().unwrap()),
                Err(_) => return,
            }
        }
    });
    peers
}
