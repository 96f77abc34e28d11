//! Whole-state validation: references, uniqueness and address rules.
//!
//! Validation runs on the merged desired state (what is stored plus what a file adds), so a
//! file can never leave the store inconsistent, whatever order objects arrive in.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::document::{Endpoint, RedirectSpec};
use crate::inventory::{Inventory, Kind, Object, ObjectKey, Vm};
use crate::types::{Name, Protocol};

/// One rule broken by one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The object at fault.
    pub key: ObjectKey,
    /// The field at fault, relative to the object (`ip`, `redirect.destination.vm`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// What a selector resolves to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection<'a> {
    /// The VMs selected, by name.
    pub vms: Vec<(&'a Name, &'a Vm)>,
    /// The networks selected (a VM's /32, a subdomain's CIDR).
    pub nets: Vec<Ipv4Net>,
    /// The domain everything selected lives in.
    pub domain: Option<&'a Name>,
}

/// Resolves a selector within `tenant`. Errors name the missing object.
pub fn resolve_endpoint<'a>(
    inv: &'a Inventory,
    tenant: &Name,
    ep: &Endpoint,
) -> Result<Selection<'a>, (&'static str, String)> {
    let set = [ep.vm.is_some(), ep.subdomain.is_some(), ep.domain.is_some()];
    if set.iter().filter(|s| **s).count() != 1 {
        return Err(("", "name exactly one of `vm`, `subdomain` or `domain`".to_owned()));
    }
    let subdomain_vms = |sub: &Name| -> Vec<(&'a Name, &'a Vm)> {
        inv.vms()
            .filter(|(k, v)| k.tenant.as_ref() == Some(tenant) && &v.subdomain == sub)
            .map(|(k, v)| (&k.name, v))
            .collect()
    };
    if let Some(name) = &ep.vm {
        let (key, vm) = inv
            .objects
            .get_key_value(&ObjectKey::owned(Kind::Vm, tenant, name))
            .and_then(|(k, o)| match o {
                Object::Vm(v) => Some((k, v)),
                _ => None,
            })
            .ok_or(("vm", format!("unknown vm `{name}` in tenant `{tenant}`")))?;
        return Ok(Selection {
            vms: vec![(&key.name, vm)],
            nets: vec![Ipv4Net::from(vm.ip)],
            domain: inv.vm_domain(tenant, vm),
        });
    }
    if let Some(name) = &ep.subdomain {
        let (key, sub) = inv
            .subdomains()
            .find(|(k, _)| k.tenant.as_ref() == Some(tenant) && &k.name == name)
            .ok_or(("subdomain", format!("unknown subdomain `{name}` in tenant `{tenant}`")))?;
        return Ok(Selection { vms: subdomain_vms(&key.name), nets: vec![sub.cidr], domain: Some(&sub.domain) });
    }
    let name = ep.domain.as_ref().ok_or(("", "empty selector".to_owned()))?;
    let (dkey, _) = inv
        .domains()
        .find(|(k, _)| k.tenant.as_ref() == Some(tenant) && &k.name == name)
        .ok_or(("domain", format!("unknown domain `{name}` in tenant `{tenant}`")))?;
    let mut sel = Selection { domain: Some(&dkey.name), ..Selection::default() };
    for (skey, sub) in inv.subdomains().filter(|(k, s)| k.tenant.as_ref() == Some(tenant) && &s.domain == name) {
        sel.nets.push(sub.cidr);
        sel.vms.extend(subdomain_vms(&skey.name));
    }
    Ok(sel)
}

/// Checks every rule; returns all problems found (empty means valid).
pub fn validate(inv: &Inventory) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut problem = |key: &ObjectKey, field: &str, message: String| {
        out.push(Problem { key: key.clone(), field: field.to_owned(), message });
    };
    let tenant_exists =
        |t: &Name| inv.objects.contains_key(&ObjectKey { kind: Kind::Tenant, tenant: None, name: t.clone() });

    // Per domain: addresses and MACs in use, to find duplicates. Key: (tenant, domain).
    let mut ips: BTreeMap<(Name, Name, Ipv4Addr), ObjectKey> = BTreeMap::new();
    let mut macs: BTreeMap<(Name, Name, String), ObjectKey> = BTreeMap::new();
    let mut segments: BTreeMap<u16, ObjectKey> = BTreeMap::new();
    let mut ports: BTreeMap<String, ObjectKey> = BTreeMap::new();
    let mut claim_port =
        |problem: &mut dyn FnMut(&ObjectKey, &str, String), key: &ObjectKey, field: &str, port: &str| {
            if let Some(other) = ports.insert(port.to_owned(), key.clone()) {
                problem(key, field, format!("switch port `{port}` is already used by {other}"));
            }
        };

    for (key, obj) in &inv.objects {
        let owner_ok = match (&key.tenant, key.kind) {
            (Some(t), _) => tenant_exists(t),
            (None, _) => true,
        };
        if !owner_ok {
            problem(key, "tenant", format!("unknown tenant `{}`", key.tenant.as_ref().map_or("", |t| t.as_str())));
            continue;
        }
        let tenant = key.tenant.clone();
        match obj {
            Object::Tenant(_) => {}
            Object::Domain(d) => {
                if !(1..=4094).contains(&d.segment) {
                    problem(key, "segment", format!("segment {} is not a VLAN id (1-4094)", d.segment));
                } else if let Some(other) = segments.insert(d.segment, key.clone()) {
                    problem(key, "segment", format!("segment {} is already used by {other}", d.segment));
                }
            }
            Object::Subdomain(s) => {
                let Some(t) = tenant else { continue };
                if inv.domain(&t, &s.domain).is_none() {
                    problem(key, "domain", format!("unknown domain `{}` in tenant `{t}`", s.domain));
                    continue;
                }
                if s.cidr.trunc() != s.cidr {
                    problem(key, "cidr", format!("{} has host bits set (did you mean {}?)", s.cidr, s.cidr.trunc()));
                }
                if !s.cidr.contains(&s.gateway) {
                    problem(key, "gateway", format!("gateway {} is outside subnet {}", s.gateway, s.cidr));
                }
                for (okey, other) in inv.subdomains() {
                    if okey < key
                        && okey.tenant == key.tenant
                        && other.domain == s.domain
                        && (other.cidr.contains(&s.cidr) || s.cidr.contains(&other.cidr))
                    {
                        problem(key, "cidr", format!("{} overlaps {} of {okey}", s.cidr, other.cidr));
                    }
                }
                let dom = (t.clone(), s.domain.clone());
                if let Some(other) = ips.insert((dom.0.clone(), dom.1.clone(), s.gateway), key.clone()) {
                    problem(
                        key,
                        "gateway",
                        format!("address {} is already used by {other} in domain `{}`", s.gateway, dom.1),
                    );
                }
                if let Some(mac) = s.gateway_mac {
                    if let Some(other) = macs.insert((dom.0, dom.1.clone(), mac.to_string()), key.clone()) {
                        problem(
                            key,
                            "gateway_mac",
                            format!("MAC {mac} is already used by {other} in domain `{}`", dom.1),
                        );
                    }
                }
                if let Some(port) = &s.gateway_port {
                    claim_port(&mut problem, key, "gateway_port", port.as_str());
                }
            }
            Object::Vm(v) => {
                let Some(t) = tenant else { continue };
                let Some(sub) = inv.subdomain(&t, &v.subdomain) else {
                    problem(key, "subdomain", format!("unknown subdomain `{}` in tenant `{t}`", v.subdomain));
                    continue;
                };
                check_host(&mut problem, &mut ips, &mut macs, key, (&t, &sub.domain), v.ip, &v.mac.to_string());
                if !sub.cidr.contains(&v.ip) {
                    problem(key, "ip", format!("{} is outside subdomain `{}` ({})", v.ip, v.subdomain, sub.cidr));
                }
                if let Some(port) = &v.port {
                    claim_port(&mut problem, key, "port", port.as_str());
                }
                if let Some(guest) = &v.guest {
                    if v.port.is_none() {
                        problem(key, "guest", "a guest needs a `port` (its tap device on the switch)".to_owned());
                    }
                    for (field, message) in guest.problems() {
                        problem(key, field, message);
                    }
                }
            }
            Object::Appliance(a) => {
                if !tenant_exists(&a.tenant) || inv.domain(&a.tenant, &a.domain).is_none() {
                    problem(key, "domain", format!("unknown domain `{}/{}`", a.tenant, a.domain));
                    continue;
                }
                let in_subnet = inv.subdomains().any(|(k, s)| {
                    k.tenant.as_ref() == Some(&a.tenant) && s.domain == a.domain && s.cidr.contains(&a.ip)
                });
                if !in_subnet {
                    problem(key, "ip", format!("{} is in no subdomain of domain `{}/{}`", a.ip, a.tenant, a.domain));
                }
                if a.functions.is_empty() {
                    problem(key, "functions", "an appliance hosts at least one function".to_owned());
                }
                check_host(&mut problem, &mut ips, &mut macs, key, (&a.tenant, &a.domain), a.ip, &a.mac.to_string());
                claim_port(&mut problem, key, "port", a.port.as_str());
            }
            Object::Policy(p) => {
                let Some(t) = tenant else { continue };
                if !(1..=1000).contains(&p.priority) {
                    problem(key, "priority", format!("priority {} is outside 1-1000", p.priority));
                }
                let kinds: Vec<&str> = [
                    ("redirect", p.redirect.is_some()),
                    ("monitor", p.monitor.is_some()),
                    ("scan", p.scan.is_some()),
                    ("anomaly", p.anomaly.is_some()),
                ]
                .into_iter()
                .filter_map(|(k, set)| set.then_some(k))
                .collect();
                if kinds.len() > 1 {
                    problem(
                        key,
                        kinds[1],
                        format!("a policy has one kind key; split {} into separate policies", kinds.join(" and ")),
                    );
                    continue;
                }
                if let Some(r) = &p.redirect {
                    check_redirect(inv, &mut problem, key, &t, r);
                } else if let Some(m) = &p.monitor {
                    check_monitor(inv, &mut problem, key, &t, m);
                } else if let Some(s) = &p.scan {
                    check_scan(inv, &mut problem, key, &t, s);
                } else if let Some(a) = &p.anomaly {
                    check_anomaly(inv, &mut problem, key, &t, a);
                } else {
                    problem(key, "", "a policy needs one kind key (redirect, monitor, scan or anomaly)".to_owned());
                }
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn check_host(
    problem: &mut dyn FnMut(&ObjectKey, &str, String),
    ips: &mut BTreeMap<(Name, Name, Ipv4Addr), ObjectKey>,
    macs: &mut BTreeMap<(Name, Name, String), ObjectKey>,
    key: &ObjectKey,
    (tenant, domain): (&Name, &Name),
    ip: Ipv4Addr,
    mac: &str,
) {
    if let Some(other) = ips.insert((tenant.clone(), domain.clone(), ip), key.clone()) {
        problem(key, "ip", format!("address {ip} is already used by {other} in domain `{domain}`"));
    }
    if let Some(other) = macs.insert((tenant.clone(), domain.clone(), mac.to_owned()), key.clone()) {
        problem(key, "mac", format!("MAC {mac} is already used by {other} in domain `{domain}`"));
    }
}

fn check_scan(
    inv: &Inventory,
    problem: &mut dyn FnMut(&ObjectKey, &str, String),
    key: &ObjectKey,
    tenant: &Name,
    s: &crate::ScanSpec,
) {
    for (field, message) in s.problems() {
        problem(key, &field, message);
    }
    let Some(target) = &s.target else {
        if !inv.vms().any(|(k, _)| k.tenant.as_ref() == Some(tenant)) {
            problem(key, "scan", format!("tenant `{tenant}` has no VM to scan"));
        }
        return;
    };
    match resolve_endpoint(inv, tenant, target) {
        Err((sub, message)) => {
            let field = if sub.is_empty() { "scan.target".to_owned() } else { format!("scan.target.{sub}") };
            problem(key, &field, message);
        }
        Ok(sel) if sel.vms.is_empty() => problem(key, "scan.target", "the target holds no VM to scan".to_owned()),
        Ok(_) => {}
    }
}

/// What a policy kind needs of the VMs it targets: the kind's field prefix, whether a VM
/// qualifies, why a named VM does not, and what to say when none in the target does.
struct TargetNeed<'a> {
    kind: &'a str,
    qualifies: fn(&Vm) -> bool,
    named_lacks: &'a str,
    none: &'a str,
}

/// Checks that `target` resolves within `tenant` and holds VMs that meet `need`.
fn check_target(
    inv: &Inventory,
    problem: &mut dyn FnMut(&ObjectKey, &str, String),
    key: &ObjectKey,
    tenant: &Name,
    target: &Endpoint,
    need: &TargetNeed<'_>,
) {
    let kind = need.kind;
    match resolve_endpoint(inv, tenant, target) {
        Err((sub, message)) => {
            let field = if sub.is_empty() { format!("{kind}.target") } else { format!("{kind}.target.{sub}") };
            problem(key, &field, message);
        }
        Ok(sel) => {
            if let Some((name, _)) = sel.vms.iter().find(|(_, vm)| !(need.qualifies)(vm) && target.vm.is_some()) {
                problem(key, &format!("{kind}.target.vm"), format!("vm `{name}` {}", need.named_lacks));
            } else if !sel.vms.iter().any(|(_, vm)| (need.qualifies)(vm)) {
                problem(key, &format!("{kind}.target"), need.none.to_owned());
            }
        }
    }
}

fn check_anomaly(
    inv: &Inventory,
    problem: &mut dyn FnMut(&ObjectKey, &str, String),
    key: &ObjectKey,
    tenant: &Name,
    a: &crate::AnomalySpec,
) {
    for (field, message) in a.problems() {
        problem(key, &field, message);
    }
    let need = TargetNeed {
        kind: "anomaly",
        qualifies: |vm| vm.port.is_some(),
        named_lacks: "has no switch port (`port:`), so there is no traffic to capture",
        none: "the target holds no VM with a switch port to watch",
    };
    check_target(inv, problem, key, tenant, &a.target, &need);
}

fn check_monitor(
    inv: &Inventory,
    problem: &mut dyn FnMut(&ObjectKey, &str, String),
    key: &ObjectKey,
    tenant: &Name,
    m: &crate::MonitorSpec,
) {
    for (field, message) in m.problems() {
        problem(key, &field, message);
    }
    let need = TargetNeed {
        kind: "monitor",
        qualifies: |vm| vm.guest.is_some(),
        named_lacks: "is not a guest (no `guest:` section), so there is no kernel to hook",
        none: "the target holds no guest VM to monitor",
    };
    check_target(inv, problem, key, tenant, &m.target, &need);
}

fn check_redirect(
    inv: &Inventory,
    problem: &mut dyn FnMut(&ObjectKey, &str, String),
    key: &ObjectKey,
    tenant: &Name,
    r: &RedirectSpec,
) {
    let Some(app) = inv.appliance(&r.appliance) else {
        problem(key, "redirect.appliance", format!("unknown appliance `{}`", r.appliance));
        return;
    };
    if &app.tenant != tenant {
        problem(
            key,
            "redirect.appliance",
            format!("appliance `{}` is not attached to a domain of tenant `{tenant}`", r.appliance),
        );
        return;
    }
    if r.source.is_none() && r.destination.is_none() {
        problem(key, "redirect", "name a `source`, a `destination` or both".to_owned());
    }
    if !r.ports.is_empty() && !matches!(r.protocol, Protocol::Tcp | Protocol::Udp) {
        problem(key, "redirect.ports", "ports need `protocol: tcp` or `protocol: udp`".to_owned());
    }
    if r.ports.contains(&0) {
        problem(key, "redirect.ports", "port 0 cannot be matched".to_owned());
    }
    for (field, ep) in [("source", &r.source), ("destination", &r.destination)] {
        let Some(ep) = ep else { continue };
        match resolve_endpoint(inv, tenant, ep) {
            Err((sub, message)) => {
                let f = if sub.is_empty() { format!("redirect.{field}") } else { format!("redirect.{field}.{sub}") };
                problem(key, &f, message);
            }
            Ok(sel) => {
                if sel.domain != Some(&app.domain) {
                    problem(
                        key,
                        &format!("redirect.{field}"),
                        format!(
                            "selects objects outside domain `{}`, where appliance `{}` is attached",
                            app.domain, r.appliance
                        ),
                    );
                }
                if let Some((name, _)) = sel.vms.iter().find(|(_, vm)| vm.port.is_none()) {
                    problem(
                        key,
                        &format!("redirect.{field}"),
                        format!("vm `{name}` has no switch port, so its traffic cannot be steered"),
                    );
                }
            }
        }
    }
}
