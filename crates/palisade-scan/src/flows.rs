//! A task's OpenFlow rules: the paper's steps S1–S3 and R1–R3 (§3.1(b), Figure 4).
//!
//! ```text
//!  task space ──S1──▶ table 0: in_port=vport, to vir ─▶ dst := (vm.mac, vm.ip), src MAC := gateway,
//!  (vport)                                            push VLAN <segment>           ──S2──▶ table 20
//!                     table 20: VLAN <segment>, to vm.mac ─▶ pop VLAN, output vm port ──S3──▶ VM
//!  VM ──R1──▶ table 0: in_port=vm port, to gateway MAC, to the pool ─▶ push VLAN <segment> ─▶ table 20
//!             table 20: VLAN <segment>, vm.ip -> vport.ip ─▶ pop VLAN, src := (vir.mac, vir.ip),
//!                                                   dst MAC := vport.mac, output vport ──R2/R3──▶ task
//! ```
//! The VM sees the task's own pool address as the source, which is off its subnet, so it
//! answers through its normal path: to its gateway's MAC (R1). ARP for `vir` is answered by a
//! flow that turns the task's request into the reply in place. Everything else a task space
//! sends is dropped, and NORMAL switching never outputs to it (its port sits in a VLAN no tenant
//! uses). The VLAN tag is what tells two tenants' same-IP VMs apart in table 20.
//!
//! Per task (cookie kind `Task`): ARP reply, S1/S2, R2/R3, drop-the-rest. Per target VM, shared
//! by every task reaching it (cookie kind `TaskShared`, reference counted): R1 and S3.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use palisade_flows::{Cookie, Flow, Owner, OwnerKind, PortMap};
use palisade_model::inventory::Inventory;
use palisade_model::types::{MacAddr, Name};
use serde::Serialize;

use crate::pool::TaskAddrs;
use crate::task::TaskId;

/// The table of the VLAN-tagged half (S3 and R2/R3).
pub const TAGGED_TABLE: u8 = 20;
/// Priority of task flows in table 0 (above every desired-state flow).
pub const TASK_PRIORITY: u16 = 4100;
/// Priority of the drop that closes a task space.
pub const TASK_DROP_PRIORITY: u16 = 4000;
// Every task flow in table 0 outranks the standing drops of the pool's addresses.
const _: () = assert!(palisade_flows::compile::RESERVED_DROP_PRIORITY < TASK_DROP_PRIORITY);
/// Priority of task flows in the tagged table.
pub const TAGGED_PRIORITY: u16 = 100;

/// A VM as a task reaches it: everything S1–S3/R1–R3 need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Tenant.
    pub tenant: Name,
    /// VM name.
    pub vm: Name,
    /// The VM's real MAC.
    pub mac: MacAddr,
    /// The VM's real IP (other tenants may use the same).
    pub ip: Ipv4Addr,
    /// Its switch port.
    pub port: String,
    /// The VLAN segment of its domain.
    pub segment: u16,
    /// The MAC of its subdomain's gateway (the VM answers off-subnet sources to it).
    pub gateway_mac: MacAddr,
}

impl Target {
    /// `tenant/vm`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.tenant, self.vm)
    }
}

/// Why a target cannot be reached by a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// No such VM (or not visible).
    #[error("there is no vm {0}")]
    UnknownVm(String),
    /// The VM is not attached to a switch port.
    #[error("vm {0} has no switch port")]
    NoPort(String),
    /// The VM's subdomain names no gateway MAC, so its replies cannot be recognised.
    #[error("the subdomain of vm {0} has no gateway_mac, which Type 2 access needs to recognise replies")]
    NoGatewayMac(String),
    /// The inventory is inconsistent (a VM's subdomain or domain missing).
    #[error("vm {0} has no subdomain or domain")]
    Dangling(String),
    /// A port is not on the bridge (yet).
    #[error("port {0} is not on the bridge")]
    PortMissing(String),
}

impl Target {
    /// Looks `tenant/vm` up in the desired state.
    pub fn resolve(inv: &Inventory, tenant: &Name, vm: &Name) -> Result<Self, TargetError> {
        let key = format!("{tenant}/{vm}");
        let v = inv.vm(tenant, vm).ok_or_else(|| TargetError::UnknownVm(key.clone()))?;
        let port = v.port.as_ref().ok_or_else(|| TargetError::NoPort(key.clone()))?;
        let sub = inv.subdomain(tenant, &v.subdomain).ok_or_else(|| TargetError::Dangling(key.clone()))?;
        let dom = inv.domain(tenant, &sub.domain).ok_or_else(|| TargetError::Dangling(key.clone()))?;
        let gateway_mac = sub.gateway_mac.ok_or_else(|| TargetError::NoGatewayMac(key.clone()))?;
        Ok(Self {
            tenant: tenant.clone(),
            vm: vm.clone(),
            mac: v.mac,
            ip: v.ip,
            port: port.as_str().to_owned(),
            segment: dom.segment,
            gateway_mac,
        })
    }
}

/// The rules of one task: its own owner and the owner it shares with other tasks on its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskRules {
    /// Flows only this task uses.
    pub task: Owner,
    /// Flows shared by every task reaching the same target VM.
    pub shared: Owner,
}

/// The cookie of a task's own flows.
pub fn task_cookie(id: TaskId) -> Cookie {
    Cookie::new(OwnerKind::Task, &format!("task {id}"))
}

/// The cookie of the flows shared by the tasks reaching `target` (`tenant/vm`).
pub fn shared_cookie(target: &str) -> Cookie {
    Cookie::new(OwnerKind::TaskShared, &format!("target {target}"))
}

/// Compiles S1–S3/R1–R3 for task `id` (port `vport_port`) reaching `target`; `pool` is the
/// reserved range the task addresses come from.
pub fn compile_task(
    id: TaskId,
    addrs: &TaskAddrs,
    vport_port: &str,
    target: &Target,
    pool: Ipv4Net,
    ports: &PortMap,
) -> Result<TaskRules, TargetError> {
    let of = |name: &str| ports.get(name).copied().ok_or_else(|| TargetError::PortMissing(name.to_owned()));
    let (vport, vm_port) = (of(vport_port)?, of(&target.port)?);
    let (v, vir, t) = (addrs.vport, addrs.vir, target);
    let seg = t.segment;
    let tagged = TAGGED_TABLE;
    let flow = |priority, matches: String, actions: String| Flow { priority, matches, actions };

    let task_flows = vec![
        // ARP: the task asks who has vir; the switch turns the request into the reply.
        flow(
            TASK_PRIORITY,
            format!("in_port={vport},arp,arp_op=1,arp_tpa={}", vir.ip),
            format!(
                "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:{m}->eth_src,set_field:2->arp_op,\
                 move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],\
                 set_field:{m}->arp_sha,set_field:{ip}->arp_spa,IN_PORT",
                m = vir.mac,
                ip = vir.ip
            ),
        ),
        // S1 + S2: from the task to vir -> the real VM, tagged with its domain's VLAN.
        flow(
            TASK_PRIORITY,
            format!("in_port={vport},ip,dl_src={},dl_dst={},nw_src={},nw_dst={}", v.mac, vir.mac, v.ip, vir.ip),
            format!(
                "mod_dl_src:{},mod_dl_dst:{},mod_nw_dst:{},push_vlan:0x8100,mod_vlan_vid:{seg},resubmit(,{tagged})",
                t.gateway_mac, t.mac, t.ip
            ),
        ),
        // Nothing else leaves the task space.
        flow(TASK_DROP_PRIORITY, format!("in_port={vport}"), "drop".to_owned()),
        // R2 + R3: the tagged reply to the task's address -> back to the task, as vir.
        flow(
            TAGGED_PRIORITY,
            format!("table={tagged},dl_vlan={seg},ip,nw_src={},nw_dst={}", t.ip, v.ip),
            format!("pop_vlan,mod_dl_src:{},mod_nw_src:{},mod_dl_dst:{},output:{vport}", vir.mac, vir.ip, v.mac),
        ),
    ];
    let shared_flows = vec![
        // R1: the VM answers an off-subnet (pool) address through its gateway MAC; tag it.
        flow(
            TASK_PRIORITY,
            format!("in_port={vm_port},ip,dl_src={},dl_dst={},nw_src={},nw_dst={pool}", t.mac, t.gateway_mac, t.ip),
            format!("push_vlan:0x8100,mod_vlan_vid:{seg},resubmit(,{tagged})"),
        ),
        // S3: the VM's access port strips the tag and delivers.
        flow(
            TAGGED_PRIORITY,
            format!("table={tagged},dl_vlan={seg},ip,dl_dst={},nw_src={pool},nw_dst={}", t.mac, t.ip),
            format!("pop_vlan,output:{vm_port}"),
        ),
    ];
    let key = target.key();
    Ok(TaskRules {
        task: Owner {
            cookie: task_cookie(id),
            name: format!("task {id} -> {key}"),
            groups: Vec::new(),
            flows: task_flows,
        },
        shared: Owner {
            cookie: shared_cookie(&key),
            name: format!("target {key}"),
            groups: Vec::new(),
            flows: shared_flows,
        },
    })
}

#[cfg(test)]
#[path = "flows_tests.rs"]
mod tests;
