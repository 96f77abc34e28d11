//! What changed between two scans of the same target: ports that opened or closed, services
//! whose product or version changed, and script findings that appeared or went away.

use crate::portscan::PortResult;
use crate::service::TaskRecord;

pub use palisade_api::scans::{ScanDiff, VersionChange};

/// Why two tasks cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tasks {0} and {1} scanned different targets ({2} and {3})")]
pub struct DiffError(pub u32, pub u32, pub String, pub String);

/// Compares the open ports of two tasks of one target.
pub fn diff(from: &TaskRecord, to: &TaskRecord) -> Result<ScanDiff, DiffError> {
    if from.target != to.target {
        return Err(DiffError(from.id, to.id, from.target.clone(), to.target.clone()));
    }
    let key = |p: &PortResult| (p.proto, p.port);
    let was: Vec<_> = from.open.iter().map(key).collect();
    let now: Vec<_> = to.open.iter().map(key).collect();
    Ok(ScanDiff {
        from: from.id,
        to: to.id,
        target: to.target.clone(),
        opened: to.open.iter().filter(|p| !was.contains(&key(p))).cloned().collect(),
        closed: from.open.iter().filter(|p| !now.contains(&key(p))).cloned().collect(),
        changed: to
            .services
            .iter()
            .filter_map(|after| {
                let before = from.services.iter().find(|b| (b.proto, b.port) == (after.proto, after.port))?;
                let (was, now) = (before.identity(), after.identity());
                (was != now).then_some(VersionChange { proto: after.proto, port: after.port, from: was, to: now })
            })
            .collect(),
        new_findings: to.findings.iter().filter(|f| !from.findings.contains(f)).cloned().collect(),
        gone_findings: from.findings.iter().filter(|f| !to.findings.contains(f)).cloned().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nmap::{Finding, ServiceInfo};
    use crate::portscan::{PortState, Proto};
    use crate::service::TaskState;
    use palisade_model::ScanKind;

    fn task(id: u32, target: &str, open: &[u16]) -> TaskRecord {
        let ports: Vec<PortResult> =
            open.iter().map(|&port| PortResult { proto: Proto::Tcp, port, state: PortState::Open }).collect();
        TaskRecord {
            id,
            tenant: "alpha".into(),
            target: target.into(),
            kind: ScanKind::PortScan,
            state: TaskState::Done,
            reason: None,
            detail: None,
            started_ms: 0,
            duration_ms: 1.0,
            open: ports.clone(),
            ports,
            services: Vec::new(),
            findings: Vec::new(),
        }
    }

    #[test]
    fn opened_and_closed_ports() {
        let d = diff(&task(1, "alpha/web1", &[22, 80]), &task(2, "alpha/web1", &[80, 443])).unwrap();
        assert_eq!(d.opened.iter().map(|p| p.port).collect::<Vec<_>>(), vec![443]);
        assert_eq!(d.closed.iter().map(|p| p.port).collect::<Vec<_>>(), vec![22]);
        assert!(d.changed.is_empty() && d.new_findings.is_empty() && d.gone_findings.is_empty());
        let err = diff(&task(1, "alpha/web1", &[]), &task(3, "beta/web1", &[])).unwrap_err();
        assert_eq!(err.to_string(), "tasks 1 and 3 scanned different targets (alpha/web1 and beta/web1)");
    }

    #[test]
    fn version_changes_and_findings_that_came_and_went() {
        let service = |version: &str| ServiceInfo {
            proto: Proto::Tcp,
            port: 80,
            name: "http".into(),
            product: "Apache httpd".into(),
            version: version.into(),
            extra: String::new(),
        };
        let finding = |script: &str| Finding { proto: Proto::Tcp, port: 80, script: script.into(), output: "x".into() };
        let mut a = task(1, "alpha/web1", &[80]);
        a.services = vec![service("2.4.57")];
        a.findings = vec![finding("http-git")];
        let mut b = task(2, "alpha/web1", &[80]);
        b.services = vec![service("2.4.62")];
        b.findings = vec![finding("http-trace")];

        let d = diff(&a, &b).unwrap();

        assert_eq!(d.changed.len(), 1);
        assert_eq!(
            (d.changed[0].from.as_str(), d.changed[0].to.as_str()),
            ("http Apache httpd 2.4.57", "http Apache httpd 2.4.62")
        );
        assert_eq!(d.new_findings, [finding("http-trace")]);
        assert_eq!(d.gone_findings, [finding("http-git")]);
        assert!(diff(&a, &a).unwrap().changed.is_empty());
    }
}
