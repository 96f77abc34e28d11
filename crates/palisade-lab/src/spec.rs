//! The lab description: which bridge, which hosts, and what each appliance runs.
//!
//! These types are plain data (serde in and out). [`crate::validate`] checks them before
//! anything on the machine is touched.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// A whole lab: one OVS bridge and the hosts plugged into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    /// OVS bridge name (also a Linux interface name, so at most 15 characters).
    pub bridge: String,
    /// Hosts, each a network namespace with one interface `eth0` on the bridge.
    pub hosts: Vec<HostSpec>,
    /// How OVS reads and writes the hosts' ports.
    #[serde(default)]
    pub port_type: PortType,
}

/// How Open vSwitch's userspace datapath attaches the hosts' veths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortType {
    /// A plain system port: an AF_PACKET socket serviced by the main thread.
    #[default]
    System,
    /// An AF_XDP socket (generic XDP on veths) polled by a PMD thread: lower latency, one core
    /// kept busy polling.
    Afxdp,
}

impl PortType {
    /// The Interface `type` OVS reports for it (a system port's is empty).
    pub fn ovs_type(self) -> &'static str {
        match self {
            PortType::System => "",
            PortType::Afxdp => "afxdp",
        }
    }
}

impl LabSpec {
    /// The host whose namespace is `netns`, if any.
    pub fn host(&self, netns: &str) -> Option<&HostSpec> {
        self.hosts.iter().find(|h| h.netns == netns)
    }
}

/// One lab "machine": a network namespace wired to an OVS access port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    /// Namespace name, e.g. `pal-alpha-web1`.
    pub netns: String,
    /// Host-side veth name, which is also the OVS port name (at most 15 characters).
    pub port: String,
    /// MAC address of `eth0` inside the namespace, e.g. `02:00:00:00:00:01`.
    pub mac: String,
    /// Address and prefix of `eth0` inside the namespace.
    pub addr: Ipv4Net,
    /// Default route inside the namespace, if any.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// OVS access-port VLAN tag (1..=4094).
    pub vlan: u16,
    /// What the host is for.
    pub role: HostRole,
}

/// What a lab host is for; decides its sysctls and whether it runs appliance functions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostRole {
    /// A tenant workload.
    Vm,
    /// A router with forwarding on and no upstream: nothing leaves the lab.
    Gateway,
    /// A security appliance that forwards traffic redirected to it.
    Appliance(ApplianceSpec),
}

impl HostRole {
    /// The appliance description, if this host is an appliance.
    pub fn appliance(&self) -> Option<&ApplianceSpec> {
        match self {
            HostRole::Appliance(a) => Some(a),
            HostRole::Vm | HostRole::Gateway => None,
        }
    }
}

/// What an appliance namespace runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplianceSpec {
    /// Functions the appliance performs.
    pub functions: Vec<ApplianceFunction>,
    /// The forwarding firewall; must stay at its default (accept, no rules) unless
    /// `functions` contains [`ApplianceFunction::Firewall`].
    #[serde(default)]
    pub firewall: FirewallSpec,
}

impl ApplianceSpec {
    /// Whether the appliance performs `f`.
    pub fn has(&self, f: ApplianceFunction) -> bool {
        self.functions.contains(&f)
    }
}

/// A function an appliance performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplianceFunction {
    /// Filter forwarded traffic with nftables.
    Firewall,
    /// Capture everything on `eth0` to a pcap file in the lab state directory.
    Tap,
}

/// A stateless forwarding firewall: rules in order, first match wins, then `default`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallSpec {
    /// Verdict for packets no rule matches.
    pub default: Verdict,
    /// Rules, evaluated in order.
    #[serde(default)]
    pub rules: Vec<FirewallRule>,
}

impl Default for FirewallSpec {
    /// Accept everything, no rules: what an appliance without the firewall function runs.
    fn default() -> Self {
        FirewallSpec { default: Verdict::Accept, rules: Vec::new() }
    }
}

/// One firewall rule; every field that is set must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallRule {
    /// Rule name, also the name its counter is reported under (charset `[a-z0-9_-]`).
    pub name: String,
    /// What happens to a matching packet.
    pub verdict: Verdict,
    /// Layer-4 protocol to match.
    #[serde(default)]
    pub protocol: Option<Proto>,
    /// Destination port to match (needs `protocol` tcp or udp).
    #[serde(default)]
    pub dst_port: Option<u16>,
    /// Source network to match.
    #[serde(default)]
    pub src: Option<Ipv4Net>,
    /// Destination network to match.
    #[serde(default)]
    pub dst: Option<Ipv4Net>,
}

/// A firewall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Let the packet through.
    Accept,
    /// Discard the packet silently.
    Drop,
}

impl Verdict {
    /// The nftables keyword for this verdict.
    pub fn nft_keyword(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
        }
    }
}

/// A layer-4 protocol a firewall rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (v4).
    Icmp,
}

impl Proto {
    /// The nftables keyword for this protocol.
    pub fn nft_keyword(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appliance_spec_round_trips_through_json_with_lowercase_names() {
        let json = r#"{
            "bridge": "pal0",
            "hosts": [{
                "netns": "pal-fw1", "port": "pa-fw1", "mac": "02:00:00:00:00:09",
                "addr": "198.18.0.9/24", "vlan": 10,
                "role": {"appliance": {
                    "functions": ["firewall", "tap"],
                    "firewall": {"default": "drop", "rules": [
                        {"name": "web", "verdict": "accept", "protocol": "tcp", "dst_port": 80}
                    ]}
                }}
            }]
        }"#;
        let spec: LabSpec = serde_json::from_str(json).expect("valid spec JSON");
        let host = &spec.hosts[0];
        assert_eq!(host.gateway, None);
        let app = host.role.appliance().expect("appliance role");
        assert!(app.has(ApplianceFunction::Tap));
        assert_eq!(app.firewall.default, Verdict::Drop);
        assert_eq!(app.firewall.rules[0].protocol, Some(Proto::Tcp));
        let back: LabSpec = serde_json::from_str(&serde_json::to_string(&spec).expect("serializes")).expect("parses");
        assert_eq!(back, spec);
    }

    #[test]
    fn vm_role_is_a_plain_lowercase_string() {
        let role: HostRole = serde_json::from_str(r#""gateway""#).expect("parses");
        assert_eq!(role, HostRole::Gateway);
        assert_eq!(serde_json::to_string(&HostRole::Vm).expect("serializes"), r#""vm""#);
    }
}
