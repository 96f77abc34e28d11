//! The `vuln-scan` engine: Debian's nmap, run inside a task space, with service detection and
//! the `vuln` scripts that are safe and offline, its XML report parsed into findings.
//!
//! ```text
//!  nsenter --net=<task ns> nmap -n -Pn -sV --script <offline safe vuln> -p T:..,U:.. -oX - <vir.ip>
//!        └─ stdout (XML) ─► parse_report (never panics) ─► ports + services + script findings
//! ```
//! Scripts in the `external` category (they contact outside services, e.g. `vulners`), and
//! `broadcast`, `dos` and `intrusive` ones are never selected. `-n` keeps nmap from resolving
//! names, so nothing leaves the task space but packets to the target.

use std::io::Read;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde::{Deserialize, Serialize};

use crate::portscan::{PortResult, PortState, Proto};

pub use palisade_api::scans::{Finding, ServiceInfo};

/// The script selection: `vuln` scripts that are safe, never one that contacts outside
/// services, broadcasts, or could harm the target. `http-slowloris-check` is tagged safe but holds
/// connections open for minutes to see whether the server gives in: a denial-of-service probe.
pub const OFFLINE_VULN_SCRIPTS: &str =
    "vuln and safe and not (external or broadcast or dos or intrusive or http-slowloris-check)";

/// The `--script` selection for a profile's script names: the offline-safe set, narrowed to
/// `names` when given. The result is always within [`OFFLINE_VULN_SCRIPTS`]: a name outside it
/// selects nothing. Names must be plain script names (see `palisade_model::scan::is_script_name`).
pub fn script_selection(names: &[String]) -> String {
    let names: Vec<&str> =
        names.iter().map(String::as_str).filter(|n| palisade_model::scan::is_script_name(n)).collect();
    if names.is_empty() {
        OFFLINE_VULN_SCRIPTS.to_owned()
    } else {
        format!("({OFFLINE_VULN_SCRIPTS}) and ({})", names.join(" or "))
    }
}

/// A parsed nmap report of one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NmapReport {
    /// Every port nmap reported on.
    pub ports: Vec<PortResult>,
    /// Services of the ports that have one.
    pub services: Vec<ServiceInfo>,
    /// Script findings.
    pub findings: Vec<Finding>,
}

/// Why nmap's output cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Not well-formed XML.
    #[error("nmap's XML is malformed at byte {at}: {detail}")]
    Xml {
        /// Byte offset.
        at: u64,
        /// What the parser said.
        detail: String,
    },
    /// No `<nmaprun>` document.
    #[error("the output is not an nmap XML report (no <nmaprun>)")]
    NotNmap,
    /// nmap said the run failed.
    #[error("nmap reported an error: {0}")]
    Failed(String),
    /// An attribute nmap always writes is missing or invalid.
    #[error("a <{element}> has no valid `{attribute}`")]
    Attribute {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
    },
}

/// Why a vuln-scan did not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum NmapError {
    /// nmap (or nsenter) could not be started.
    #[error("could not run nmap (install Debian's `nmap`)")]
    Spawn(#[source] std::io::Error),
    /// It ran longer than allowed and was killed.
    #[error("nmap did not finish within {0:?} and was stopped")]
    Timeout(Duration),
    /// It exited with an error.
    #[error("nmap exited with {status}: {stderr}")]
    Exit {
        /// Exit status.
        status: std::process::ExitStatus,
        /// The last lines it printed on stderr.
        stderr: String,
    },
    /// Its report did not parse.
    #[error("could not read nmap's report")]
    Report(#[source] ReportError),
    /// Nothing to scan.
    #[error("a vuln-scan needs at least one port")]
    Empty,
}

/// What to run nmap on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NmapSpec {
    /// The address the task sees its target at (`vir.ip`).
    pub target: Ipv4Addr,
    /// TCP ports.
    pub tcp: Vec<u16>,
    /// UDP ports.
    pub udp: Vec<u16>,
    /// The script selection ([`script_selection`]).
    pub scripts: String,
    /// Identify services and versions (`-sV`).
    pub service_detection: bool,
    /// Longest run allowed.
    pub timeout: Duration,
}

/// nmap's arguments for `spec` (after the program name).
pub fn arguments(spec: &NmapSpec) -> Vec<String> {
    let list = |v: &[u16]| v.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    let mut ports = Vec::new();
    if !spec.tcp.is_empty() {
        ports.push(format!("T:{}", list(&spec.tcp)));
    }
    if !spec.udp.is_empty() {
        ports.push(format!("U:{}", list(&spec.udp)));
    }
    let mut args: Vec<String> = ["-n", "-Pn", "--reason", "-oX", "-"].map(String::from).to_vec();
    if spec.service_detection {
        args.push("-sV".into());
    }
    args.push(if spec.udp.is_empty() { "-sS".into() } else { "-sSU".into() });
    args.extend(["--script".to_owned(), spec.scripts.clone(), "-p".to_owned(), ports.join(",")]);
    args.extend(["--host-timeout".to_owned(), format!("{}s", spec.timeout.as_secs().max(1))]);
    args.push(spec.target.to_string());
    args
}

/// Runs nmap inside the network namespace at `netns` (blocks until it ends or times out).
pub fn nmap_in(netns: &Path, spec: &NmapSpec) -> Result<NmapReport, NmapError> {
    if spec.tcp.is_empty() && spec.udp.is_empty() {
        return Err(NmapError::Empty);
    }
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .arg("nmap")
        .args(arguments(spec))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NmapError::Spawn)?;
    // Readers on their own threads, so a full pipe never stalls nmap.
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    // nmap's own --host-timeout usually ends it first; this is the backstop.
    let deadline = Instant::now() + spec.timeout + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(NmapError::Spawn)? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(NmapError::Timeout(spec.timeout));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    if !status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(NmapError::Exit { status, stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" / ") });
    }
    parse_report(&stdout).map_err(NmapError::Report)
}

fn attr(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

fn proto(e: &BytesStart<'_>) -> Result<Proto, ReportError> {
    match attr(e, b"protocol").as_deref() {
        Some("tcp") => Ok(Proto::Tcp),
        Some("udp") => Ok(Proto::Udp),
        _ => Err(ReportError::Attribute { element: "port", attribute: "protocol" }),
    }
}

fn state(s: &str) -> PortState {
    match s {
        "open" => PortState::Open,
        "closed" | "unfiltered" => PortState::Closed,
        "open|filtered" => PortState::OpenFiltered,
        _ => PortState::Filtered, // filtered, closed|filtered
    }
}

/// Parses nmap's XML report (`-oX`) of one target. Never panics, whatever the bytes.
pub fn parse_report(xml: &[u8]) -> Result<NmapReport, ReportError> {
    let mut reader = Reader::from_reader(xml);
    let mut report = NmapReport::default();
    let mut seen_run = false;
    // The port being read: (proto, port).
    let mut port: Option<(Proto, u16)> = None;
    let mut buf = Vec::new();
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| ReportError::Xml { at: reader.buffer_position(), detail: e.to_string() })?;
        let (e, empty) = match &ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(e) => {
                if e.name().as_ref() == b"port" {
                    port = None;
                }
                buf.clear();
                continue;
            }
            Event::Eof => break,
            _ => {
                buf.clear();
                continue;
            }
        };
        match e.name().as_ref() {
            b"nmaprun" => seen_run = true,
            b"finished" if attr(e, b"exit").as_deref() == Some("error") => {
                return Err(ReportError::Failed(attr(e, b"errormsg").unwrap_or_default()));
            }
            b"port" => {
                let number = attr(e, b"portid")
                    .and_then(|p| p.parse().ok())
                    .ok_or(ReportError::Attribute { element: "port", attribute: "portid" })?;
                port = (!empty).then_some((proto(e)?, number));
            }
            b"state" => {
                if let Some((proto, number)) = port {
                    let s = attr(e, b"state").ok_or(ReportError::Attribute { element: "state", attribute: "state" })?;
                    report.ports.push(PortResult { proto, port: number, state: state(&s) });
                }
            }
            b"service" => {
                if let Some((proto, number)) = port {
                    report.services.push(ServiceInfo {
                        proto,
                        port: number,
                        name: attr(e, b"name").unwrap_or_default(),
                        product: attr(e, b"product").unwrap_or_default(),
                        version: attr(e, b"version").unwrap_or_default(),
                        extra: attr(e, b"extrainfo").unwrap_or_default(),
                    });
                }
            }
            b"script" => {
                let (proto, number) = port.unwrap_or((Proto::Tcp, 0));
                report.findings.push(Finding {
                    proto,
                    port: number,
                    script: attr(e, b"id").ok_or(ReportError::Attribute { element: "script", attribute: "id" })?,
                    output: attr(e, b"output").unwrap_or_default().trim().to_owned(),
                });
            }
            _ => {}
        }
        buf.clear();
    }
    if !seen_run {
        return Err(ReportError::NotNmap);
    }
    report.ports.sort();
    report.ports.dedup();
    Ok(report)
}

#[cfg(test)]
#[path = "nmap_tests.rs"]
mod tests;
