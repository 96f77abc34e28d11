//! Policy-file parsing and validation: every rejection names file, line and field (issue #2).

use palisade_model::{merge_file, Inventory, Kind};

const LAB: &str = include_str!("../../../examples/lab.yaml");
const REDIRECT: &str = include_str!("../../../examples/redirect.yaml");

fn lab() -> Inventory {
    merge_file("lab.yaml", LAB, &Inventory::default()).expect("lab.yaml is valid").after
}

/// Applies `text` over the lab and returns the single error's text.
fn one_error(text: &str) -> String {
    let errs = merge_file("bad.yaml", text, &lab()).expect_err("file should be rejected");
    assert_eq!(errs.len(), 1, "expected exactly one error, got {errs:?}");
    errs[0].to_string()
}

/// Applies `text` over `inv`; returns the single error, checking that it points at a line
/// holding `needle`.
fn located_error(text: &str, inv: &Inventory, needle: &str) -> String {
    let errs = merge_file("p.yaml", text, inv).expect_err("rejected");
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = errs[0].to_string();
    let line: usize = e.split(':').nth(1).unwrap().parse().unwrap();
    assert!(text.lines().nth(line - 1).unwrap().contains(needle), "{e} points at the wrong line");
    e
}

#[test]
fn examples_are_valid_and_overlap_across_tenants() {
    let inv = lab();
    assert_eq!(inv.vms().count(), 4);
    let merged = merge_file("redirect.yaml", REDIRECT, &inv).expect("redirect.yaml is valid");
    assert_eq!(merged.upserts.len(), 1);
    assert_eq!(merged.upserts[0].0.kind, Kind::Policy);
}

#[test]
fn unknown_field_names_line_and_field() {
    let text = "tenants:\n  - name: gamma\n    colour: red\n";
    let err = one_error(text);
    assert!(err.starts_with("bad.yaml:3: "), "{err}");
    assert!(err.contains("unknown field `colour`"), "{err}");
}

#[test]
fn malformed_mac_and_cidr() {
    let mac = "tenants:\n  - name: alpha\n    domains:\n      - name: prod\n        segment: 101\n        subdomains:\n          - name: web\n            cidr: 198.18.1.0/24\n            gateway: 198.18.1.1\n            vms:\n              - name: web9\n                mac: 02:00:zz:00:00:01\n                ip: 198.18.1.99\n";
    let err = one_error(mac);
    assert!(err.starts_with("bad.yaml:12: "), "{err}");
    assert!(err.contains("invalid MAC address"), "{err}");

    let cidr = "tenants:\n  - name: delta\n    domains:\n      - name: d\n        segment: 300\n        subdomains:\n          - name: s\n            cidr: 198.18.300.0/24\n            gateway: 198.18.3.1\n";
    let err = one_error(cidr);
    assert!(err.starts_with("bad.yaml:8: "), "{err}");
}

#[test]
fn ip_outside_subnet() {
    let text = "tenants:\n  - name: alpha\n    domains:\n      - name: prod\n        segment: 101\n        subdomains:\n          - name: web\n            cidr: 198.18.1.0/24\n            gateway: 198.18.1.1\n            vms:\n              - { name: web9, mac: \"02:00:00:00:09:09\", ip: 198.18.2.9 }\n";
    let err = one_error(text);
    assert_eq!(
        err,
        "bad.yaml:11: tenants[0].domains[0].subdomains[0].vms[0].ip: 198.18.2.9 is outside subdomain `web` (198.18.1.0/24)"
    );
}

#[test]
fn duplicate_ip_and_mac_inside_one_domain() {
    let ip = "tenants:\n  - name: alpha\n    domains:\n      - name: prod\n        segment: 101\n        subdomains:\n          - name: web\n            cidr: 198.18.1.0/24\n            gateway: 198.18.1.1\n            vms:\n              - { name: web9, mac: \"02:00:00:00:09:09\", ip: 198.18.1.10 }\n";
    let err = one_error(ip);
    assert!(err.starts_with("bad.yaml:11: "), "{err}");
    assert!(err.contains("198.18.1.10 is already used by vm alpha/web1"), "{err}");

    let mac = ip.replace("198.18.1.10", "198.18.1.99").replace("02:00:00:00:09:09", "02:00:00:65:01:0a");
    let err = one_error(&mac);
    assert!(err.contains("MAC 02:00:00:65:01:0a is already used by vm alpha/web1"), "{err}");
}

#[test]
fn same_ip_in_two_tenants_is_fine() {
    // beta/web1 already has alpha/web1's address in the lab; that is normal IaaS.
    let inv = lab();
    let a = inv.vm(&"alpha".parse().unwrap(), &"web1".parse().unwrap()).unwrap();
    let b = inv.vm(&"beta".parse().unwrap(), &"web1".parse().unwrap()).unwrap();
    assert_eq!(a.ip, b.ip);
}

#[test]
fn vlan_clash() {
    let text = "tenants:\n  - name: gamma\n    domains:\n      - name: prod\n        segment: 102\n";
    let err = one_error(text);
    assert_eq!(err, "bad.yaml:5: tenants[0].domains[0].segment: segment 102 is already used by domain beta/prod");
}

#[test]
fn unknown_references_in_policy() {
    let text = "policies:\n  - name: p\n    tenant: alpha\n    redirect:\n      destination: { vm: nosuch }\n      appliance: fw1\n      fail_mode: open\n";
    let err = one_error(text);
    assert_eq!(err, "bad.yaml:5: policies[0].redirect.destination.vm: unknown vm `nosuch` in tenant `alpha`");

    let text = "policies:\n  - name: p\n    tenant: alpha\n    redirect:\n      destination: { vm: web1 }\n      appliance: fw9\n      fail_mode: open\n";
    assert_eq!(one_error(text), "bad.yaml:6: policies[0].redirect.appliance: unknown appliance `fw9`");

    // An appliance of another tenant cannot be used.
    let text = "policies:\n  - name: p\n    tenant: beta\n    redirect:\n      destination: { vm: web1 }\n      appliance: fw1\n      fail_mode: open\n";
    assert!(one_error(text).contains("not attached to a domain of tenant `beta`"));

    let text = "policies:\n  - name: p\n    tenant: nobody\n    redirect:\n      destination: { vm: web1 }\n      appliance: fw1\n      fail_mode: open\n";
    assert!(one_error(text).starts_with("bad.yaml:3: policies[0].tenant: unknown tenant `nobody`"));
}

#[test]
fn bad_fail_mode_and_syntax() {
    let text = "policies:\n  - name: p\n    tenant: alpha\n    redirect:\n      destination: { vm: web1 }\n      appliance: fw1\n      fail_mode: maybe\n";
    let err = one_error(text);
    assert!(err.starts_with("bad.yaml:7: "), "{err}");
    assert!(err.contains("unknown variant `maybe`"), "{err}");

    let err = one_error("policies: [ {name: p\n");
    assert!(err.starts_with("bad.yaml:"), "{err}");
}

#[test]
fn every_problem_is_reported() {
    let text = "tenants:\n  - name: alpha\n    domains:\n      - name: prod\n        segment: 101\n        subdomains:\n          - name: web\n            cidr: 198.18.1.0/24\n            gateway: 198.18.1.1\n            vms:\n              - { name: web8, mac: \"02:00:00:00:08:08\", ip: 198.18.7.8 }\n              - { name: web9, mac: \"02:00:00:00:08:08\", ip: 198.18.1.9 }\n";
    let errs = merge_file("bad.yaml", text, &lab()).unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
}

/// Issue #3: a VM can be a QEMU guest; its spec is checked like everything else.
#[test]
fn guest_vms_are_parsed_and_checked() {
    const GUEST: &str = include_str!("../../../examples/guest.yaml");
    let merged = merge_file("guest.yaml", GUEST, &lab()).expect("guest.yaml is valid");
    let vm = merged.after.vms().find(|(k, _)| k.name.as_str() == "guest1").expect("guest1").1;
    let guest = vm.guest.as_ref().expect("guest1 is a guest");
    assert_eq!((guest.memory_mb, guest.vcpus), (512, 1));
    assert_eq!(merged.after.vms().count(), 5, "the other VMs are kept");

    let big = GUEST.replace("memory_mb: 512", "memory_mb: 99999");
    let err = one_error(&big);
    assert!(err.starts_with("bad.yaml:") && err.contains("guest.memory_mb") && err.contains("99999"), "{err}");
    let line: usize = err.split(':').nth(1).unwrap().parse().unwrap();
    assert_eq!(GUEST.lines().nth(line - 1).unwrap().trim(), "memory_mb: 512");

    let portless = GUEST.replace("                port: pa-guest1\n", "");
    assert!(one_error(&portless).contains("a guest needs a `port`"));
    let unknown = GUEST.replace("vcpus: 1", "vcpus: 1\n                  gpu: true");
    assert!(one_error(&unknown).contains("unknown field `gpu`"));
}

/// Issue #5: `monitor` policies name guest VMs, system calls and (subject, object) rules; every
/// mistake is located.
#[test]
fn monitor_policies_are_parsed_and_checked() {
    const GUEST: &str = include_str!("../../../examples/guest.yaml");
    const MONITOR: &str = include_str!("../../../examples/monitor.yaml");
    let with_guest = merge_file("guest.yaml", GUEST, &lab()).expect("guest.yaml is valid").after;
    let merged = merge_file("monitor.yaml", MONITOR, &with_guest).expect("monitor.yaml is valid");
    let policy = merged.after.policies().next().expect("one policy").1;
    let m = policy.monitor.as_ref().expect("a monitor policy");
    let nrs: Vec<u16> = m.syscalls.iter().map(|s| s.nr().unwrap()).collect();
    assert_eq!(nrs, [257, 0, 1, 3]);
    assert_eq!(m.rules[0].action, palisade_model::MonitorAction::Block);

    // Without the guest there is nothing to hook.
    let errs = merge_file("monitor.yaml", MONITOR, &lab()).expect_err("guest1 is missing");
    assert!(errs[0].to_string().contains("unknown vm `guest1`"), "{errs:?}");
    // A plain VM has no kernel Palisade can reach.
    let plain = MONITOR.replace("vm: guest1", "vm: web1");
    let err = merge_file("m.yaml", &plain, &with_guest).expect_err("web1 is not a guest");
    assert!(err[0].to_string().contains("vm `web1` is not a guest"), "{err:?}");

    let located = |text: &str, needle: &str| located_error(text, &with_guest, needle);
    let e = located(&MONITOR.replace("openat, read", "openat, frobnicate"), "syscalls");
    assert!(e.contains("unknown system call `frobnicate`"), "{e}");
    let e = located(&MONITOR.replace("subject: cat", "subject: a-very-long-process-name"), "subject");
    assert!(e.contains("1-15 bytes"), "{e}");
    let e = located(&MONITOR.replace("object: /etc/hosts", "object: etc/hosts"), "object");
    assert!(e.contains("absolute path"), "{e}");
    let e = located(&MONITOR.replace("action: block", "action: kill"), "action");
    assert!(e.contains("unknown variant `kill`"), "{e}");
}

/// Issue #7: `scan` policies name a target (VM, subdomain, domain or the whole tenant), ports,
/// a schedule and a concurrency; every mistake is located.
#[test]
fn scan_policies_are_parsed_and_checked() {
    const SCAN: &str = include_str!("../../../examples/scan.yaml");
    let merged = merge_file("scan.yaml", SCAN, &lab()).expect("scan.yaml is valid");
    let scans: Vec<_> = merged.after.policies().filter_map(|(k, p)| Some((k.to_string(), p.scan.clone()?))).collect();
    assert_eq!(scans.len(), 2, "{scans:?}");
    let alpha = &scans[0].1;
    assert_eq!(alpha.profile.tcp_ports().len(), 3 + 101);
    assert_eq!(alpha.schedule.as_ref().and_then(|s| s.every.as_deref()), Some("1h"));
    assert_eq!(scans[1].1.concurrency, 4, "the default");

    let located = |text: &str, needle: &str| located_error(text, &lab(), needle);
    let e = located(&SCAN.replace("vm: web1", "vm: web9"), "target");
    assert!(e.contains("unknown vm `web9`"), "{e}");
    let e = located(
        &SCAN.replace("\"8000-8100\"]\n      schedule: { every", "\"8100-8000\"]\n      schedule: { every"),
        "tcp",
    );
    assert!(e.contains("runs backwards"), "{e}");
    let e = located(&SCAN.replace("every: 1h", "every: 5s"), "every");
    assert!(e.contains("shorter than 60s"), "{e}");
    let e = located(&SCAN.replace("every: 1h", "every: 1h, cron: \"* * * * *\""), "schedule");
    assert!(e.contains("exactly one of `every` and `cron`"), "{e}");
    let e = located(&SCAN.replace("0 3 * * *", "0 25 * * *"), "cron");
    assert!(e.contains("hour: `25` is outside 0-23"), "{e}");
    let e = located(&SCAN.replace("concurrency: 2", "concurrency: 0"), "concurrency");
    assert!(e.contains("outside 1-64"), "{e}");
    let e = located(&SCAN.replacen("tcp: [22,", "scripts: [http-git]\n        tcp: [22,", 1), "profile");
    assert!(e.contains("are for `kind: vuln-scan`"), "{e}");
    let vuln = SCAN.replace("concurrency: 2", "concurrency: 2\n      kind: vuln-scan");
    let e = located(&vuln.replacen("tcp: [22,", "scripts: [http-git, \"all or x\"]\n        tcp: [22,", 1), "scripts");
    assert!(e.contains("`all or x` is not an nmap script name"), "{e}");
    let e = located(&SCAN.replace("concurrency: 2", "concurrency: 2\n      kind: deep-scan"), "kind");
    assert!(e.contains("unknown variant `deep-scan`"), "{e}");
    let e = located(&SCAN.replace("concurrency: 2", "concurrency: 2\n      speed: fast"), "speed");
    assert!(e.contains("unknown field `speed`"), "{e}");
}

/// Issue #6: `anomaly` policies name VMs with switch ports and a model by name.
#[test]
fn anomaly_policies_are_parsed_and_checked() {
    const ANOMALY: &str = include_str!("../../../examples/anomaly.yaml");
    let merged = merge_file("anomaly.yaml", ANOMALY, &lab()).expect("anomaly.yaml is valid");
    let (key, policy) = merged.after.policies().next().expect("one policy");
    assert_eq!(key.to_string(), "policy alpha/web-nad");
    let a = policy.anomaly.as_ref().expect("an anomaly policy");
    assert_eq!(a.model.as_str(), "lab");
    assert_eq!(a.threshold, None);

    let located = |text: &str, needle: &str| located_error(text, &lab(), needle);
    let e = located(&ANOMALY.replace("vm: web1", "vm: web9"), "target");
    assert!(e.contains("unknown vm `web9`"), "{e}");
    let e = located(&ANOMALY.replace("model: lab", "model: lab\n      threshold: 1.5"), "threshold");
    assert!(e.contains("not between 0 and 1"), "{e}");
    let e = located(&ANOMALY.replace("model: lab", "model: ../../etc"), "model");
    assert!(e.contains("../../etc"), "{e}");
    let e = located(&ANOMALY.replace("model: lab", "model: lab\n      window: 5"), "window");
    assert!(e.contains("unknown field `window`"), "{e}");
    let two = ANOMALY.replace("model: lab", "model: lab\n    scan: { profile: { tcp: [80] } }");
    let e = located(&two, "anomaly:");
    assert!(e.contains("split scan and anomaly"), "{e}");
    // A VM without a switch port has no traffic to capture.
    let portless = "tenants:\n  - name: alpha\n    domains:\n      - name: prod\n        segment: 101\n        subdomains:\n          - name: web\n            cidr: 198.18.1.0/24\n            gateway: 198.18.1.1\n            vms:\n              - { name: web3, mac: \"02:00:00:65:01:1e\", ip: 198.18.1.30 }\n";
    let e = located(&format!("{portless}{}", ANOMALY.replace("vm: web1", "vm: web3")), "target");
    assert!(e.contains("vm `web3` has no switch port"), "{e}");
}
