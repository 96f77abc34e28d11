//! Bringing the bridge and one host to the state its spec describes, touching only what
//! differs: a host that is already right sees read-only commands and nothing else.

use crate::error::LabError;
use crate::parse::{self, Link};
use crate::spec::{HostRole, HostSpec, PortType};
use crate::sys::Sys;
use crate::validate::{format_mac, parse_mac};

/// The interface name inside every lab namespace.
pub const NS_IFACE: &str = "eth0";
const PROTOCOLS: &str = "OpenFlow13,OpenFlow14,OpenFlow15";

/// Records what was changed, and tells the caller as it happens.
pub struct Changes<'p> {
    progress: &'p mut dyn FnMut(&str),
    /// What was done, in order.
    pub done: Vec<String>,
}

impl std::fmt::Debug for Changes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes").field("done", &self.done).finish_non_exhaustive()
    }
}

impl<'p> Changes<'p> {
    /// Starts an empty record that reports to `progress`.
    pub fn new(progress: &'p mut dyn FnMut(&str)) -> Self {
        Changes { progress, done: Vec::new() }
    }

    /// Reports and records one change.
    pub fn note(&mut self, msg: String) {
        (self.progress)(&msg);
        self.done.push(msg);
    }

    /// Reports something that is not a change.
    pub fn say(&mut self, msg: &str) {
        (self.progress)(msg);
    }

    /// Takes the recorded changes, leaving the record empty.
    pub fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.done)
    }
}

/// The OVS datapath this machine supports: the kernel one when its module is loaded.
pub fn datapath_type() -> &'static str {
    if std::path::Path::new("/sys/module/openvswitch").exists() {
        "system"
    } else {
        "netdev"
    }
}

/// Creates the bridge, or fixes its settings; never touches its flows.
pub fn converge_bridge(sys: Sys<'_>, bridge: &str, ch: &mut Changes<'_>) -> Result<(), LabError> {
    let dp = datapath_type();
    let settings = [format!("datapath_type={dp}"), "fail_mode=secure".to_owned(), format!("protocols={PROTOCOLS}")];
    let mut args = vec!["--", "set", "bridge", bridge];
    args.extend(settings.iter().map(String::as_str));
    if !sys.bridge_exists(bridge)? {
        ch.note(format!("creating bridge {bridge} (datapath {dp}, fail_mode secure)"));
        let mut create = vec!["--may-exist", "add-br", bridge];
        create.extend_from_slice(&args);
        sys.vsctl(&create)?;
        return Ok(());
    }
    let got = sys.ovs_get("bridge", bridge, &["datapath_type", "fail_mode", "protocols"])?;
    let want_protocols: Vec<String> = PROTOCOLS.split(',').map(str::to_owned).collect();
    if got[0] != [dp] || got[1] != ["secure"] || got[2] != want_protocols {
        ch.note(format!("resetting bridge {bridge} settings (was {got:?})"));
        sys.vsctl(&args[1..])?;
    }
    Ok(())
}

/// What the machine looked like before the hosts were converged; read once for all hosts.
#[derive(Debug)]
pub struct Snapshot {
    /// Existing namespace names.
    pub netns: Vec<String>,
    /// Links in the root namespace.
    pub root_links: Vec<Link>,
    /// Ports currently on the lab bridge.
    pub bridge_ports: Vec<String>,
}

fn find<'l>(links: &'l [Link], name: &str) -> Option<&'l Link> {
    links.iter().find(|l| l.ifname == name)
}

/// Whether `port` (root namespace) and `eth0` (host namespace) are the two ends of one veth.
fn paired(port: Option<&Link>, eth0: Option<&Link>) -> bool {
    match (port, eth0) {
        (Some(p), Some(e)) => {
            p.is_veth()
                && e.is_veth()
                && p.link_netnsid.is_some()
                && p.link_index == Some(e.ifindex)
                && e.link_index == Some(p.ifindex)
        }
        _ => false,
    }
}

/// The sysctls a host of this role needs inside its namespace, in the order they must be
/// written (`ip_forward` first: writing it resets other per-interface settings).
pub fn wanted_sysctls(role: &HostRole) -> Vec<(String, &'static str)> {
    let mut v = Vec::new();
    if !matches!(role, HostRole::Vm) {
        v.push(("net.ipv4.ip_forward".to_owned(), "1"));
    }
    for scope in ["all", "default", NS_IFACE] {
        v.push((format!("net.ipv6.conf.{scope}.disable_ipv6"), "1"));
    }
    if matches!(role, HostRole::Appliance(_)) {
        for scope in ["all", "default", NS_IFACE] {
            v.push((format!("net.ipv4.conf.{scope}.send_redirects"), "0"));
            v.push((format!("net.ipv4.conf.{scope}.rp_filter"), "0"));
        }
    }
    v
}

/// Brings one host's namespace, veth, addressing, sysctls and OVS port to its spec.
/// Appliance functions are handled by [`crate::appliance`].
pub fn converge_host(
    sys: Sys<'_>,
    bridge: &str,
    host: &HostSpec,
    snap: &Snapshot,
    ch: &mut Changes<'_>,
) -> Result<(), LabError> {
    let ns = host.netns.as_str();
    let port = host.port.as_str();
    if !snap.netns.iter().any(|n| n == ns) {
        ch.note(format!("creating namespace {ns}"));
        sys.run(&["ip", "netns", "add", ns])?;
    }

    let mut ns_links = sys.links(Some(ns))?;
    let mut port_link = find(&snap.root_links, port).cloned();
    let mut on_bridge = snap.bridge_ports.iter().any(|p| p == port);
    if !paired(port_link.as_ref(), find(&ns_links, NS_IFACE)) {
        if let Some(p) = &port_link {
            if !p.is_veth() {
                return Err(LabError::Conflict {
                    object: format!("interface {port}"),
                    reason: "it exists in the root namespace and is not a veth".to_owned(),
                });
            }
        }
        if on_bridge {
            ch.note(format!("removing stale port {port} from bridge {bridge}"));
            sys.ovs().del_port(bridge, port)?;
            on_bridge = false;
        }
        if port_link.is_some() {
            ch.note(format!("deleting veth {port}: its peer is not {NS_IFACE} in {ns}"));
            sys.run(&["ip", "link", "del", "dev", port])?;
        }
        if find(&sys.links(Some(ns))?, NS_IFACE).is_some() {
            ch.note(format!("deleting unpaired {NS_IFACE} in {ns}"));
            sys.run(&["ip", "-n", ns, "link", "del", "dev", NS_IFACE])?;
        }
        ch.note(format!("creating veth {port} <-> {ns}:{NS_IFACE}"));
        sys.run(&["ip", "link", "add", "name", port, "type", "veth", "peer", "name", NS_IFACE, "netns", ns])?;
        ns_links = sys.links(Some(ns))?;
        port_link = find(&sys.links(None)?, port).cloned();
    }
    let missing = |what: &str| LabError::UnexpectedOutput {
        command: format!("ip -d -j link show ({what})"),
        detail: format!("{what} is missing right after it was created"),
    };
    let eth0 = find(&ns_links, NS_IFACE).cloned().ok_or_else(|| missing(NS_IFACE))?;
    let port_link = port_link.ok_or_else(|| missing(port))?;

    // A validated spec's MAC always parses; the error path only guards direct callers.
    let mac = format_mac(parse_mac(ns, &host.mac)?);
    if eth0.address.as_deref().map(str::to_ascii_lowercase) != Some(mac.clone()) {
        ch.note(format!("setting MAC {mac} on {ns}:{NS_IFACE}"));
        sys.run(&["ip", "-n", ns, "link", "set", "dev", NS_IFACE, "address", &mac])?;
    }

    converge_sysctls(sys, host, ch)?;

    if !find(&ns_links, "lo").is_some_and(Link::admin_up) {
        ch.note(format!("bringing up lo in {ns}"));
        sys.run(&["ip", "-n", ns, "link", "set", "dev", "lo", "up"])?;
    }
    if !eth0.admin_up() {
        ch.note(format!("bringing up {ns}:{NS_IFACE}"));
        sys.run(&["ip", "-n", ns, "link", "set", "dev", NS_IFACE, "up"])?;
    }
    if !port_link.admin_up() {
        ch.note(format!("bringing up {port}"));
        sys.run(&["ip", "link", "set", "dev", port, "up"])?;
    }
    for (netns, dev) in [(None, port), (Some(ns), NS_IFACE)] {
        if sys.tx_checksumming(netns, dev)? {
            let name = netns.map_or(dev.to_owned(), |n| format!("{n}:{dev}"));
            ch.note(format!("turning off TX checksum offload on {name}"));
            sys.run(&Sys::in_netns(netns, &["ethtool", "-K", dev, "tx", "off"]))?;
        }
    }

    let addr = host.addr.to_string();
    if !parse::addrs_are(&sys.ipv4_addrs(ns, NS_IFACE)?, host.addr) {
        ch.note(format!("setting address {addr} on {ns}:{NS_IFACE}"));
        sys.run(&["ip", "-n", ns, "addr", "flush", "dev", NS_IFACE, "scope", "global"])?;
        sys.run(&["ip", "-n", ns, "addr", "add", &addr, "dev", NS_IFACE])?;
    }
    let routes = sys.default_routes(ns)?;
    match host.gateway {
        Some(gw) if !(routes.len() == 1 && routes[0].is_via(gw, NS_IFACE)) => {
            ch.note(format!("setting default route via {gw} in {ns}"));
            let gw = gw.to_string();
            sys.run(&["ip", "-n", ns, "route", "replace", "default", "via", &gw, "dev", NS_IFACE])?;
        }
        None if !routes.is_empty() => {
            ch.note(format!("removing default route in {ns}"));
            for _ in &routes {
                sys.run(&["ip", "-n", ns, "route", "del", "default"])?;
            }
        }
        _ => {}
    }

    let vlan = host.vlan;
    if !on_bridge {
        ch.note(format!("adding port {port} to bridge {bridge} in VLAN {vlan}"));
        sys.ovs().add_access_port(bridge, port, vlan)?;
    } else if sys.ovs_get("port", port, &["tag"])?[0] != [vlan.to_string()] {
        ch.note(format!("setting VLAN {vlan} on port {port}"));
        sys.ovs().set_vlan(port, vlan)?;
    }
    Ok(())
}

/// Brings a host port's OVS interface type to `want` (AF_XDP ports read in generic XDP mode,
/// the one veths support here).
pub fn converge_port_type(sys: Sys<'_>, port: &str, want: PortType, ch: &mut Changes<'_>) -> Result<(), LabError> {
    let got = sys.ovs_get("interface", port, &["type"])?;
    let got = got[0].first().map(String::as_str).unwrap_or("");
    let got = if got == "system" { "" } else { got };
    if got == want.ovs_type() {
        return Ok(());
    }
    ch.note(format!("making {port} a {want:?} port"));
    let ty = format!("type={}", if want == PortType::System { "system" } else { want.ovs_type() });
    match want {
        PortType::Afxdp => sys.vsctl(&["set", "interface", port, &ty, "options:xdp-mode=generic"])?,
        PortType::System => {
            sys.vsctl(&["set", "interface", port, &ty, "--", "remove", "interface", port, "options", "xdp-mode"])?
        }
    };
    Ok(())
}

fn converge_sysctls(sys: Sys<'_>, host: &HostSpec, ch: &mut Changes<'_>) -> Result<(), LabError> {
    let ns = host.netns.as_str();
    let wanted = wanted_sysctls(&host.role);
    let keys: Vec<&str> = wanted.iter().map(|(k, _)| k.as_str()).collect();
    let current = sys.sysctls(ns, &keys)?;
    let differs: Vec<usize> = (0..wanted.len()).filter(|&i| current[i] != wanted[i].1).collect();
    if differs.is_empty() {
        return Ok(());
    }
    // Writing ip_forward resets per-interface settings, so if it changes, write them all.
    let to_write: Vec<usize> = if differs.iter().any(|&i| wanted[i].0 == "net.ipv4.ip_forward") {
        (0..wanted.len()).collect()
    } else {
        differs
    };
    let assignments: Vec<String> = to_write.iter().map(|&i| format!("{}={}", wanted[i].0, wanted[i].1)).collect();
    ch.note(format!("setting {} in {ns}", assignments.join(" ")));
    let mut cmd = Sys::in_netns(Some(ns), &["sysctl", "-q", "-w"]);
    cmd.extend(assignments.iter().map(String::as_str));
    sys.run(&cmd)?;
    let after = sys.sysctls(ns, &keys)?;
    if let Some(i) = (0..wanted.len()).find(|&i| after[i] != wanted[i].1) {
        return Err(LabError::UnexpectedOutput {
            command: format!("ip netns exec {ns} sysctl -n {}", wanted[i].0),
            detail: format!("it reads {} right after being set to {}", after[i], wanted[i].1),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ApplianceFunction, ApplianceSpec, FirewallSpec};

    #[test]
    fn vms_only_disable_ipv6() {
        let keys: Vec<String> = wanted_sysctls(&HostRole::Vm).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), 3);
        assert!(keys.iter().all(|k| k.contains("disable_ipv6")));
    }

    #[test]
    fn appliances_forward_without_redirects_or_rp_filter_and_ip_forward_comes_first() {
        let role = HostRole::Appliance(ApplianceSpec {
            functions: vec![ApplianceFunction::Firewall],
            firewall: FirewallSpec::default(),
        });
        let wanted = wanted_sysctls(&role);
        assert_eq!(wanted[0], ("net.ipv4.ip_forward".to_owned(), "1"));
        for key in
            ["net.ipv4.conf.eth0.send_redirects", "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.send_redirects"]
        {
            assert!(wanted.iter().any(|(k, v)| k == key && *v == "0"), "{key} missing");
        }
        assert!(wanted_sysctls(&HostRole::Gateway).iter().any(|(k, v)| k == "net.ipv4.ip_forward" && *v == "1"));
    }

    fn link(json: &str) -> Link {
        serde_json::from_str(json).expect("link JSON")
    }

    #[test]
    fn veth_ends_must_point_at_each_other() {
        let port =
            link(r#"{"ifindex":10,"ifname":"pa-a","link_index":2,"link_netnsid":3,"linkinfo":{"info_kind":"veth"}}"#);
        let eth0 =
            link(r#"{"ifindex":2,"ifname":"eth0","link_index":10,"link_netnsid":0,"linkinfo":{"info_kind":"veth"}}"#);
        let other =
            link(r#"{"ifindex":2,"ifname":"eth0","link_index":11,"link_netnsid":0,"linkinfo":{"info_kind":"veth"}}"#);
        assert!(paired(Some(&port), Some(&eth0)));
        assert!(!paired(Some(&port), Some(&other)));
        assert!(!paired(Some(&port), None));
        assert!(!paired(None, Some(&eth0)));
    }
}
