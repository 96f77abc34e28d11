//! Read-only inspection of a lab: what exists and whether it matches the spec.

use std::path::Path;

use serde::Serialize;

use crate::appliance;
use crate::error::LabError;
use crate::host::NS_IFACE;
use crate::nft;
use crate::parse;
use crate::spec::{ApplianceFunction, HostSpec, LabSpec};
use crate::sys::Sys;
use crate::validate::{format_mac, parse_mac};

/// The state of a whole lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabStatus {
    /// The bridge name.
    pub bridge: String,
    /// Whether OVS has the bridge.
    pub bridge_exists: bool,
    /// One entry per host, in spec order.
    pub hosts: Vec<HostStatus>,
}

impl LabStatus {
    /// Whether everything matches the spec.
    pub fn ok(&self) -> bool {
        self.bridge_exists && self.hosts.iter().all(HostStatus::ok)
    }
}

/// The state of one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostStatus {
    /// The namespace name.
    pub netns: String,
    /// The OVS port name.
    pub port: String,
    /// Whether the namespace exists.
    pub netns_exists: bool,
    /// Whether the port is on the lab bridge.
    pub port_on_bridge: bool,
    /// Whether the port carries the spec's VLAN tag.
    pub vlan_ok: bool,
    /// Whether `eth0` in the namespace is up with carrier (so the host side is up too).
    pub link_up: bool,
    /// Whether `eth0` has the spec's MAC.
    pub mac_ok: bool,
    /// Whether `eth0` has exactly the spec's IPv4 address.
    pub addr_ok: bool,
    /// Whether the default route is as the spec says (none, or via the gateway).
    pub route_ok: bool,
    /// For appliances: whether the spec's ruleset is loaded.
    pub firewall_loaded: Option<bool>,
    /// For appliances with a tap: the pid of the running capture, if it runs.
    pub tap_pid: Option<u32>,
    /// For appliances with a tap: whether it should run (so `tap_pid: None` is a fault).
    pub tap_expected: bool,
}

impl HostStatus {
    /// Whether this host matches its spec.
    pub fn ok(&self) -> bool {
        self.netns_exists
            && self.port_on_bridge
            && self.vlan_ok
            && self.link_up
            && self.mac_ok
            && self.addr_ok
            && self.route_ok
            && self.firewall_loaded != Some(false)
            && (!self.tap_expected || self.tap_pid.is_some())
    }

    fn absent(host: &HostSpec) -> Self {
        HostStatus {
            netns: host.netns.clone(),
            port: host.port.clone(),
            netns_exists: false,
            port_on_bridge: false,
            vlan_ok: false,
            link_up: false,
            mac_ok: false,
            addr_ok: false,
            route_ok: false,
            firewall_loaded: host.role.appliance().map(|_| false),
            tap_pid: None,
            tap_expected: host.role.appliance().is_some_and(|a| a.has(ApplianceFunction::Tap)),
        }
    }
}

/// Inspects the lab; `spec` must already be validated. Changes nothing (OVS is not started).
pub fn status(sys: Sys<'_>, state_dir: &Path, spec: &LabSpec) -> Result<LabStatus, LabError> {
    let bridge_exists = sys.bridge_exists(&spec.bridge)?;
    let ports = if bridge_exists { sys.bridge_ports(&spec.bridge)? } else { Vec::new() };
    let netns = sys.netns_list()?;
    let mut hosts = Vec::new();
    for host in &spec.hosts {
        let mut st = HostStatus::absent(host);
        st.port_on_bridge = ports.contains(&host.port);
        if st.port_on_bridge {
            st.vlan_ok = sys.ovs_get("port", &host.port, &["tag"])?[0] == [host.vlan.to_string()];
        }
        if st.tap_expected {
            st.tap_pid = appliance::running_tap(sys, state_dir, &host.netns)?;
        }
        if netns.contains(&host.netns) {
            st.netns_exists = true;
            inspect_netns(sys, host, &mut st)?;
        }
        hosts.push(st);
    }
    Ok(LabStatus { bridge: spec.bridge.clone(), bridge_exists, hosts })
}

fn inspect_netns(sys: Sys<'_>, host: &HostSpec, st: &mut HostStatus) -> Result<(), LabError> {
    let ns = host.netns.as_str();
    let links = sys.links(Some(ns))?;
    let Some(eth0) = links.iter().find(|l| l.ifname == NS_IFACE) else {
        return Ok(());
    };
    st.link_up = eth0.running();
    let mac = format_mac(parse_mac(ns, &host.mac)?);
    st.mac_ok = eth0.address.as_deref().map(str::to_ascii_lowercase) == Some(mac);
    st.addr_ok = parse::addrs_are(&sys.ipv4_addrs(ns, NS_IFACE)?, host.addr);
    let routes = sys.default_routes(ns)?;
    st.route_ok = match host.gateway {
        Some(gw) => routes.len() == 1 && routes[0].is_via(gw, NS_IFACE),
        None => routes.is_empty(),
    };
    if let Some(app) = host.role.appliance() {
        let fw = nft::effective_firewall(app);
        let listing = sys.run(&Sys::in_netns(Some(ns), &["nft", "list", "table", "inet", nft::TABLE]));
        let json = sys.nft_json(ns, &["list", "table", "inet", nft::TABLE]);
        st.firewall_loaded = Some(match (listing, json) {
            (Ok(listing), Ok(json)) => nft::loaded_matches(&fw, &listing, &json),
            // nft reports a missing table as a failure.
            _ => false,
        });
    }
    Ok(())
}
