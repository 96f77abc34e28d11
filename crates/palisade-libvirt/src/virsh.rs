//! libvirt through `virsh`, the interface every libvirt host has: a domain by name or UUID,
//! its definition, its state and QEMU process, and HMP commands to its QEMU
//! (`virsh qemu-monitor-command --hmp`; libvirt marks the domain "tainted: custom-monitor").

use std::path::PathBuf;

use palisade_host::{RunOptions, ToolError};
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::error::LibvirtError;
use crate::registers::{self, VcpuRegisters};

/// The local system connection, where libvirt runs QEMU domains as a service.
pub const SYSTEM_URI: &str = "qemu:///system";

/// A libvirt connection by URI, used through `virsh -c URI`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Libvirt {
    uri: String,
}

impl Default for Libvirt {
    fn default() -> Self {
        Libvirt::new(SYSTEM_URI)
    }
}

/// What `virsh dominfo` says about a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInfo {
    /// Its running id (`None` when it is not running).
    pub id: Option<u32>,
    /// Its name.
    pub name: String,
    /// Its UUID.
    pub uuid: String,
    /// Its state as libvirt words it (`running`, `paused`, `shut off`, ...).
    pub state: String,
}

impl DomainInfo {
    /// Running or paused: a QEMU process exists.
    pub fn is_active(&self) -> bool {
        self.id.is_some()
    }
}

/// The parts of a domain's XML definition that decide whether and how Palisade can attach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainXml {
    /// `kvm` or `qemu` (TCG).
    pub virt_type: String,
    /// `<os><type arch=...>`, e.g. `x86_64`.
    pub arch: String,
    /// `<os><type machine=...>`, e.g. `pc-q35-7.2`.
    pub machine: String,
    /// `<memory>` in bytes.
    pub memory: u64,
    /// `<memoryBacking><source type=...>` (`file`, `memfd`, `anonymous`), if given.
    pub memory_source: Option<String>,
}

impl Libvirt {
    /// A connection to `uri`.
    pub fn new(uri: impl Into<String>) -> Self {
        Libvirt { uri: uri.into() }
    }

    /// The connection's URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn virsh(&self, args: &[&str]) -> Result<String, ToolError> {
        let mut argv = vec!["virsh", "-q", "-c", &self.uri];
        argv.extend_from_slice(args);
        let out = palisade_host::run_with(&argv, &RunOptions { env: &[("LC_ALL", "C")], ..RunOptions::default() })?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The domain named or numbered by `domain` (name or UUID).
    pub fn lookup(&self, domain: &str) -> Result<DomainInfo, LibvirtError> {
        let text = self.virsh(&["dominfo", domain]).map_err(|source| LibvirtError::NoDomain {
            domain: domain.to_owned(),
            uri: self.uri.clone(),
            source,
        })?;
        parse_dominfo(&text).ok_or_else(|| LibvirtError::Unexpected {
            what: "virsh dominfo",
            output: text.lines().take(3).collect::<Vec<_>>().join(" / "),
        })
    }

    /// The live definition of an active domain (or the stored one of an inactive domain).
    pub fn definition(&self, domain: &DomainInfo) -> Result<DomainXml, LibvirtError> {
        let text = self.virsh(&["dumpxml", &domain.uuid]).map_err(LibvirtError::Tool)?;
        parse_domain_xml(&text).ok_or_else(|| LibvirtError::Unexpected {
            what: "virsh dumpxml",
            output: text.lines().take(2).collect::<Vec<_>>().join(" / "),
        })
    }

    /// Runs an HMP command in the domain's QEMU and returns what it printed.
    pub fn hmp(&self, domain: &DomainInfo, command: &str) -> Result<String, LibvirtError> {
        self.virsh(&["qemu-monitor-command", &domain.uuid, "--hmp", command]).map_err(LibvirtError::Tool)
    }

    /// Every vCPU's paging registers (HMP `info registers -a`).
    pub fn vcpu_registers(&self, domain: &DomainInfo) -> Result<Vec<VcpuRegisters>, LibvirtError> {
        let text = self.hmp(domain, "info registers -a")?;
        let vcpus = registers::parse_info_registers(&text);
        if vcpus.is_empty() {
            return Err(LibvirtError::Unexpected {
                what: "HMP info registers -a",
                output: text.trim().lines().take(3).collect::<Vec<_>>().join(" / "),
            });
        }
        Ok(vcpus)
    }

    /// The pid of an active domain's QEMU process: libvirt's pid file, checked against the
    /// process's command line (`-name guest=NAME`), so a stale file never points elsewhere.
    pub fn qemu_pid(&self, domain: &DomainInfo) -> Result<u32, LibvirtError> {
        let dirs = ["/run/libvirt/qemu", "/var/run/libvirt/qemu"];
        let file = dirs.iter().map(|d| PathBuf::from(d).join(format!("{}.pid", domain.name))).find(|p| p.exists());
        let file = file.ok_or_else(|| LibvirtError::NoProcess {
            domain: domain.name.clone(),
            detail: format!("no pid file {}.pid under {}", domain.name, dirs.join(" or ")),
        })?;
        let text = std::fs::read_to_string(&file).map_err(|e| LibvirtError::Io { path: file.clone(), source: e })?;
        let pid: u32 = text.trim().parse().map_err(|_| LibvirtError::NoProcess {
            domain: domain.name.clone(),
            detail: format!("{} holds {:?}, not a pid", file.display(), text.trim()),
        })?;
        let cmdline_path = PathBuf::from(format!("/proc/{pid}/cmdline"));
        let cmdline = std::fs::read(&cmdline_path).unwrap_or_default();
        let expected = format!("guest={}", domain.name);
        let matches =
            cmdline.split(|b| *b == 0).any(|arg| String::from_utf8_lossy(arg).split(',').any(|part| part == expected));
        if !matches {
            return Err(LibvirtError::NoProcess {
                domain: domain.name.clone(),
                detail: format!("process {pid} (from {}) is not this domain's QEMU", file.display()),
            });
        }
        Ok(pid)
    }
}

/// `virsh dominfo` output (`Key:   value` lines) -> [`DomainInfo`].
pub fn parse_dominfo(text: &str) -> Option<DomainInfo> {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
    };
    let name = field("Name").filter(|n| !n.is_empty())?;
    let uuid = field("UUID").filter(|u| u.len() == 36)?;
    let state = field("State")?;
    let id = field("Id").and_then(|id| id.parse().ok());
    Some(DomainInfo { id, name, uuid, state })
}

/// The attach-relevant parts of a domain's XML; `None` if it is not a domain definition.
pub fn parse_domain_xml(xml: &str) -> Option<DomainXml> {
    let mut reader = Reader::from_str(xml);
    let mut out = DomainXml::default();
    let mut path: Vec<String> = Vec::new();
    let mut seen_domain = false;
    let mut memory_unit = String::from("KiB");
    loop {
        let event = reader.read_event().ok()?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let attr = |key: &str| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == key.as_bytes())
                        .map(|a| a.unescape_value().map(|v| v.into_owned()).unwrap_or_default())
                };
                let parent = path.last().map(String::as_str);
                match (parent, name.as_str()) {
                    (None, "domain") => {
                        seen_domain = true;
                        out.virt_type = attr("type").unwrap_or_default();
                    }
                    (Some("os"), "type") => {
                        out.arch = attr("arch").unwrap_or_default();
                        out.machine = attr("machine").unwrap_or_default();
                    }
                    (Some("domain"), "memory") => memory_unit = attr("unit").unwrap_or_else(|| "KiB".into()),
                    (Some("memoryBacking"), "source") => out.memory_source = attr("type"),
                    _ => {}
                }
                if matches!(event, Event::Start(_)) {
                    path.push(name);
                }
            }
            Event::Text(t) if path.last().map(String::as_str) == Some("memory") && path.len() == 2 => {
                let value: u64 = t.unescape().ok()?.trim().parse().ok()?;
                out.memory = value.checked_mul(unit_bytes(&memory_unit)?)?;
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    seen_domain.then_some(out)
}

/// libvirt's memory units.
fn unit_bytes(unit: &str) -> Option<u64> {
    Some(match unit {
        "b" | "bytes" => 1,
        "KB" => 1000,
        "k" | "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "M" | "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "G" | "GiB" => 1 << 30,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominfo_of_a_running_and_a_stopped_domain() {
        let running =
            "Id:             2\nName:           web-7\nUUID:           0b5e9b4c-4b2a-4d1e-9a53-2f1a7d2c9e11\n\
                       OS Type:        hvm\nState:          running\nCPU(s):         2\nMax memory:     1048576 KiB\n";
        let info = parse_dominfo(running).unwrap();
        assert_eq!(info.id, Some(2));
        assert_eq!(info.name, "web-7");
        assert!(info.is_active());
        let off = running.replace("Id:             2", "Id:             -").replace("running", "shut off");
        let info = parse_dominfo(&off).unwrap();
        assert_eq!((info.id, info.state.as_str(), info.is_active()), (None, "shut off", false));
        assert_eq!(parse_dominfo("error: failed to get domain 'x'"), None);
    }

    #[test]
    fn domain_xml_gives_arch_machine_memory_and_backing() {
        let xml = "<domain type='qemu' id='2'><name>web-7</name><memory unit='KiB'>1048576</memory>\
                   <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>\
                   <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>\
                   <devices><disk><source file='/x'/></disk></devices></domain>";
        let d = parse_domain_xml(xml).unwrap();
        assert_eq!(
            d,
            DomainXml {
                virt_type: "qemu".into(),
                arch: "x86_64".into(),
                machine: "pc-q35-7.2".into(),
                memory: 1 << 30,
                memory_source: Some("memfd".into()),
            }
        );
        let plain = "<domain type='kvm'><memory unit='GiB'>2</memory><os><type arch='aarch64' machine='virt'>hvm</type></os></domain>";
        let d = parse_domain_xml(plain).unwrap();
        assert_eq!((d.arch.as_str(), d.memory, d.memory_source), ("aarch64", 2 << 30, None));
        assert_eq!(parse_domain_xml("<network/>"), None);
        assert_eq!(parse_domain_xml("<domain><memory unit='parsec'>1</memory></domain>"), None);
        assert_eq!(parse_domain_xml("<domain"), None);
    }
}
