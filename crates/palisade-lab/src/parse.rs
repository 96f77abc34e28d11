//! Pure parsers for what `ip -j`, `ethtool -k`, `sysctl -n` and `ovs-vsctl get` print.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use serde::Deserialize;

/// One interface from `ip -d -j link show`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Link {
    /// Interface index inside its namespace.
    pub ifindex: u32,
    /// Interface name.
    pub ifname: String,
    /// Flags such as `UP` and `LOWER_UP`.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Link-layer address.
    #[serde(default)]
    pub address: Option<String>,
    /// For a veth: the peer's ifindex (in the peer's namespace).
    #[serde(default)]
    pub link_index: Option<u32>,
    /// For a veth whose peer is in another namespace: that namespace's id as seen from here.
    #[serde(default)]
    pub link_netnsid: Option<i64>,
    /// Details (`-d`), including the link kind.
    #[serde(default)]
    pub linkinfo: Option<LinkDetails>,
}

/// The `linkinfo` object of `ip -d -j link show`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LinkDetails {
    /// Link kind, e.g. `veth`.
    #[serde(default)]
    pub info_kind: Option<String>,
}

impl Link {
    /// Whether the link is administratively up.
    pub fn admin_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }

    /// Whether the link is up and has carrier (for a veth: the peer is up too).
    pub fn running(&self) -> bool {
        self.admin_up() && self.flags.iter().any(|f| f == "LOWER_UP")
    }

    /// Whether the link is a veth.
    pub fn is_veth(&self) -> bool {
        self.linkinfo.as_ref().and_then(|i| i.info_kind.as_deref()) == Some("veth")
    }
}

/// Parses a JSON array printed by `ip -j`; `ip` prints nothing at all for some empty lists.
fn parse_array<T: for<'de> Deserialize<'de>>(text: &str) -> Result<Vec<T>, serde_json::Error> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text)
}

/// Parses `ip -d -j link show`.
pub fn links(text: &str) -> Result<Vec<Link>, serde_json::Error> {
    parse_array(text)
}

#[derive(Deserialize)]
struct Netns {
    name: String,
}

/// Parses `ip -j netns list` into namespace names.
pub fn netns_names(text: &str) -> Result<Vec<String>, serde_json::Error> {
    Ok(parse_array::<Netns>(text)?.into_iter().map(|n| n.name).collect())
}

#[derive(Deserialize)]
struct AddrIface {
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Deserialize)]
struct AddrInfo {
    family: String,
    local: IpAddr,
    prefixlen: u8,
    #[serde(default)]
    scope: String,
}

/// Parses `ip -j addr show dev X` into its global-scope IPv4 addresses, as (address,
/// prefix length) pairs.
pub fn ipv4_addrs(text: &str) -> Result<Vec<(Ipv4Addr, u8)>, serde_json::Error> {
    Ok(parse_array::<AddrIface>(text)?
        .into_iter()
        .flat_map(|i| i.addr_info)
        .filter(|a| a.family == "inet" && a.scope == "global")
        .filter_map(|a| match a.local {
            IpAddr::V4(v4) => Some((v4, a.prefixlen)),
            IpAddr::V6(_) => None,
        })
        .collect())
}

/// Whether `addrs` (from [`ipv4_addrs`]) is exactly `want`.
pub fn addrs_are(addrs: &[(Ipv4Addr, u8)], want: Ipv4Net) -> bool {
    addrs == [(want.addr(), want.prefix_len())]
}

/// One default route from `ip -j route show default`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Route {
    /// Next hop, if any.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Output device.
    #[serde(default)]
    pub dev: Option<String>,
}

impl Route {
    /// Whether this is exactly `default via gw dev eth0`.
    pub fn is_via(&self, gw: Ipv4Addr, dev: &str) -> bool {
        self.gateway.as_deref() == Some(gw.to_string().as_str()) && self.dev.as_deref() == Some(dev)
    }
}

/// Parses `ip -j route show default`.
pub fn routes(text: &str) -> Result<Vec<Route>, serde_json::Error> {
    parse_array(text)
}

/// Reads the `tx-checksumming:` line of `ethtool -k`: `Some(true)` when on.
pub fn tx_checksumming(text: &str) -> Option<bool> {
    let value = text.lines().find_map(|l| l.trim().strip_prefix("tx-checksumming:"))?;
    match value.split_whitespace().next()? {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

/// Parses an OVS set or scalar as `ovs-vsctl get` prints it: `[a, "b"]`, `[]`, `x`, `"x"`.
pub fn ovs_values(text: &str) -> Vec<String> {
    let t = text.trim();
    let inner = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(t);
    inner.split(',').map(|v| v.trim().trim_matches('"').to_owned()).filter(|v| !v.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_links_with_peer_in_another_namespace() {
        let text = r#"[{"ifindex":10,"link_index":2,"ifname":"pa-web1","flags":["BROADCAST","UP","LOWER_UP"],
            "address":"ae:00:68:a8:71:13","link_netnsid":3,"linkinfo":{"info_kind":"veth"}},
            {"ifindex":1,"ifname":"lo","flags":["LOOPBACK"],"address":"00:00:00:00:00:00"}]"#;
        let l = links(text).expect("parses");
        assert_eq!(l[0].link_index, Some(2));
        assert_eq!(l[0].link_netnsid, Some(3));
        assert!(l[0].is_veth() && l[0].running());
        assert!(!l[1].is_veth() && !l[1].admin_up());
        assert!(links("").expect("empty").is_empty());
        assert!(links("{not json").is_err());
    }

    #[test]
    fn netns_list_may_be_empty_output() {
        let names = netns_names(r#"[{"name":"ta","id":0},{"name":"tb"}]"#).expect("parses");
        assert_eq!(names, ["ta", "tb"]);
        assert!(netns_names("\n").expect("empty").is_empty());
    }

    #[test]
    fn only_global_ipv4_addresses_count() {
        let text = r#"[{"ifname":"eth0","addr_info":[
            {"family":"inet","local":"198.18.0.1","prefixlen":24,"scope":"global"},
            {"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"},
            {"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]}]"#;
        let got = ipv4_addrs(text).expect("parses");
        assert!(addrs_are(&got, "198.18.0.1/24".parse().expect("net")));
        assert!(!addrs_are(&got, "198.18.0.1/25".parse().expect("net")));
        assert!(!addrs_are(&[], "198.18.0.1/24".parse().expect("net")));
    }

    #[test]
    fn default_route_must_match_gateway_and_device() {
        let r = routes(r#"[{"dst":"default","gateway":"198.18.0.254","dev":"eth0","flags":[]}]"#).expect("parses");
        let gw: Ipv4Addr = "198.18.0.254".parse().expect("ip");
        assert!(r[0].is_via(gw, "eth0"));
        assert!(!r[0].is_via(gw, "eth1"));
        assert!(!r[0].is_via("198.18.0.253".parse().expect("ip"), "eth0"));
        assert!(routes("[]").expect("empty").is_empty());
    }

    #[test]
    fn ethtool_tx_checksumming_line() {
        let on = "Features for x:\nrx-checksumming: on [fixed]\ntx-checksumming: on\n\ttx-checksum-ipv4: off [fixed]\n";
        assert_eq!(tx_checksumming(on), Some(true));
        assert_eq!(tx_checksumming("tx-checksumming: off [fixed]\n"), Some(false));
        assert_eq!(tx_checksumming("nothing here"), None);
    }

    #[test]
    fn ovs_sets_and_scalars() {
        assert_eq!(ovs_values("[OpenFlow13, \"OpenFlow14\"]\n"), ["OpenFlow13", "OpenFlow14"]);
        assert!(ovs_values("[]\n").is_empty());
        assert_eq!(ovs_values("10\n"), ["10"]);
        assert_eq!(ovs_values("\"secure\""), ["secure"]);
    }
}
