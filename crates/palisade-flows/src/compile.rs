//! Desired state -> OpenFlow rules (paper §3.1, Figure 3).
//!
//! One table. Priorities, high to low:
//! ```text
//! 3000  in_port=<appliance>            -> NORMAL         traffic leaving an appliance is switched normally
//! 1001-2000 redirect (1000 + priority) -> group:<ff>     rewrite dl_dst to the appliance, output to it
//!    0  any                            -> NORMAL         everything else
//! ```
//! Each appliance owns two fast-failover groups. Both send to the appliance while its port is
//! live; when the port goes down, the `open` group falls back to NORMAL (bypass) and the
//! `closed` group has no live bucket (drop). Failover thus happens in the datapath, without
//! waiting for the controller.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet_lite::Net;
use palisade_model::document::RedirectSpec;
use palisade_model::inventory::{Appliance, Inventory, ObjectKey, Vm};
use palisade_model::types::{Direction, FailMode, Name, Protocol};
use palisade_model::validate::resolve_endpoint;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cookie::{group_id, Cookie, OwnerKind};

/// Switch port name -> OpenFlow port number, as the bridge reports it.
pub type PortMap = BTreeMap<String, u32>;

/// Priority of the flow returning appliance output to normal switching.
pub const APPLIANCE_RETURN_PRIORITY: u16 = 3000;
/// Redirect flows sit at this base plus the policy's priority.
pub const REDIRECT_BASE_PRIORITY: u16 = 1000;
/// Priority of the drops that keep reserved ranges (the scan task pool) off the switch: above
/// every redirect and appliance flow, below the scan tasks' own flows (4000 and up), so only a
/// live task space ever sends or receives such an address.
pub const RESERVED_DROP_PRIORITY: u16 = 3900;
/// Name of the owner of those drops.
pub const RESERVED_OWNER: &str = "reserved ranges";

/// One flow, without its cookie.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Flow {
    /// OpenFlow priority.
    pub priority: u16,
    /// Match fields in ovs-ofctl syntax (may be empty: match all).
    pub matches: String,
    /// Actions in ovs-ofctl syntax.
    pub actions: String,
}

impl Flow {
    /// The flow in `ovs-ofctl` syntax, with its owner's cookie.
    pub fn to_ofctl(&self, cookie: Cookie) -> String {
        let sep = if self.matches.is_empty() { "" } else { "," };
        format!("cookie={cookie},priority={}{sep}{},actions={}", self.priority, self.matches, self.actions)
    }
}

/// One OpenFlow group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Group {
    /// Group id.
    pub id: u32,
    /// Type and buckets in ovs-ofctl syntax (after `group_id=N,`).
    pub spec: String,
}

impl Group {
    /// The group in `ovs-ofctl` syntax.
    pub fn to_ofctl(&self) -> String {
        format!("group_id={},{}", self.id, self.spec)
    }
}

/// Everything one owner (base, appliance or policy) puts on the switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// Its cookie.
    pub cookie: Cookie,
    /// Human name (`policy alpha/web-via-fw`).
    pub name: String,
    /// Groups it owns.
    pub groups: Vec<Group>,
    /// Flows it owns.
    pub flows: Vec<Flow>,
}

impl Owner {
    fn new(kind: OwnerKind, name: String) -> Self {
        Self { cookie: Cookie::new(kind, &name), name, groups: Vec::new(), flows: Vec::new() }
    }

    /// A digest of everything the owner installs; equal digests mean identical rules.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for g in &self.groups {
            h.update(g.to_ofctl().as_bytes());
            h.update(b"\n");
        }
        for f in &self.flows {
            h.update(f.to_ofctl(self.cookie).as_bytes());
            h.update(b"\n");
        }
        h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

/// The compiled rules for the whole desired state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Program {
    /// Owners by cookie.
    pub owners: BTreeMap<Cookie, Owner>,
    /// Rules that could not be compiled yet, and why (a port not on the bridge).
    pub pending: Vec<String>,
}

impl Program {
    /// Adds an owner that drops every IPv4 packet from or to `nets` at
    /// [`RESERVED_DROP_PRIORITY`]: a VM's late packets to a scan task's address, after the
    /// task's flows are gone, go nowhere instead of following its default route. No owner is
    /// added when `nets` is empty.
    pub fn guard_reserved(&mut self, nets: &[ipnet::Ipv4Net]) -> Result<(), CompileError> {
        if nets.is_empty() {
            return Ok(());
        }
        let mut owner = Owner::new(OwnerKind::Base, RESERVED_OWNER.to_owned());
        for net in nets {
            for field in ["nw_src", "nw_dst"] {
                owner.flows.push(Flow {
                    priority: RESERVED_DROP_PRIORITY,
                    matches: format!("ip,{field}={}", Net(*net)),
                    actions: "drop".to_owned(),
                });
            }
        }
        insert(self, owner)
    }

    /// Total number of flows.
    pub fn flow_count(&self) -> usize {
        self.owners.values().map(|o| o.flows.len()).sum()
    }
}

/// Why compilation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// Two owners hashed to one cookie or group id; renaming one of them resolves it.
    #[error("{0} and {1} hash to the same {2}; rename one of them")]
    Collision(String, String, &'static str),
}

/// The always-live group used as the watch of bypass buckets.
pub fn alive_group() -> u32 {
    group_id("base alive")
}

/// The failover group of `appliance` for `mode`.
pub fn appliance_group(appliance: &Name, mode: FailMode) -> u32 {
    let m = match mode {
        FailMode::Open => "open",
        FailMode::Closed => "closed",
    };
    group_id(&format!("appliance {appliance} {m}"))
}

/// Compiles the desired state. `ports` says where each switch port is; rules needing a
/// missing port are left out and listed in `pending`.
pub fn compile(inv: &Inventory, ports: &PortMap) -> Result<Program, CompileError> {
    let mut program = Program::default();
    let mut base = Owner::new(OwnerKind::Base, "base".to_owned());
    base.groups.push(Group { id: alive_group(), spec: "type=indirect,bucket=actions=drop".to_owned() });
    base.flows.push(Flow { priority: 0, matches: String::new(), actions: "NORMAL".to_owned() });
    insert(&mut program, base)?;

    for (key, app) in inv.appliances() {
        let Some(&port) = ports.get(app.port.as_str()) else {
            program.pending.push(format!("appliance {}: port {} is not on the bridge", key.name, app.port));
            continue;
        };
        let mut owner = Owner::new(OwnerKind::Appliance, format!("appliance {}", key.name));
        let to_app = format!("bucket=watch_port:{port},actions=mod_dl_dst:{},output:{port}", app.mac);
        owner.groups.push(Group {
            id: appliance_group(&key.name, FailMode::Open),
            spec: format!("type=ff,{to_app},bucket=watch_group:{},actions=NORMAL", alive_group()),
        });
        owner
            .groups
            .push(Group { id: appliance_group(&key.name, FailMode::Closed), spec: format!("type=ff,{to_app}") });
        owner.flows.push(Flow {
            priority: APPLIANCE_RETURN_PRIORITY,
            matches: format!("in_port={port}"),
            actions: "NORMAL".to_owned(),
        });
        insert(&mut program, owner)?;
    }

    for (key, policy) in inv.policies() {
        let Some(redirect) = &policy.redirect else { continue };
        let name = format!("policy {}", key.to_string().trim_start_matches("policy "));
        let mut owner = Owner::new(OwnerKind::Redirect, name);
        match redirect_flows(inv, key, policy.priority, redirect, ports) {
            Ok((flows, missing)) => {
                owner.flows = flows;
                program.pending.extend(missing.into_iter().map(|m| format!("{}: {m}", owner.name)));
            }
            Err(why) => {
                program.pending.push(format!("{}: {why}", owner.name));
                continue;
            }
        }
        insert(&mut program, owner)?;
    }
    Ok(program)
}

fn insert(program: &mut Program, owner: Owner) -> Result<(), CompileError> {
    if let Some(other) = program.owners.get(&owner.cookie) {
        return Err(CompileError::Collision(other.name.clone(), owner.name, "cookie"));
    }
    for g in &owner.groups {
        if let Some(other) = program.owners.values().find(|o| o.groups.iter().any(|x| x.id == g.id)) {
            return Err(CompileError::Collision(other.name.clone(), owner.name, "group id"));
        }
    }
    program.owners.insert(owner.cookie, owner);
    Ok(())
}

type Flows = (Vec<Flow>, Vec<String>);

fn redirect_flows(
    inv: &Inventory,
    key: &ObjectKey,
    priority: u16,
    r: &RedirectSpec,
    ports: &PortMap,
) -> Result<Flows, String> {
    let tenant = key.tenant.as_ref().ok_or("policy without tenant")?;
    let app: &Appliance = inv.appliance(&r.appliance).ok_or_else(|| format!("unknown appliance {}", r.appliance))?;
    let group = appliance_group(&r.appliance, r.fail_mode);
    let domain_vms = || -> Vec<(&Name, &Vm)> {
        inv.vms()
            .filter(|(k, v)| k.tenant.as_ref() == Some(tenant) && inv.vm_domain(tenant, v) == Some(&app.domain))
            .map(|(k, v)| (&k.name, v))
            .collect()
    };
    let resolve = |ep| resolve_endpoint(inv, tenant, ep).map_err(|(_, m)| m);
    let (sources, _) = match &r.source {
        Some(ep) => {
            let s = resolve(ep)?;
            (s.vms, s.nets)
        }
        None => (domain_vms(), Vec::new()),
    };
    let (dest_vms, dest_nets): (Vec<(&Name, &Vm)>, Vec<Option<Net>>) = match &r.destination {
        Some(ep) => {
            let s = resolve(ep)?;
            (s.vms, s.nets.into_iter().map(|n| Some(Net(n))).collect())
        }
        None => (domain_vms(), vec![None]),
    };
    let mut gateway_ports: Vec<u32> = Vec::new();
    let mut missing = Vec::new();
    let host = |name: &Name, vm: &'_ Vm, missing: &mut Vec<String>| -> Option<(String, Ipv4Addr)> {
        let port = vm.port.as_ref()?;
        match ports.get(port.as_str()) {
            Some(p) => Some((p.to_string(), vm.ip)),
            None => {
                missing.push(format!("vm {name}: port {port} is not on the bridge"));
                None
            }
        }
    };
    let proto = match r.protocol {
        Protocol::Any => "ip",
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
    };
    let ports_or_all: Vec<Option<u16>> =
        if r.ports.is_empty() { vec![None] } else { r.ports.iter().copied().map(Some).collect() };
    let prio = REDIRECT_BASE_PRIORITY + priority;
    let mut flows = Vec::new();

    let src_hosts: Vec<(String, Ipv4Addr)> = sources.iter().filter_map(|(n, v)| host(n, v, &mut missing)).collect();
    for (port, ip) in &src_hosts {
        for net in &dest_nets {
            if net.as_ref().is_some_and(|n| n.0.prefix_len() == 32 && n.0.addr() == *ip) {
                continue;
            }
            for tp in &ports_or_all {
                let mut m = format!("in_port={port},{proto},nw_src={ip}");
                if let Some(n) = net {
                    m.push_str(&format!(",nw_dst={}", n));
                }
                if let Some(p) = tp {
                    m.push_str(&format!(",tp_dst={p}"));
                }
                flows.push(Flow { priority: prio, matches: m, actions: format!("group:{group}") });
            }
        }
    }

    if r.direction == Direction::Both {
        let dst_hosts: Vec<(String, Ipv4Addr)> =
            dest_vms.iter().filter_map(|(n, v)| host(n, v, &mut missing)).collect();
        // Replies from "anywhere" enter through the domain's gateways.
        if r.destination.is_none() {
            for (skey, sub) in inv.subdomains() {
                if skey.tenant.as_ref() == Some(tenant) && sub.domain == app.domain {
                    if let Some(p) = sub.gateway_port.as_ref().and_then(|p| ports.get(p.as_str())) {
                        gateway_ports.push(*p);
                    }
                }
            }
        }
        let gateways = gateway_ports.iter().map(|p| (p.to_string(), None));
        let replies = dst_hosts.iter().map(|(p, ip)| (p.clone(), Some(*ip))).chain(gateways);
        for (port, dst_ip) in replies {
            for (_, src_ip) in &src_hosts {
                if Some(*src_ip) == dst_ip {
                    continue;
                }
                for tp in &ports_or_all {
                    let mut m = format!("in_port={port},{proto}");
                    if let Some(ip) = dst_ip {
                        m.push_str(&format!(",nw_src={ip}"));
                    }
                    m.push_str(&format!(",nw_dst={src_ip}"));
                    if let Some(p) = tp {
                        m.push_str(&format!(",tp_src={p}"));
                    }
                    flows.push(Flow { priority: prio, matches: m, actions: format!("group:{group}") });
                }
            }
        }
    }
    flows.sort();
    flows.dedup();
    missing.sort();
    missing.dedup();
    Ok((flows, missing))
}

mod ipnet_lite {
    use std::fmt;

    /// A network printed the way ovs-ofctl wants it (a /32 as a bare address).
    #[derive(Debug, Clone, Copy)]
    pub struct Net(pub ipnet::Ipv4Net);

    impl fmt::Display for Net {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if self.0.prefix_len() == 32 {
                write!(f, "{}", self.0.addr())
            } else {
                write!(f, "{}", self.0.trunc())
            }
        }
    }
}
