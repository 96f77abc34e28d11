//! Compiler and planner against the lab inventory (issue #2, Type 1 redirection).

use palisade_flows::{compile, plan, AppliedRecord, Installed, PortMap};
use palisade_model::{merge_file, Inventory};

const LAB: &str = include_str!("../../../examples/lab.yaml");
const REDIRECT: &str = include_str!("../../../examples/redirect.yaml");

fn ports() -> PortMap {
    ["pa-web1", "pa-web2", "pb-web1", "pb-web2", "pa-fw1", "pg-alpha-web", "pg-beta-web"]
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), i as u32 + 1))
        .collect()
}

fn inventory(with_policy: bool) -> Inventory {
    let inv = merge_file("lab.yaml", LAB, &Inventory::default()).unwrap().after;
    if with_policy {
        merge_file("redirect.yaml", REDIRECT, &inv).unwrap().after
    } else {
        inv
    }
}

#[test]
fn redirect_rewrites_to_appliance_both_ways() {
    let program = compile(&inventory(true), &ports()).unwrap();
    assert!(program.pending.is_empty(), "{:?}", program.pending);
    let policy = program.owners.values().find(|o| o.name == "policy alpha/web1-to-web2-via-fw").unwrap();
    let texts: Vec<String> = policy.flows.iter().map(|f| f.to_ofctl(policy.cookie)).collect();
    let group =
        palisade_flows::compile::appliance_group(&"fw1".parse().unwrap(), palisade_model::types::FailMode::Closed);
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t.contains(&format!("in_port=1,ip,nw_src=198.18.1.10,nw_dst=198.18.1.20,actions=group:{group}"))),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains(&format!("in_port=2,ip,nw_src=198.18.1.20,nw_dst=198.18.1.10,actions=group:{group}"))),
        "{texts:?}"
    );
    let app = program.owners.values().find(|o| o.name == "appliance fw1").unwrap();
    assert!(app.groups.iter().any(|g| g.id == group && g.spec.contains("mod_dl_dst:02:00:00:65:01:fe,output:5")));
    assert!(app.flows[0].matches == "in_port=5" && app.flows[0].priority > policy.flows[0].priority);
}

#[test]
fn missing_ports_are_pending_not_fatal() {
    let mut p = ports();
    p.remove("pa-web2");
    let program = compile(&inventory(true), &p).unwrap();
    assert!(program.pending.iter().any(|m| m.contains("pa-web2")), "{:?}", program.pending);
}

#[test]
fn plan_is_idempotent_and_removes_stale_owners() {
    let with = compile(&inventory(true), &ports()).unwrap();
    let first = plan(&with, &[], &Installed::default());
    assert!(first.lines.iter().any(|l| l.starts_with("group add")));
    assert_eq!(first.changed.len(), with.owners.len());

    // Pretend the bundle landed: count what its lines add, per cookie and group.
    let mut installed = Installed::default();
    for line in &first.lines {
        if let Some(rest) = line.strip_prefix("flow add cookie=0x") {
            let cookie = u64::from_str_radix(rest.split(',').next().unwrap(), 16).unwrap();
            *installed.flows.entry(palisade_flows::Cookie(cookie)).or_default() += 1;
        } else if let Some(rest) = line.strip_prefix("group add group_id=") {
            installed.groups.insert(rest.split(',').next().unwrap().parse().unwrap());
        }
    }
    // The controller's model of the switch after a commit is exactly that (issue #2: changes
    // plan against it instead of dumping the switch each time).
    assert_eq!(Installed::of(&with), installed);
    let again = plan(&with, &first.applied_after, &installed);
    assert!(again.is_empty(), "{:?}", again.lines);

    // Remove the policy: only its flows go, with one delete.
    let without = compile(&inventory(false), &ports()).unwrap();
    let removal = plan(&without, &first.applied_after, &installed);
    assert_eq!(removal.lines.len(), 1, "{:?}", removal.lines);
    assert!(removal.lines[0].starts_with("flow delete cookie=0x5a1503"));
}

#[test]
fn drift_on_the_switch_is_repaired() {
    let with = compile(&inventory(true), &ports()).unwrap();
    let first = plan(&with, &[], &Installed::default());
    let applied: Vec<AppliedRecord> = first.applied_after.clone();
    // The switch lost everything (bridge flushed): all owners are reprogrammed with `group add`.
    let repaired = plan(&with, &applied, &Installed::default());
    assert_eq!(repaired.changed.len(), with.owners.len());
    assert!(!repaired.lines.iter().any(|l| l.starts_with("group modify")));
}

#[test]
fn reserved_ranges_are_dropped_both_ways_between_redirects_and_task_flows() {
    let mut program = compile(&inventory(true), &ports()).unwrap();
    let before = program.flow_count();
    program.guard_reserved(&[]).unwrap();
    assert_eq!(program.flow_count(), before, "no range, no owner");

    program.guard_reserved(&["100.64.0.0/10".parse().unwrap()]).unwrap();
    let guard = program.owners.values().find(|o| o.name == palisade_flows::compile::RESERVED_OWNER).unwrap();
    let rules: Vec<String> =
        guard.flows.iter().map(|f| format!("{} {} {}", f.priority, f.matches, f.actions)).collect();
    assert_eq!(rules, ["3900 ip,nw_src=100.64.0.0/10 drop", "3900 ip,nw_dst=100.64.0.0/10 drop"]);
    let highest_policy =
        program.owners.values().flat_map(|o| &o.flows).filter(|f| f.actions != "drop").map(|f| f.priority).max();
    assert!(highest_policy < Some(palisade_flows::compile::RESERVED_DROP_PRIORITY));
    assert!(program.guard_reserved(&["100.64.0.0/10".parse().unwrap()]).is_err(), "one guard owner");
}
