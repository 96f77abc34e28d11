//! S1–S3/R1–R3 against the lab inventory, and refcounting on the recording switch (issue #7).

use std::sync::Arc;

use palisade_model::{merge_file, Inventory};
use palisade_ovs::{RecordingSwitch, Switch};

use super::*;
use crate::manager::TaskFlows;
use crate::pool::{AddressPool, DEFAULT_POOL};

const LAB: &str = include_str!("../../../examples/lab.yaml");

fn inventory() -> Inventory {
    merge_file("lab.yaml", LAB, &Inventory::default()).unwrap().after
}

fn ports() -> PortMap {
    ["pa-web1", "pa-web2", "pb-web1", "pb-web2", "pst-00000001", "pst-00000002", "pst-00000003"]
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), i as u32 + 1))
        .collect()
}

fn target(tenant: &str, vm: &str) -> Target {
    Target::resolve(&inventory(), &tenant.parse().unwrap(), &vm.parse().unwrap()).unwrap()
}

fn rules(pool: &mut AddressPool, id: u32, tenant: &str) -> TaskRules {
    let addrs = pool.allocate().unwrap();
    let port = format!("pst-{id:08x}");
    compile_task(TaskId(id), &addrs, &port, &target(tenant, "web1"), pool.net(), &ports()).unwrap()
}

fn pool() -> AddressPool {
    AddressPool::new(DEFAULT_POOL.parse().unwrap()).unwrap()
}

#[test]
fn s1_to_r3_rewrite_both_ways_and_tag_with_the_targets_vlan() {
    let r = rules(&mut pool(), 1, "alpha");
    let text: Vec<String> = r.task.flows.iter().map(|f| f.to_ofctl(r.task.cookie)).collect();
    let shared: Vec<String> = r.shared.flows.iter().map(|f| f.to_ofctl(r.shared.cookie)).collect();
    // vport 100.64.0.2 on port 5; vir 100.64.0.3; alpha/web1 = 198.18.1.10 on port 1, VLAN 101.
    let c = r.task.cookie;
    assert_eq!(
        text,
        vec![
            format!(
                "cookie={c},priority=4100,in_port=5,arp,arp_op=1,arp_tpa=100.64.0.3,actions=\
                 move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:0e:5a:64:40:00:03->eth_src,set_field:2->arp_op,\
                 move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],\
                 set_field:0e:5a:64:40:00:03->arp_sha,set_field:100.64.0.3->arp_spa,IN_PORT"
            ),
            format!(
                "cookie={c},priority=4100,in_port=5,ip,dl_src=0e:5a:64:40:00:02,dl_dst=0e:5a:64:40:00:03,\
                 nw_src=100.64.0.2,nw_dst=100.64.0.3,actions=mod_dl_src:02:00:00:65:01:01,\
                 mod_dl_dst:02:00:00:65:01:0a,mod_nw_dst:198.18.1.10,push_vlan:0x8100,mod_vlan_vid:101,resubmit(,20)"
            ),
            format!("cookie={c},priority=4000,in_port=5,actions=drop"),
            format!(
                "cookie={c},priority=100,table=20,dl_vlan=101,ip,nw_src=198.18.1.10,nw_dst=100.64.0.2,actions=\
                 pop_vlan,mod_dl_src:0e:5a:64:40:00:03,mod_nw_src:100.64.0.3,mod_dl_dst:0e:5a:64:40:00:02,output:5"
            ),
        ]
    );
    let s = r.shared.cookie;
    assert_eq!(
        shared,
        vec![
            format!(
                "cookie={s},priority=4100,in_port=1,ip,dl_src=02:00:00:65:01:0a,dl_dst=02:00:00:65:01:01,\
                 nw_src=198.18.1.10,nw_dst=100.64.0.0/10,actions=push_vlan:0x8100,mod_vlan_vid:101,resubmit(,20)"
            ),
            format!(
                "cookie={s},priority=100,table=20,dl_vlan=101,ip,dl_dst=02:00:00:65:01:0a,nw_src=100.64.0.0/10,\
                 nw_dst=198.18.1.10,actions=pop_vlan,output:1"
            ),
        ]
    );
    assert!(r.task.cookie.is_task() && r.shared.cookie.is_task());
}

#[test]
fn same_ip_tenants_differ_by_port_vlan_and_mac() {
    let mut p = pool();
    let (a, b) = (rules(&mut p, 1, "alpha"), rules(&mut p, 2, "beta"));
    assert_ne!(a.shared.cookie, b.shared.cookie);
    let beta: Vec<String> = b.task.flows.iter().chain(&b.shared.flows).map(|f| f.to_ofctl(b.shared.cookie)).collect();
    let joined = beta.join("\n");
    assert!(joined.contains("mod_nw_dst:198.18.1.10,push_vlan:0x8100,mod_vlan_vid:102"), "{joined}");
    assert!(joined.contains("in_port=3,ip,dl_src=02:00:00:66:01:0a,dl_dst=02:00:00:66:01:01"), "{joined}");
    assert!(joined.contains("table=20,dl_vlan=102,ip,dl_dst=02:00:00:66:01:0a"), "{joined}");
    assert!(!joined.contains("dl_vlan=101") && !joined.contains("65:01"), "{joined}");
}

#[test]
fn unknown_targets_and_missing_ports_are_named() {
    let inv = inventory();
    let err = Target::resolve(&inv, &"alpha".parse().unwrap(), &"web9".parse().unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "there is no vm alpha/web9");
    let mut p = pool();
    let addrs = p.allocate().unwrap();
    let err = compile_task(TaskId(9), &addrs, "pst-00000009", &target("alpha", "web1"), p.net(), &ports());
    assert_eq!(err.unwrap_err(), TargetError::PortMissing("pst-00000009".to_owned()));
}

#[test]
fn shared_flows_are_refcounted_per_target() {
    let switch = Arc::new(RecordingSwitch::default());
    let tf = TaskFlows::new(switch.clone());
    let mut p = pool();
    let (a1, a2, b3) = (rules(&mut p, 1, "alpha"), rules(&mut p, 2, "alpha"), rules(&mut p, 3, "beta"));
    let shared_a = a1.shared.cookie;
    assert_eq!(a2.shared.cookie, shared_a);

    tf.setup(TaskId(1), &a1).unwrap();
    tf.setup(TaskId(2), &a2).unwrap();
    tf.setup(TaskId(3), &b3).unwrap();
    let bundles = switch.bundles();
    assert_eq!(bundles[0].len(), 6, "first task on alpha/web1: shared + own");
    assert_eq!(bundles[1].len(), 4, "second task on alpha/web1: own only");
    assert_eq!(bundles[2].len(), 6, "first task on beta/web1");
    assert_eq!(tf.users(shared_a), 2);
    let on = |c| switch.installed().unwrap().flows.get(&c).copied().unwrap_or(0);
    assert_eq!((on(shared_a), on(a1.task.cookie), on(a2.task.cookie)), (2, 4, 4));

    // Tearing down one task leaves the other's path whole.
    tf.teardown(TaskId(1)).unwrap();
    assert_eq!((on(shared_a), on(a1.task.cookie), on(a2.task.cookie)), (2, 0, 4));
    assert_eq!(switch.bundles().last().unwrap(), &vec![format!("flow delete cookie={}/-1", a1.task.cookie)]);
    // The last one takes the shared flows with it, in the same bundle.
    tf.teardown(TaskId(2)).unwrap();
    assert_eq!(
        switch.bundles().last().unwrap(),
        &vec![format!("flow delete cookie={}/-1", a2.task.cookie), format!("flow delete cookie={shared_a}/-1")]
    );
    assert_eq!((on(shared_a), on(a2.task.cookie), on(b3.shared.cookie)), (0, 0, 2));
    assert_eq!(tf.users(shared_a), 0);
    // Teardown is idempotent.
    tf.teardown(TaskId(2)).unwrap();
}

#[test]
fn a_rejected_bundle_changes_neither_switch_nor_counts() {
    let switch = Arc::new(RecordingSwitch::default());
    let tf = TaskFlows::new(switch.clone());
    let mut p = pool();
    let (a1, a2) = (rules(&mut p, 1, "alpha"), rules(&mut p, 2, "alpha"));
    switch.reject_next_commit();
    assert!(tf.setup(TaskId(1), &a1).is_err());
    assert_eq!(tf.users(a1.shared.cookie), 0);
    assert!(switch.installed().unwrap().flows.is_empty());
    // Still the first user: the next setup installs the shared flows.
    tf.setup(TaskId(1), &a1).unwrap();
    tf.setup(TaskId(2), &a2).unwrap();
    switch.reject_next_commit();
    assert!(tf.teardown(TaskId(2)).is_err());
    assert_eq!(tf.users(a1.shared.cookie), 2);
    tf.teardown(TaskId(1)).unwrap();
    assert_eq!(switch.installed().unwrap().flows.get(&a1.shared.cookie), Some(&2), "task 2 still uses them");
    assert!(matches!(tf.setup(TaskId(2), &a2), Err(crate::FlowError::Duplicate(TaskId(2)))));
}

#[test]
fn orphans_of_a_crashed_engine_are_purged_and_nothing_else() {
    let switch = Arc::new(RecordingSwitch::default());
    let mut p = pool();
    let a1 = rules(&mut p, 1, "alpha");
    TaskFlows::new(switch.clone()).setup(TaskId(1), &a1).unwrap();
    let policy = palisade_flows::Cookie::new(palisade_flows::OwnerKind::Redirect, "policy alpha/x");
    switch.commit(&[format!("flow add cookie={policy},priority=1100,ip,actions=drop")]).unwrap();
    // A new engine (the old one crashed) finds the task flows and removes them.
    let fresh = TaskFlows::new(switch.clone());
    assert_eq!(fresh.purge_orphans().unwrap(), 2);
    let left: Vec<_> = switch.installed().unwrap().flows.into_keys().collect();
    assert_eq!(left, vec![policy]);
}

#[test]
fn a_pool_overlapping_a_tenant_subnet_is_refused() {
    let inv = inventory();
    pool().check_against(&inv).unwrap();
    let bad = AddressPool::new("198.18.0.0/15".parse().unwrap()).unwrap();
    let err = bad.check_against(&inv).unwrap_err().to_string();
    assert!(err.starts_with("the task address pool 198.18.0.0/15 overlaps subdomain alpha/web"), "{err}");
    let inner = AddressPool::new("198.18.1.128/25".parse().unwrap()).unwrap();
    assert!(inner.check_against(&inv).is_err(), "a pool inside a subnet overlaps too");
}
