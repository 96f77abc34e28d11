//! What changed between two scans of the same target: ports that opened or closed.

use serde::Serialize;

use crate::portscan::PortResult;
use crate::service::TaskRecord;

/// The difference between an earlier and a later scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
}

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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portscan::{PortState, Proto};
    use crate::service::TaskState;

    fn task(id: u32, target: &str, open: &[u16]) -> TaskRecord {
        let ports: Vec<PortResult> =
            open.iter().map(|&port| PortResult { proto: Proto::Tcp, port, state: PortState::Open }).collect();
        TaskRecord {
            id,
            tenant: "alpha".into(),
            target: target.into(),
            kind: "port-scan".into(),
            state: TaskState::Done,
            reason: None,
            started_ms: 0,
            duration_ms: 1.0,
            open: ports.clone(),
            ports,
        }
    }

    #[test]
    fn opened_and_closed_ports() {
        let d = diff(&task(1, "alpha/web1", &[22, 80]), &task(2, "alpha/web1", &[80, 443])).unwrap();
        assert_eq!(d.opened.iter().map(|p| p.port).collect::<Vec<_>>(), vec![443]);
        assert_eq!(d.closed.iter().map(|p| p.port).collect::<Vec<_>>(), vec![22]);
        let err = diff(&task(1, "alpha/web1", &[]), &task(3, "beta/web1", &[])).unwrap_err();
        assert_eq!(err.to_string(), "tasks 1 and 3 scanned different targets (alpha/web1 and beta/web1)");
    }
}
