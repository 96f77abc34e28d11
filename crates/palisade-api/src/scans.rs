//! Type 2 scan tasks (issue #7): the request that starts one, the task as recorded with its
//! findings, why a task failed, and what changed between two scans of one target.
//!
//! ```text
//!   POST /v1/scans                          ScanRequest -> TaskRecord
//!   POST /v1/scans/policy/{tenant}/{name}                  -> [TaskRecord]
//!   GET  /v1/scans                                         -> [TaskRecord]
//!   palisade scan diff (two tasks of GET /v1/scans)        -> ScanDiff
//! ```
//! A failed task carries a [`FailureReason`]: on the wire, its message, which any tenant may
//! read. The error chain behind it (commands, their output, paths) is the operator's: it goes
//! to the controller's log and to `detail`, which only the admin token is shown
//! ([`TaskRecord::for_tenant`]).

use std::fmt;

use palisade_model::ScanKind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `POST /v1/scans`: scan one VM now. An absent field takes the default port-scan profile's
/// value; the controller checks the ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// `tenant/vm`.
    pub target: String,
    /// TCP ports (default: 1-1024 and a few common higher ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Vec<u16>>,
    /// UDP ports (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<Vec<u16>>,
    /// Probes in flight at once (1-1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Per-probe timeout in ms (1-10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `port-scan` (default) or `vuln-scan` (nmap with service detection and the offline-safe
    /// vulnerability scripts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ScanKind>,
    /// vuln-scan only: identify services and versions (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_detection: Option<bool>,
    /// vuln-scan only: just these scripts of the offline-safe set (default all of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scripts: Option<Vec<String>>,
}

/// The state of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Running now (or cut short by a crash, until the next start marks it failed).
    Running,
    /// Finished; its findings are complete.
    Done,
    /// Failed; `reason` says why. Its space and flows were removed.
    Failed,
}

impl TaskState {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// A scan task as recorded: `GET /v1/scans` lists these, `POST /v1/scans` answers with one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Task id.
    pub id: u32,
    /// The tenant scanned.
    pub tenant: String,
    /// `tenant/vm`.
    pub target: String,
    /// The engine that ran.
    pub kind: ScanKind,
    /// Running, done or failed.
    pub state: TaskState,
    /// Why it failed, in words any tenant may read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
    /// The operator's account of the failure: the error with its causes (commands, their
    /// output). Kept in the store; only the admin token is shown it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Start, ms since the epoch.
    pub started_ms: i64,
    /// Wall time of the whole task (setup, scan, teardown), ms.
    pub duration_ms: f64,
    /// The open ports found.
    pub open: Vec<PortResult>,
    /// Every probe's outcome.
    pub ports: Vec<PortResult>,
    /// What the open ports run (vuln-scan: nmap's service detection).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceInfo>,
    /// What the vulnerability scripts reported (vuln-scan).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

impl TaskRecord {
    /// The record as a tenant sees it: without the operator's `detail`.
    #[must_use]
    pub fn for_tenant(self) -> Self {
        Self { detail: None, ..self }
    }
}

/// Why a task failed, as tenants are told. On the wire it is its message (a string), so a
/// reader that does not know a newer reason still reads it (as [`FailureReason::Other`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// Every address pair of the task pool is in use.
    NoFreeAddress,
    /// The task's namespace, veth or switch port could not be made.
    SpaceCreate,
    /// The task ran, but its space could not be removed.
    SpaceRemove,
    /// The switch could not be read or refused the task's flows.
    FlowsRefused,
    /// The task ran, but the switch did not take its flows out.
    FlowsRemove,
    /// The switch's ports could not be read.
    SwitchUnreadable,
    /// The target VM has no port on the switch (not attached, or not running).
    TargetNotAttached,
    /// The target cannot be reached by a task for another reason.
    TargetUnreachable,
    /// The built-in port scanner failed.
    EngineFailed,
    /// nmap could not be run or failed.
    NmapFailed,
    /// nmap did not finish within the time a vuln-scan may take.
    NmapTimedOut,
    /// The scan engine (the controller) stopped while the task ran, e.g. a crash; the next
    /// start removed the task's space and flows.
    EngineStopped,
    /// The task store failed.
    StoreFailed,
    /// A reason this reader does not know (a newer controller's, or an older record's): its
    /// first sentence.
    Other(String),
}

impl FailureReason {
    /// Every reason but [`FailureReason::Other`].
    pub const KNOWN: [FailureReason; 13] = [
        Self::NoFreeAddress,
        Self::SpaceCreate,
        Self::SpaceRemove,
        Self::FlowsRefused,
        Self::FlowsRemove,
        Self::SwitchUnreadable,
        Self::TargetNotAttached,
        Self::TargetUnreachable,
        Self::EngineFailed,
        Self::NmapFailed,
        Self::NmapTimedOut,
        Self::EngineStopped,
        Self::StoreFailed,
    ];

    /// What tenants are told: no commands, paths or tool output. No message contains `": "`,
    /// which older records used to join a reason to its causes.
    pub fn message(&self) -> &str {
        match self {
            Self::NoFreeAddress => "no task address is free",
            Self::SpaceCreate => "could not create the task space",
            Self::SpaceRemove => "could not remove the task space",
            Self::FlowsRefused => "could not install the task's flows",
            Self::FlowsRemove => "could not remove the task's flows",
            Self::SwitchUnreadable => "could not read the switch's ports",
            Self::TargetNotAttached => "the target VM has no port on the switch",
            Self::TargetUnreachable => "the target cannot be reached",
            Self::EngineFailed => "the scan engine failed",
            Self::NmapFailed => "the vuln-scan engine (nmap) failed",
            Self::NmapTimedOut => "the vuln-scan engine (nmap) did not finish in time",
            Self::EngineStopped => {
                "the scan engine stopped while the task ran; its space and flows were removed at restart"
            }
            Self::StoreFailed => "could not record the task",
            Self::Other(message) => message,
        }
    }

    /// The reason a message names. Records written before reasons were typed hold
    /// `reason: cause: cause`; their first sentence names the reason. Anything else is
    /// [`FailureReason::Other`] with that first sentence. Never fails.
    pub fn from_message(message: &str) -> Self {
        let head = message.split(": ").next().unwrap_or_default().trim();
        Self::KNOWN.into_iter().find(|r| r.message() == head).unwrap_or_else(|| Self::Other(head.to_owned()))
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl Serialize for FailureReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.message())
    }
}

impl<'de> Deserialize<'de> for FailureReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let message = String::deserialize(d)?;
        Ok(Self::from_message(&message))
    }
}

/// Transport protocol of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP connect.
    Tcp,
    /// UDP probe.
    Udp,
}

impl Proto {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PortState {
    /// Connection accepted / datagram answered.
    Open,
    /// Connection refused.
    Closed,
    /// No answer within the timeout (TCP).
    Filtered,
    /// No answer within the timeout (UDP: open or filtered).
    OpenFiltered,
    /// The task space has no path there (its flows or routes forbid it).
    Unreachable,
}

/// One probed port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortResult {
    /// Protocol.
    pub proto: Proto,
    /// Port.
    pub port: u16,
    /// Outcome.
    pub state: PortState,
}

/// What one port runs, as nmap's service detection names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Protocol.
    pub proto: Proto,
    /// Port.
    pub port: u16,
    /// Service name (`http`, `ssh`).
    pub name: String,
    /// Product (`Apache httpd`), when identified.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub product: String,
    /// Version (`2.4.57`), when identified.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Further detail (`(Debian)`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub extra: String,
}

impl ServiceInfo {
    /// `name product version`, the parts that are known, as a diff compares them.
    pub fn identity(&self) -> String {
        [&self.name, &self.product, &self.version]
            .iter()
            .flat_map(|s| s.split_whitespace())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One script's report about a port (or the host, with port 0).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    /// Protocol of the port (TCP for host scripts).
    pub proto: Proto,
    /// The port, 0 for a host-level script.
    pub port: u16,
    /// The script (`http-git`).
    pub script: String,
    /// What it reported.
    pub output: String,
}

/// The difference between an earlier and a later scan of one target (`palisade scan diff`,
/// made from two tasks of `GET /v1/scans`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanDiff {
    /// The earlier task.
    pub from: u32,
    /// The later task.
    pub to: u32,
    /// The target both scanned.
    pub target: String,
    /// Open in `to`, not in `from`.
    pub opened: Vec<PortResult>,
    /// Open in `from`, not in `to`.
    pub closed: Vec<PortResult>,
    /// Ports open in both whose identified product or version differs.
    pub changed: Vec<VersionChange>,
    /// Findings in `to`, not in `from` (same script, port and output).
    pub new_findings: Vec<Finding>,
    /// Findings in `from`, not in `to`.
    pub gone_findings: Vec<Finding>,
}

/// A service whose product or version changed between two scans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionChange {
    /// Protocol.
    pub proto: Proto,
    /// Port.
    pub port: u16,
    /// `name product version` before ([`ServiceInfo::identity`]).
    pub from: String,
    /// `name product version` after.
    pub to: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_back_from_their_messages_and_older_records() {
        for r in FailureReason::KNOWN {
            assert!(!r.message().contains(": "), "{r}");
            assert_eq!(FailureReason::from_message(r.message()), r);
        }
        // A record written before reasons were typed: the reason and its causes.
        let old = "could not create the task space: `ip netns add pst-00000001` failed: File exists";
        assert_eq!(FailureReason::from_message(old), FailureReason::SpaceCreate);
        let unknown = "the moon is in the way: of the probes";
        assert_eq!(FailureReason::from_message(unknown), FailureReason::Other("the moon is in the way".into()));
        assert_eq!(FailureReason::from_message(""), FailureReason::Other(String::new()));
    }

    #[test]
    fn a_tenant_never_sees_the_detail() {
        let rec: TaskRecord = serde_json::from_value(serde_json::json!({
            "id": 1, "tenant": "alpha", "target": "alpha/web1", "kind": "vuln-scan", "state": "failed",
            "reason": "the vuln-scan engine (nmap) failed",
            "detail": "the vuln-scan engine (nmap) failed: nmap exited with 1: /usr/bin/nmap: bad",
            "started_ms": 0, "duration_ms": 1.0, "open": [], "ports": [],
        }))
        .expect("a task record");
        assert_eq!(rec.reason, Some(FailureReason::NmapFailed));

        let shown = serde_json::to_value(rec.clone().for_tenant()).expect("serialises");

        assert_eq!(shown["reason"], "the vuln-scan engine (nmap) failed");
        assert!(shown.get("detail").is_none(), "{shown}");
        assert!(!shown.to_string().contains("/usr/bin"), "{shown}");
        assert!(serde_json::to_value(rec).expect("serialises")["detail"].is_string());
    }
}
