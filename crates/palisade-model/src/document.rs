//! The policy file: what operators and tenants write, parsed strictly.
//!
//! A file holds any of three top-level lists. Nested objects inherit their parent
//! (a VM belongs to the subdomain it is listed under). Each policy names its kind by the
//! one kind key it carries (`redirect:`, `monitor:`, `scan:` and `anomaly:`),
//! so files written today stay valid when new kinds arrive.
//!
//! ```yaml
//! tenants:
//!   - name: alpha
//!     domains:
//!       - name: prod
//!         segment: 101
//!         subdomains:
//!           - name: web
//!             cidr: 198.18.1.0/24
//!             gateway: 198.18.1.1
//!             vms:
//!               - { name: web1, mac: "02:00:00:01:01:0a", ip: 198.18.1.10, port: pa-web1 }
//! appliances:
//!   - { name: fw1, functions: [firewall, tap], domain: alpha/prod, port: pa-fw1,
//!       mac: "02:00:00:01:01:fe", ip: 198.18.1.254 }
//! policies:
//!   - name: web-via-fw
//!     tenant: alpha
//!     redirect: { destination: { vm: web1 }, protocol: tcp, ports: [80],
//!                 appliance: fw1, fail_mode: closed }
//! ```

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::locate::LineIndex;
use crate::types::{ApplianceFunction, Direction, FailMode, MacAddr, Name, PortName, Protocol, Verdict};

/// A whole policy file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Tenants with their domains, subdomains and VMs.
    #[serde(default)]
    pub tenants: Vec<TenantDoc>,
    /// Security appliances.
    #[serde(default)]
    pub appliances: Vec<ApplianceDoc>,
    /// Security policies.
    #[serde(default)]
    pub policies: Vec<PolicyDoc>,
}

/// A tenant (the owner of domains and policies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantDoc {
    /// Tenant name, unique in the cloud.
    pub name: Name,
    /// The tenant's domains (the paper's L1 perimeter).
    #[serde(default)]
    pub domains: Vec<DomainDoc>,
}

/// A tenant domain: one isolated L2 segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainDoc {
    /// Domain name, unique within the tenant.
    pub name: Name,
    /// Segmentation id, used as VLAN tag (1-4094), unique in the cloud.
    pub segment: u16,
    /// The domain's subnets (the paper's L2 perimeter).
    #[serde(default)]
    pub subdomains: Vec<SubdomainDoc>,
}

/// A subdomain: one subnet of a domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubdomainDoc {
    /// Subdomain name, unique within the tenant.
    pub name: Name,
    /// The subnet.
    pub cidr: Ipv4Net,
    /// The subnet's gateway address.
    pub gateway: Ipv4Addr,
    /// The gateway's MAC, when the gateway is a port on the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_mac: Option<MacAddr>,
    /// The gateway's switch port, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_port: Option<PortName>,
    /// VMs in this subnet (the paper's L3 perimeter).
    #[serde(default)]
    pub vms: Vec<VmDoc>,
}

/// A virtual machine's network identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmDoc {
    /// VM name, unique within the tenant.
    pub name: Name,
    /// MAC of the VM's interface.
    pub mac: MacAddr,
    /// IPv4 address of the VM's interface.
    pub ip: Ipv4Addr,
    /// The switch port the VM is attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortName>,
    /// Boot the VM as a QEMU guest (its `port` is then its tap device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<crate::GuestSpec>,
}

/// A security appliance attached to one tenant domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplianceDoc {
    /// Appliance name, unique in the cloud.
    pub name: Name,
    /// Functions it hosts (the paper's "encapsulate multiples into one").
    pub functions: Vec<ApplianceFunction>,
    /// The domain it is attached to, as `tenant/domain`.
    pub domain: String,
    /// Its switch port.
    pub port: PortName,
    /// MAC of its interface: redirected packets are rewritten to it.
    pub mac: MacAddr,
    /// Its address inside the domain.
    pub ip: Ipv4Addr,
    /// Firewall configuration, when it hosts a firewall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<FirewallDoc>,
}

/// An appliance's packet filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallDoc {
    /// Verdict for packets no rule matches.
    pub default: Verdict,
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<FirewallRuleDoc>,
}

/// One firewall rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallRuleDoc {
    /// Rule name (names its counter).
    pub name: Name,
    /// What to do with a match.
    pub verdict: Verdict,
    /// Protocol to match.
    #[serde(default)]
    pub protocol: Protocol,
    /// Destination port to match (TCP/UDP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Source network to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Ipv4Net>,
    /// Destination network to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<Ipv4Net>,
}

/// A security policy. Exactly one kind key is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// Policy name, unique within the tenant.
    pub name: Name,
    /// The tenant whose objects it selects.
    pub tenant: Name,
    /// Higher wins where selections overlap (1-1000).
    #[serde(default = "default_priority")]
    pub priority: u16,
    /// Type 1 access: steer selected traffic through an appliance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RedirectSpec>,
    /// Agentless monitoring: hook system calls of guest VMs, record or block by rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Box<crate::MonitorSpec>>,
    /// Type 2 access: scan the tenant's VMs from task spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<Box<crate::ScanSpec>>,
    /// Network anomaly detection: score the selected VMs' traffic live with LSTM-NAD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<Box<crate::AnomalySpec>>,
}

fn default_priority() -> u16 {
    100
}

/// What a `redirect` policy selects and where it sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectSpec {
    /// Where the traffic comes from; absent means every VM of the appliance's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Endpoint>,
    /// Where the traffic goes; absent means anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Endpoint>,
    /// IP protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// Destination ports (TCP/UDP); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Forward only, or forward and replies.
    #[serde(default)]
    pub direction: Direction,
    /// The appliance the traffic crosses.
    pub appliance: Name,
    /// What to do while the appliance is down.
    pub fail_mode: FailMode,
}

/// A selector naming one VM, subdomain or domain of the policy's tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// A VM name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<Name>,
    /// A subdomain name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<Name>,
    /// A domain name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Name>,
}

/// A problem in a policy file, located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{}: {field}{}{message}", line.map_or("?".to_string(), |l| l.to_string()), if field.is_empty() { "" } else { ": " })]
pub struct FileError {
    /// The file name as given by the user.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted path of the offending field (`tenants[0].domains[1].segment`), or empty.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// A parsed file with the line index needed to locate later (semantic) errors.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    /// File name for messages.
    pub file: String,
    /// The document.
    pub document: Document,
    /// Where each field stands.
    pub lines: LineIndex,
}

impl ParsedFile {
    /// Parses `text` (YAML or JSON) strictly: unknown fields, malformed addresses and wrong
    /// types are errors naming file, line and field. Never panics.
    pub fn parse(file: &str, text: &str) -> Result<Self, FileError> {
        let lines = LineIndex::build(text).map_err(|(line, message)| FileError {
            file: file.to_owned(),
            line: Some(line),
            field: String::new(),
            message,
        })?;
        let document = Document::deserialize(serde_norway::Deserializer::from_str(text))
            .map_err(|err| locate_serde_error(file, &lines, &err))?;
        Ok(Self { file: file.to_owned(), document, lines })
    }

    /// Builds a located error for the field at `path`.
    pub fn error_at(&self, path: &str, message: String) -> FileError {
        FileError { file: self.file.clone(), line: self.lines.line_of(path), field: path.to_owned(), message }
    }
}

/// serde_norway reports custom errors (a bad MAC, say) at the enclosing mapping, prefixed with
/// its path. Where the message quotes the bad value, the field holding it is found instead.
fn locate_serde_error(file: &str, lines: &LineIndex, err: &serde_norway::Error) -> FileError {
    let full = strip_location(&err.to_string());
    let (prefix, message) = match full.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (p.to_owned(), m.to_owned()),
        _ => (String::new(), full.clone()),
    };
    let quoted = message.split('`').nth(1);
    if let Some(path) = quoted.and_then(|v| lines.find_value(&prefix, v)) {
        return FileError { file: file.to_owned(), line: lines.line_of(path), field: path.to_owned(), message };
    }
    let line = err.location().map(|l| l.line());
    let field =
        if prefix.is_empty() { line.and_then(|l| lines.path_at_line(l)).unwrap_or("").to_owned() } else { prefix };
    FileError { file: file.to_owned(), line, field, message }
}

/// serde_norway appends " at line L column C" to messages; the line is reported separately.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}
