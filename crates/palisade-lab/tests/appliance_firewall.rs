//! Root-only: an appliance namespace forwards routed traffic through its nftables ruleset,
//! counts per rule, captures on its tap, survives a link flap, and picks up a changed spec.
//!
//! No redirect flows are needed: the VMs route off-subnet traffic via the appliance, whose
//! own default route points at vm2 (which does not forward, so nothing goes further).

mod common;

use std::time::{Duration, Instant};

use common::{add_normal_flow, ping, require_root, tag, vm, Guard};
use palisade_lab::{
    ApplianceFunction, ApplianceSpec, FirewallRule, FirewallSpec, HostRole, HostSpec, Lab, LabSpec, PortType, Proto,
    RuleCounter, Verdict,
};

const APPLIANCE_IP: &str = "198.18.0.9";
const NOWHERE: &str = "198.18.7.7";

fn firewall(default: Verdict) -> FirewallSpec {
    FirewallSpec {
        default,
        rules: vec![
            FirewallRule {
                name: "web".into(),
                verdict: Verdict::Accept,
                protocol: Some(Proto::Tcp),
                dst_port: Some(80),
                src: None,
                dst: None,
            },
            FirewallRule {
                name: "icmp-from-vm1".into(),
                verdict: Verdict::Accept,
                protocol: Some(Proto::Icmp),
                dst_port: None,
                src: Some("198.18.0.1/32".parse().expect("net")),
                dst: None,
            },
        ],
    }
}

fn lab_spec(t: &str, default: Verdict) -> LabSpec {
    let appliance = HostSpec {
        netns: format!("{t}-fw"),
        port: format!("{t}fw"),
        mac: "02:00:00:00:10:09".into(),
        addr: format!("{APPLIANCE_IP}/24").parse().expect("address"),
        gateway: Some("198.18.0.2".parse().expect("gateway")),
        vlan: 10,
        role: HostRole::Appliance(ApplianceSpec {
            functions: vec![ApplianceFunction::Firewall, ApplianceFunction::Tap],
            firewall: firewall(default),
        }),
    };
    LabSpec {
        bridge: format!("{t}br"),
        hosts: vec![vm(t, 1, Some(APPLIANCE_IP)), vm(t, 2, Some(APPLIANCE_IP)), appliance],
        port_type: PortType::System,
    }
}

fn packets(counters: &[RuleCounter]) -> Vec<(&str, u64)> {
    counters.iter().map(|c| (c.rule.as_str(), c.packets)).collect()
}

#[test]
fn appliance_filters_counts_and_captures_forwarded_traffic() {
    require_root();
    let t = tag("plf");
    let spec = lab_spec(&t, Verdict::Drop);
    let dir = tempfile::tempdir().expect("state dir");
    let lab = Lab::new(dir.path().to_path_buf());
    let guard = Guard { lab: &lab, spec: spec.clone() };
    lab.up(&spec, &mut |_| {}).expect("up");
    add_normal_flow(&spec.bridge);
    let fw = &spec.hosts[2];
    let (vm1, vm2) = (format!("{t}-vm1"), format!("{t}-vm2"));

    assert!(ping(&lab, &vm1, APPLIANCE_IP), "vm1 cannot reach the appliance");
    assert!(!ping(&lab, &vm1, NOWHERE), "nothing should answer for {NOWHERE}");
    assert!(!ping(&lab, &vm2, NOWHERE), "nothing should answer for {NOWHERE}");
    let counters = lab.appliance_counters(fw).expect("counters");
    assert_eq!(
        packets(&counters),
        [("web", 0), ("icmp-from-vm1", 1), ("default", 1), ("forwarded", 1)],
        "vm1's echo request is accepted and forwarded, vm2's is dropped by default"
    );
    assert_eq!(counters[1].bytes, 84, "one 56-byte-payload ICMP echo request");

    let pcap = lab.tap_files(&fw.netns).pcap;
    let start = Instant::now();
    while std::fs::metadata(&pcap).map(|m| m.len()).unwrap_or(0) <= 24 && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(std::fs::metadata(&pcap).expect("pcap exists").len() > 24, "the tap captured no packet");

    lab.set_link(fw, false).expect("appliance link down");
    assert!(!ping(&lab, &vm1, APPLIANCE_IP), "appliance answers with its link down");
    let st = lab.status(&spec).expect("status");
    assert!(!st.hosts[2].link_up && !st.ok());
    lab.set_link(fw, true).expect("appliance link up");
    assert!(ping(&lab, &vm1, APPLIANCE_IP), "appliance does not answer after its link came back");
    let st = lab.status(&spec).expect("status");
    assert!(!st.hosts[2].route_ok, "the kernel drops routes via a link that went down");
    assert!(st.hosts[2].tap_pid.is_some(), "the tap died with the link flap");
    let repaired = lab.up(&spec, &mut |_| {}).expect("up repairs the route");
    assert_eq!(repaired.hosts[2].changes, [format!("setting default route via 198.18.0.2 in {t}-fw")]);
    let st = lab.status(&spec).expect("status");
    assert!(st.ok(), "{st:#?}");

    let open = lab_spec(&t, Verdict::Accept);
    let report = lab.up(&open, &mut |_| {}).expect("up with a new default");
    let changes: Vec<&String> = report.hosts.iter().flat_map(|h| &h.changes).collect();
    assert_eq!(changes.len(), 1, "{report:#?}");
    assert!(changes[0].starts_with("loading nftables ruleset"), "{report:#?}");
    assert!(!ping(&lab, &vm2, NOWHERE));
    assert_eq!(
        packets(&lab.appliance_counters(fw).expect("counters")),
        [("web", 0), ("icmp-from-vm1", 0), ("default", 1), ("forwarded", 1)],
        "the reloaded ruleset starts from zero and now lets vm2's packet through"
    );

    drop(guard);
    lab.down(&open, &mut |_| {}).expect("down");
    common::assert_gone(&lab, &open);
}
