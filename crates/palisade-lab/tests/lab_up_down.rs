//! Root-only: builds a real lab (OVS bridge, namespaces, veths, an appliance with a tap),
//! checks connectivity and idempotency, then tears it down and checks nothing is left.

mod common;

use common::{add_normal_flow, assert_gone, ping, require_root, sh, tag, vm, Guard};
use palisade_lab::{ApplianceFunction, ApplianceSpec, FirewallSpec, HostRole, HostSpec, Lab, LabSpec, Verdict};

fn spec(t: &str) -> LabSpec {
    let appliance = HostSpec {
        netns: format!("{t}-fw"),
        port: format!("{t}fw"),
        mac: "02:00:00:00:10:09".into(),
        addr: "198.18.0.9/24".parse().expect("address"),
        gateway: None,
        vlan: 10,
        role: HostRole::Appliance(ApplianceSpec {
            functions: vec![ApplianceFunction::Firewall, ApplianceFunction::Tap],
            firewall: FirewallSpec { default: Verdict::Accept, rules: vec![] },
        }),
    };
    LabSpec {
        bridge: format!("{t}br"),
        hosts: vec![vm(t, 1, None), vm(t, 2, None), appliance],
        port_type: palisade_lab::PortType::System,
    }
}

#[test]
fn lab_comes_up_is_idempotent_and_goes_away_completely() {
    require_root();
    let t = tag("plu");
    let spec = spec(&t);
    let dir = tempfile::tempdir().expect("state dir");
    let lab = Lab::new(dir.path().to_path_buf());
    let _guard = Guard { lab: &lab, spec: spec.clone() };

    let mut said = Vec::new();
    let first = lab.up(&spec, &mut |m| said.push(m.to_owned())).expect("first up");
    assert!(first.changed());
    assert!(said.iter().any(|m| *m == format!("creating namespace {t}-vm1")), "{said:#?}");
    add_normal_flow(&spec.bridge);

    let status = lab.status(&spec).expect("status");
    assert!(status.ok(), "{status:#?}");
    let json = serde_json::to_value(&status).expect("status serializes");
    assert_eq!(json["hosts"][2]["firewall_loaded"], true);

    assert!(ping(&lab, &format!("{t}-vm1"), "198.18.0.2"), "vm1 cannot ping vm2");
    assert!(ping(&lab, &format!("{t}-vm2"), "198.18.0.9"), "vm2 cannot ping the appliance");

    let tap_pid = status.hosts[2].tap_pid.expect("tap runs");
    let second = lab.up(&spec, &mut |_| {}).expect("second up");
    assert!(!second.changed(), "second up changed things: {second:#?}");
    let after = lab.status(&spec).expect("status");
    assert_eq!(after.hosts[2].tap_pid, Some(tap_pid), "a second tap was started");
    let flows = sh(&["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", &spec.bridge]);
    assert!(flows.contains("actions=NORMAL"), "up removed the controller's flow: {flows}");
    assert!(ping(&lab, &format!("{t}-vm2"), "198.18.0.1"), "traffic broke after the second up");

    let counters = lab.appliance_counters(&spec.hosts[2]).expect("counters");
    let names: Vec<&str> = counters.iter().map(|c| c.rule.as_str()).collect();
    assert_eq!(names, ["default", "forwarded"]);

    let ofport = sh(&["ovs-vsctl", "get", "interface", &spec.hosts[0].port, "ofport"]);
    lab.set_link(&spec.hosts[0], false).expect("link down");
    assert!(!lab.status(&spec).expect("status").hosts[0].link_up);
    let repaired = lab.up(&spec, &mut |_| {}).expect("up repairs the link");
    assert_eq!(repaired.hosts[0].changes, [format!("bringing up {t}-vm1:eth0")], "{repaired:#?}");
    assert_eq!(sh(&["ovs-vsctl", "get", "interface", &spec.hosts[0].port, "ofport"]), ofport);

    let mut removed = Vec::new();
    lab.down(&spec, &mut |m| removed.push(m.to_owned())).expect("down");
    assert!(removed.iter().any(|m| m.starts_with(&format!("stopping tap capture in {t}-fw"))), "{removed:#?}");
    assert_gone(&lab, &spec);
    assert!(lab.tap_files(&format!("{t}-fw")).pcap.exists(), "the capture file is kept");

    lab.down(&spec, &mut |_| {}).expect("down is idempotent");
    let status = lab.status(&spec).expect("status of a removed lab");
    assert!(!status.bridge_exists && status.hosts.iter().all(|h| !h.netns_exists));
}
