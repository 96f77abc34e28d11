//! The flattened desired state: every object under one key, with parents named, as stored.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::document::{Document, FirewallDoc, RedirectSpec};
use crate::types::{ApplianceFunction, MacAddr, Name, PortName, ValueError};

/// The kinds of object in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A tenant.
    Tenant,
    /// A tenant domain (VLAN segment).
    Domain,
    /// A subnet of a domain.
    Subdomain,
    /// A VM.
    Vm,
    /// A security appliance.
    Appliance,
    /// A policy.
    Policy,
}

impl Kind {
    /// Every kind, parents before children.
    pub const ALL: [Kind; 6] = [Kind::Tenant, Kind::Domain, Kind::Subdomain, Kind::Vm, Kind::Appliance, Kind::Policy];

    /// The kind's name as used in files, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tenant => "tenant",
            Kind::Domain => "domain",
            Kind::Subdomain => "subdomain",
            Kind::Vm => "vm",
            Kind::Appliance => "appliance",
            Kind::Policy => "policy",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim_end_matches('s') || (s == "policies" && *k == Kind::Policy))
            .ok_or_else(|| {
                ValueError(format!(
                    "unknown kind `{s}`: expected one of tenant, domain, subdomain, vm, appliance, policy"
                ))
            })
    }
}

/// Identifies one object: appliances and tenants have no owning tenant in the key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// What it is.
    pub kind: Kind,
    /// The owning tenant (None for tenants themselves and appliances).
    pub tenant: Option<Name>,
    /// Its name.
    pub name: Name,
}

impl ObjectKey {
    /// A tenant-owned object's key.
    pub fn owned(kind: Kind, tenant: &Name, name: &Name) -> Self {
        Self { kind, tenant: Some(tenant.clone()), name: name.clone() }
    }

    /// The tenant this object belongs to, for access control (a tenant owns itself).
    pub fn owner(&self) -> Option<&Name> {
        match self.kind {
            Kind::Tenant => Some(&self.name),
            _ => self.tenant.as_ref(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tenant {
            Some(t) => write!(f, "{} {t}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {}

/// A tenant domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// VLAN tag.
    pub segment: u16,
}

/// A subnet of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subdomain {
    /// The domain it belongs to.
    pub domain: Name,
    /// Its network.
    pub cidr: Ipv4Net,
    /// Its gateway address.
    pub gateway: Ipv4Addr,
    /// The gateway's MAC, if it sits on the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_mac: Option<MacAddr>,
    /// The gateway's switch port, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_port: Option<PortName>,
}

/// A VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vm {
    /// The subdomain it lives in.
    pub subdomain: Name,
    /// Its MAC.
    pub mac: MacAddr,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its switch port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortName>,
    /// Boot it as a QEMU guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<crate::GuestSpec>,
}

/// A security appliance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appliance {
    /// Hosted functions.
    pub functions: Vec<ApplianceFunction>,
    /// Tenant of the domain it is attached to.
    pub tenant: Name,
    /// Domain it is attached to.
    pub domain: Name,
    /// Its switch port.
    pub port: PortName,
    /// Its MAC.
    pub mac: MacAddr,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Firewall configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<FirewallDoc>,
}

/// A policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Priority (1-1000).
    pub priority: u16,
    /// Type 1 redirection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RedirectSpec>,
    /// Agentless monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Box<crate::MonitorSpec>>,
    /// Type 2 scanning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<Box<crate::ScanSpec>>,
    /// Network anomaly detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<Box<crate::AnomalySpec>>,
}

/// One object's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Object {
    /// A tenant.
    Tenant(Tenant),
    /// A domain.
    Domain(Domain),
    /// A subdomain.
    Subdomain(Subdomain),
    /// A VM.
    Vm(Vm),
    /// An appliance.
    Appliance(Appliance),
    /// A policy.
    Policy(Policy),
}

impl Object {
    /// Decodes a stored body of a known kind.
    pub fn from_json(kind: Kind, value: serde_json::Value) -> Result<Self, serde_json::Error> {
        Ok(match kind {
            Kind::Tenant => Object::Tenant(serde_json::from_value(value)?),
            Kind::Domain => Object::Domain(serde_json::from_value(value)?),
            Kind::Subdomain => Object::Subdomain(serde_json::from_value(value)?),
            Kind::Vm => Object::Vm(serde_json::from_value(value)?),
            Kind::Appliance => Object::Appliance(serde_json::from_value(value)?),
            Kind::Policy => Object::Policy(serde_json::from_value(value)?),
        })
    }

    /// The body as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        // Serializing plain data structs to a Value cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// The whole desired state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    /// Every object by key.
    pub objects: BTreeMap<ObjectKey, Object>,
}

macro_rules! typed_iter {
    ($fn:ident, $variant:ident, $ty:ty) => {
        /// Every object of this kind with its key.
        pub fn $fn(&self) -> impl Iterator<Item = (&ObjectKey, &$ty)> {
            self.objects.iter().filter_map(|(k, o)| match o {
                Object::$variant(x) => Some((k, x)),
                _ => None,
            })
        }
    };
}

macro_rules! typed_get {
    ($fn:ident, $variant:ident, $kind:ident, $ty:ty) => {
        /// Looks one object of this kind up by tenant and name.
        pub fn $fn(&self, tenant: &Name, name: &Name) -> Option<&$ty> {
            match self.objects.get(&ObjectKey::owned(Kind::$kind, tenant, name)) {
                Some(Object::$variant(x)) => Some(x),
                _ => None,
            }
        }
    };
}

impl Inventory {
    typed_iter!(domains, Domain, Domain);
    typed_iter!(subdomains, Subdomain, Subdomain);
    typed_iter!(vms, Vm, Vm);
    typed_iter!(appliances, Appliance, Appliance);
    typed_iter!(policies, Policy, Policy);
    typed_get!(domain, Domain, Domain, Domain);
    typed_get!(subdomain, Subdomain, Subdomain, Subdomain);
    typed_get!(vm, Vm, Vm, Vm);

    /// Looks an appliance up by name.
    pub fn appliance(&self, name: &Name) -> Option<&Appliance> {
        match self.objects.get(&ObjectKey { kind: Kind::Appliance, tenant: None, name: name.clone() }) {
            Some(Object::Appliance(a)) => Some(a),
            _ => None,
        }
    }

    /// The domain a VM lives in.
    pub fn vm_domain(&self, tenant: &Name, vm: &Vm) -> Option<&Name> {
        self.subdomain(tenant, &vm.subdomain).map(|s| &s.domain)
    }
}

/// Objects read from one file, each with the path of the entry it came from.
#[derive(Debug, Clone, Default)]
pub struct FileObjects {
    /// Objects in file order.
    pub objects: Vec<(ObjectKey, Object, String)>,
}

impl FileObjects {
    /// Flattens a document. Children take their parents' names.
    pub fn from_document(doc: &Document) -> Result<Self, (String, String)> {
        let mut out = Vec::new();
        for (ti, t) in doc.tenants.iter().enumerate() {
            let tp = format!("tenants[{ti}]");
            out.push((
                ObjectKey { kind: Kind::Tenant, tenant: None, name: t.name.clone() },
                Object::Tenant(Tenant {}),
                tp.clone(),
            ));
            for (di, d) in t.domains.iter().enumerate() {
                let dp = format!("{tp}.domains[{di}]");
                out.push((
                    ObjectKey::owned(Kind::Domain, &t.name, &d.name),
                    Object::Domain(Domain { segment: d.segment }),
                    dp.clone(),
                ));
                for (si, s) in d.subdomains.iter().enumerate() {
                    let sp = format!("{dp}.subdomains[{si}]");
                    out.push((
                        ObjectKey::owned(Kind::Subdomain, &t.name, &s.name),
                        Object::Subdomain(Subdomain {
                            domain: d.name.clone(),
                            cidr: s.cidr,
                            gateway: s.gateway,
                            gateway_mac: s.gateway_mac,
                            gateway_port: s.gateway_port.clone(),
                        }),
                        sp.clone(),
                    ));
                    for (vi, v) in s.vms.iter().enumerate() {
                        out.push((
                            ObjectKey::owned(Kind::Vm, &t.name, &v.name),
                            Object::Vm(Vm {
                                subdomain: s.name.clone(),
                                mac: v.mac,
                                ip: v.ip,
                                port: v.port.clone(),
                                guest: v.guest.clone(),
                            }),
                            format!("{sp}.vms[{vi}]"),
                        ));
                    }
                }
            }
        }
        for (ai, a) in doc.appliances.iter().enumerate() {
            let path = format!("appliances[{ai}]");
            let (tenant, domain) = parse_domain_ref(&a.domain).map_err(|m| (format!("{path}.domain"), m))?;
            out.push((
                ObjectKey { kind: Kind::Appliance, tenant: None, name: a.name.clone() },
                Object::Appliance(Appliance {
                    functions: a.functions.clone(),
                    tenant,
                    domain,
                    port: a.port.clone(),
                    mac: a.mac,
                    ip: a.ip,
                    firewall: a.firewall.clone(),
                }),
                path,
            ));
        }
        for (pi, p) in doc.policies.iter().enumerate() {
            out.push((
                ObjectKey::owned(Kind::Policy, &p.tenant, &p.name),
                Object::Policy(Policy {
                    priority: p.priority,
                    redirect: p.redirect.clone(),
                    monitor: p.monitor.clone(),
                    scan: p.scan.clone(),
                    anomaly: p.anomaly.clone(),
                }),
                format!("policies[{pi}]"),
            ));
        }
        let mut seen = BTreeMap::new();
        for (key, _, path) in &out {
            if let Some(first) = seen.insert(key.clone(), path.clone()) {
                return Err((format!("{path}.name"), format!("{key} is defined twice (first at {first})")));
            }
        }
        Ok(Self { objects: out })
    }
}

fn parse_domain_ref(s: &str) -> Result<(Name, Name), String> {
    let (t, d) = s.split_once('/').ok_or_else(|| format!("expected `tenant/domain`, found `{s}`"))?;
    Ok((t.parse().map_err(|e: ValueError| e.0)?, d.parse().map_err(|e: ValueError| e.0)?))
}
