//! Up-front checks on a [`LabSpec`], so a bad spec is rejected before anything is changed.
//!
//! Names end up as command-line arguments of `ip`, `ovs-vsctl` and `nft`, so the charset is
//! strict: `[a-z0-9_-]`, starting with a letter or digit (never `-`, which would read as an
//! option).

use std::collections::HashSet;

use crate::error::SpecError;
use crate::spec::{ApplianceFunction, ApplianceSpec, FirewallSpec, HostSpec, LabSpec, Proto};

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;
/// Longest namespace name this crate accepts.
pub const MAX_NETNS: usize = 64;
/// Longest firewall rule name this crate accepts.
pub const MAX_RULE_NAME: usize = 32;

/// Interface names that `ip link` parses as keywords, or that the host itself relies on.
const RESERVED_IFNAMES: &[&str] = &["lo", "eth0", "all", "default", "dev", "name", "type", "vf", "help", "up", "down"];
/// Counter names the lab reserves for the default verdict and the forwarded total.
pub const RESERVED_RULE_NAMES: &[&str] = &["default", "forwarded"];

/// Checks the whole spec; returns the first problem found.
pub fn validate(spec: &LabSpec) -> Result<(), SpecError> {
    check_name("bridge", &spec.bridge, MAX_IFNAME)?;
    check_not_reserved("bridge", &spec.bridge)?;
    let mut netns = HashSet::new();
    let mut ifnames = HashSet::from([spec.bridge.as_str()]);
    let mut macs = HashSet::new();
    let mut addrs = HashSet::new();
    for host in &spec.hosts {
        check_host(host)?;
        if !netns.insert(host.netns.as_str()) {
            return Err(dup("namespace", &host.netns));
        }
        if !ifnames.insert(host.port.as_str()) {
            return Err(dup("port", &host.port));
        }
        if !macs.insert(parse_mac(&host.netns, &host.mac)?) {
            return Err(dup("MAC", &host.mac));
        }
        if !addrs.insert((host.vlan, host.addr.addr())) {
            return Err(dup("address", &format!("{} in VLAN {}", host.addr.addr(), host.vlan)));
        }
    }
    Ok(())
}

/// Checks a namespace name on its own (for [`crate::Lab::exec`]).
pub fn check_netns(name: &str) -> Result<(), SpecError> {
    check_name("namespace", name, MAX_NETNS)
}

fn dup(kind: &'static str, value: &str) -> SpecError {
    SpecError::Duplicate { kind, value: value.to_owned() }
}

fn check_host(host: &HostSpec) -> Result<(), SpecError> {
    check_netns(&host.netns)?;
    check_name("port", &host.port, MAX_IFNAME)?;
    check_not_reserved("port", &host.port)?;
    parse_mac(&host.netns, &host.mac)?;
    if !(1..=4094).contains(&host.vlan) {
        return Err(SpecError::BadVlan { netns: host.netns.clone(), vlan: host.vlan });
    }
    let bad = |reason: String| SpecError::BadAddress { netns: host.netns.clone(), reason };
    let net = host.addr;
    if net.prefix_len() == 0 {
        return Err(bad(format!("address {net} has a zero-length prefix")));
    }
    if net.prefix_len() <= 30 && (net.addr() == net.network() || net.addr() == net.broadcast()) {
        return Err(bad(format!("address {net} is the network or broadcast address")));
    }
    if let Some(gw) = host.gateway {
        if gw == net.addr() {
            return Err(bad(format!("gateway {gw} is the host's own address")));
        }
        if !net.contains(&gw) {
            return Err(bad(format!("gateway {gw} is outside {}", net.trunc())));
        }
    }
    if let Some(app) = host.role.appliance() {
        check_appliance(&host.netns, app)?;
    }
    Ok(())
}

fn check_appliance(netns: &str, app: &ApplianceSpec) -> Result<(), SpecError> {
    let bad = |reason: String| SpecError::BadAppliance { netns: netns.to_owned(), reason };
    if app.functions.is_empty() {
        return Err(bad("it has no functions".to_owned()));
    }
    let mut seen = HashSet::new();
    for f in &app.functions {
        if !seen.insert(*f) {
            return Err(bad(format!("function {f:?} is listed twice")));
        }
    }
    if !app.has(ApplianceFunction::Firewall) && app.firewall != FirewallSpec::default() {
        return Err(bad("it has firewall rules or a drop default but not the firewall function".to_owned()));
    }
    let mut names = HashSet::new();
    for rule in &app.firewall.rules {
        check_name("rule", &rule.name, MAX_RULE_NAME)?;
        if RESERVED_RULE_NAMES.contains(&rule.name.as_str()) {
            return Err(SpecError::BadName {
                kind: "rule",
                name: rule.name.clone(),
                reason: "it is reserved for the lab's own counters".to_owned(),
            });
        }
        if !names.insert(rule.name.as_str()) {
            return Err(dup("rule", &rule.name));
        }
        if let Some(port) = rule.dst_port {
            if !matches!(rule.protocol, Some(Proto::Tcp | Proto::Udp)) {
                return Err(bad(format!("rule {} has a dst_port but no tcp/udp protocol", rule.name)));
            }
            if port == 0 {
                return Err(bad(format!("rule {} has dst_port 0", rule.name)));
            }
        }
    }
    Ok(())
}

fn check_name(kind: &'static str, name: &str, max: usize) -> Result<(), SpecError> {
    let bad = |reason: String| SpecError::BadName { kind, name: name.to_owned(), reason };
    if name.is_empty() {
        return Err(bad("it is empty".to_owned()));
    }
    if name.len() > max {
        return Err(bad(format!("it is {} characters long; the limit is {max}", name.len())));
    }
    if let Some(c) = name.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '-')) {
        return Err(bad(format!("character {c:?} is outside [a-z0-9_-]")));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(bad("it must start with a letter or digit".to_owned()));
    }
    Ok(())
}

fn check_not_reserved(kind: &'static str, name: &str) -> Result<(), SpecError> {
    if RESERVED_IFNAMES.contains(&name) {
        return Err(SpecError::BadName {
            kind,
            name: name.to_owned(),
            reason: "it is an `ip link` keyword or an interface the host relies on".to_owned(),
        });
    }
    Ok(())
}

/// Parses `aa:bb:cc:dd:ee:ff` (either case) into bytes; rejects multicast and all-zero MACs.
pub fn parse_mac(netns: &str, mac: &str) -> Result<[u8; 6], SpecError> {
    let bad = |reason| SpecError::BadMac { netns: netns.to_owned(), mac: mac.to_owned(), reason };
    let mut out = [0u8; 6];
    let mut parts = mac.split(':');
    for byte in &mut out {
        let part = parts.next().ok_or_else(|| bad("it needs six colon-separated bytes"))?;
        let digits: Option<Vec<u32>> = part.chars().map(|c| c.to_digit(16)).collect();
        let Some(&[hi, lo]) = digits.as_deref() else {
            return Err(bad("each byte must be two hex digits"));
        };
        // hi and lo are hex digits (< 16), so the value is < 256 and the cast is exact.
        *byte = (hi * 16 + lo) as u8;
    }
    if parts.next().is_some() {
        return Err(bad("it needs six colon-separated bytes"));
    }
    if out[0] & 1 == 1 {
        return Err(bad("it is a multicast address"));
    }
    if out == [0; 6] {
        return Err(bad("it is all zeros"));
    }
    Ok(out)
}

/// Formats MAC bytes the way `ip` prints them (lowercase, colon-separated).
pub fn format_mac(mac: [u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{FirewallRule, HostRole, Verdict};

    fn vm(netns: &str, port: &str, mac: &str, addr: &str) -> HostSpec {
        HostSpec {
            netns: netns.into(),
            port: port.into(),
            mac: mac.into(),
            addr: addr.parse().expect("test address"),
            gateway: None,
            vlan: 10,
            role: HostRole::Vm,
        }
    }

    fn lab(hosts: Vec<HostSpec>) -> LabSpec {
        LabSpec { bridge: "pal0".into(), hosts, port_type: crate::PortType::System }
    }

    fn two_vms() -> LabSpec {
        lab(vec![
            vm("pal-a", "pa-a", "02:00:00:00:00:01", "198.18.0.1/24"),
            vm("pal-b", "pa-b", "02:00:00:00:00:02", "198.18.0.2/24"),
        ])
    }

    #[test]
    fn a_good_spec_passes() {
        assert_eq!(validate(&two_vms()), Ok(()));
    }

    #[test]
    fn port_names_over_fifteen_characters_are_rejected() {
        let mut spec = two_vms();
        spec.hosts[0].port = "pa-0123456789abc".into();
        let err = validate(&spec).expect_err("16-character port");
        assert!(matches!(err, SpecError::BadName { kind: "port", .. }), "{err:?}");
        assert!(err.to_string().contains("limit is 15"), "{err}");
    }

    #[test]
    fn names_with_uppercase_spaces_or_a_leading_dash_are_rejected() {
        for bad in ["Pal-a", "pal a", "-pal", "pal/a", ""] {
            let mut spec = two_vms();
            spec.hosts[0].netns = bad.into();
            assert!(matches!(validate(&spec), Err(SpecError::BadName { kind: "namespace", .. })), "{bad:?} accepted");
        }
    }

    #[test]
    fn reserved_interface_names_are_rejected() {
        let mut spec = two_vms();
        spec.hosts[1].port = "vf".into();
        assert!(matches!(validate(&spec), Err(SpecError::BadName { kind: "port", .. })));
        let mut spec = two_vms();
        spec.bridge = "eth0".into();
        assert!(matches!(validate(&spec), Err(SpecError::BadName { kind: "bridge", .. })));
    }

    #[test]
    fn duplicates_are_rejected() {
        let mut spec = two_vms();
        spec.hosts[1].port = "pa-a".into();
        assert_eq!(validate(&spec), Err(dup("port", "pa-a")));
        let mut spec = two_vms();
        spec.hosts[1].port = "pal0".into();
        assert_eq!(validate(&spec), Err(dup("port", "pal0")));
        let mut spec = two_vms();
        spec.hosts[1].mac = "02:00:00:00:00:01".into();
        assert_eq!(validate(&spec), Err(dup("MAC", "02:00:00:00:00:01")));
        let mut spec = two_vms();
        spec.hosts[1].addr = "198.18.0.1/24".parse().expect("addr");
        assert!(matches!(validate(&spec), Err(SpecError::Duplicate { kind: "address", .. })));
        spec.hosts[1].vlan = 11;
        assert_eq!(validate(&spec), Ok(()), "same address in another VLAN is fine");
    }

    #[test]
    fn macs_are_parsed_strictly() {
        assert_eq!(parse_mac("n", "02:AB:00:00:00:01"), Ok([2, 0xab, 0, 0, 0, 1]));
        for bad in ["02:00:00:00:00", "02:00:00:00:00:01:02", "02:00:00:00:00:1", "0g:00:00:00:00:01"] {
            assert!(parse_mac("n", bad).is_err(), "{bad} accepted");
        }
        assert!(parse_mac("n", "01:00:5e:00:00:01").is_err(), "multicast accepted");
        assert!(parse_mac("n", "00:00:00:00:00:00").is_err(), "zero accepted");
        assert_eq!(format_mac([2, 0xab, 0, 0, 0, 1]), "02:ab:00:00:00:01");
    }

    #[test]
    fn gateway_must_be_on_link_and_not_self() {
        let mut spec = two_vms();
        spec.hosts[0].gateway = Some("198.18.1.1".parse().expect("ip"));
        assert!(matches!(validate(&spec), Err(SpecError::BadAddress { .. })));
        spec.hosts[0].gateway = Some("198.18.0.1".parse().expect("ip"));
        assert!(matches!(validate(&spec), Err(SpecError::BadAddress { .. })));
        spec.hosts[0].gateway = Some("198.18.0.254".parse().expect("ip"));
        assert_eq!(validate(&spec), Ok(()));
        spec.hosts[0].addr = "198.18.0.0/24".parse().expect("addr");
        assert!(matches!(validate(&spec), Err(SpecError::BadAddress { .. })));
    }

    #[test]
    fn vlan_zero_is_rejected() {
        let mut spec = two_vms();
        spec.hosts[0].vlan = 0;
        assert!(matches!(validate(&spec), Err(SpecError::BadVlan { vlan: 0, .. })));
    }

    fn appliance(functions: Vec<ApplianceFunction>, firewall: FirewallSpec) -> HostRole {
        HostRole::Appliance(ApplianceSpec { functions, firewall })
    }

    fn rule(name: &str, protocol: Option<Proto>, dst_port: Option<u16>) -> FirewallRule {
        FirewallRule { name: name.into(), verdict: Verdict::Accept, protocol, dst_port, src: None, dst: None }
    }

    #[test]
    fn appliance_rules_are_checked() {
        let fw = |rules| FirewallSpec { default: Verdict::Drop, rules };
        let cases = [
            (vec![rule("web", None, Some(80))], "dst_port but no tcp/udp"),
            (vec![rule("web", Some(Proto::Icmp), Some(80))], "dst_port but no tcp/udp"),
            (vec![rule("web", Some(Proto::Tcp), Some(0))], "dst_port 0"),
            (vec![rule("default", None, None)], "reserved"),
            (vec![rule("a", None, None), rule("a", None, None)], "more than one"),
        ];
        for (rules, expected) in cases {
            let mut spec = two_vms();
            spec.hosts[0].role = appliance(vec![ApplianceFunction::Firewall], fw(rules));
            let err = validate(&spec).expect_err(expected);
            assert!(err.to_string().contains(expected), "{err} lacks {expected:?}");
        }
        let mut spec = two_vms();
        spec.hosts[0].role =
            appliance(vec![ApplianceFunction::Firewall], fw(vec![rule("web", Some(Proto::Tcp), Some(80))]));
        assert_eq!(validate(&spec), Ok(()));
    }

    #[test]
    fn firewall_rules_without_the_firewall_function_are_rejected() {
        let mut spec = two_vms();
        spec.hosts[0].role =
            appliance(vec![ApplianceFunction::Tap], FirewallSpec { default: Verdict::Drop, rules: vec![] });
        assert!(matches!(validate(&spec), Err(SpecError::BadAppliance { .. })));
        spec.hosts[0].role = appliance(vec![ApplianceFunction::Tap], FirewallSpec::default());
        assert_eq!(validate(&spec), Ok(()));
        spec.hosts[0].role = appliance(vec![], FirewallSpec::default());
        assert!(matches!(validate(&spec), Err(SpecError::BadAppliance { .. })));
    }
}
