//! The scan service: runs one task end to end — addresses, task space, flows, engine, cleanup.
//!
//! ```text
//!  run(target) ─ pool.allocate ─ TaskSpace::create ─ compile_task ─ TaskFlows::setup (1 bundle)
//!              ─ scan_in | nmap_in (task netns) ─ TaskFlows::teardown (1 bundle) ─ space.remove
//!              ─ pool.release
//! ```
//! Whatever step fails, everything made before it is removed and the task is recorded as
//! failed: its [`FailureReason`] (what tenants are told) from [`TaskError::reason`], and the
//! error with its causes as the record's operator-only `detail` and in the log. At start, the
//! service removes what a crashed predecessor left (task namespaces, ports and flows).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use palisade_host::{chain, ErrorChain};
use palisade_model::inventory::Inventory;
use palisade_model::ScanKind;
use palisade_ovs::Switch;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::flows::{compile_task, Target, TargetError};
use crate::manager::{FlowError, TaskFlows};
use crate::nmap::{nmap_in, Finding, NmapError, NmapSpec, ServiceInfo};
use crate::pool::{AddressPool, PoolError, TaskAddrs};
use crate::portscan::{scan_in, PortResult, ScanSpec};
use crate::records::{RecordError, TaskRecords};
use crate::space::{self, SpaceError, TaskSpace};
use crate::task::{Naming, TaskId};

pub use palisade_api::scans::{FailureReason, TaskRecord, TaskState};

/// What a scan probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// TCP ports.
    pub tcp: Vec<u16>,
    /// UDP ports.
    #[serde(default)]
    pub udp: Vec<u16>,
    /// Probes in flight at once.
    pub concurrency: usize,
    /// Per-probe timeout, ms.
    pub timeout_ms: u64,
    /// The engine: the built-in port scanner or nmap with offline vulnerability scripts.
    #[serde(default)]
    pub kind: ScanKind,
    /// vuln-scan: identify services and versions.
    #[serde(default = "yes")]
    pub service_detection: bool,
    /// vuln-scan: only these scripts (of the offline-safe set); empty: all of that set.
    #[serde(default)]
    pub scripts: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Longest a vuln-scan task's nmap may run.
pub const VULN_SCAN_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for Profile {
    fn default() -> Self {
        Self {
            tcp: (1..=1024).chain([3306, 5432, 6379, 8080, 8081, 8082, 8443]).collect(),
            udp: Vec::new(),
            concurrency: 256,
            timeout_ms: 500,
            kind: ScanKind::PortScan,
            service_detection: true,
            scripts: Vec::new(),
        }
    }
}

/// What a finished task found.
#[derive(Debug, Default)]
struct Found {
    ports: Vec<PortResult>,
    services: Vec<ServiceInfo>,
    findings: Vec<Finding>,
}

/// Why a task could not run (it is recorded as failed with [`TaskError::reason`]).
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// No address pair left.
    #[error("no task address is free")]
    Pool(#[source] PoolError),
    /// The space could not be made.
    #[error("could not create the task space")]
    Space(#[source] SpaceError),
    /// The space was made but its port is not on the bridge.
    #[error("the task space's port is not on the bridge")]
    SpacePort(#[source] TargetError),
    /// The space could not be removed.
    #[error("could not remove the task space")]
    SpaceRemove(#[source] SpaceError),
    /// The switch could not be read or refused the flows.
    #[error("could not install the task's flows")]
    Flows(#[source] FlowError),
    /// The switch did not take the task's flows out.
    #[error("could not remove the task's flows")]
    FlowsRemove(#[source] FlowError),
    /// The target cannot be reached by a task (e.g. its port is not on the bridge).
    #[error("the target cannot be reached")]
    Target(#[source] TargetError),
    /// Reading the switch's ports failed.
    #[error("could not read the switch's ports")]
    Ports(#[source] palisade_ovs::OvsError),
    /// The engine failed.
    #[error("the scan engine failed")]
    Engine(#[source] crate::portscan::EngineError),
    /// nmap failed.
    #[error("the vuln-scan engine (nmap) failed")]
    Nmap(#[source] NmapError),
    /// The task store failed.
    #[error("could not record the task")]
    Store(#[source] RecordError),
}

impl TaskError {
    /// What tenants are told about this failure (the causes are the operator's).
    pub fn reason(&self) -> FailureReason {
        match self {
            Self::Pool(_) => FailureReason::NoFreeAddress,
            Self::Space(_) | Self::SpacePort(_) => FailureReason::SpaceCreate,
            Self::SpaceRemove(_) => FailureReason::SpaceRemove,
            Self::Flows(_) => FailureReason::FlowsRefused,
            Self::FlowsRemove(_) => FailureReason::FlowsRemove,
            Self::Target(TargetError::NoPort(_) | TargetError::PortMissing(_)) => FailureReason::TargetNotAttached,
            Self::Target(_) => FailureReason::TargetUnreachable,
            Self::Ports(_) => FailureReason::SwitchUnreadable,
            Self::Engine(_) => FailureReason::EngineFailed,
            Self::Nmap(NmapError::Timeout(_)) => FailureReason::NmapTimedOut,
            Self::Nmap(_) => FailureReason::NmapFailed,
            Self::Store(_) => FailureReason::StoreFailed,
        }
    }
}

/// Records `e` as `rec`'s failure: the reason for everyone, the error with its causes as the
/// operator's `detail`.
fn fail(rec: &mut TaskRecord, e: &TaskError) {
    rec.state = TaskState::Failed;
    rec.reason = Some(e.reason());
    rec.detail = Some(chain(e));
}

/// The scan service of one bridge.
#[derive(Debug)]
pub struct ScanService {
    bridge: String,
    naming: Naming,
    flows: TaskFlows,
    pool: Mutex<AddressPool>,
    next: AtomicU32,
    store: TaskRecords,
}

impl ScanService {
    /// A service on `bridge` through `switch`, with task names from `naming` and addresses from
    /// `pool`, recording tasks in the controller's `store`. Removes whatever a previous service
    /// left behind, marks the tasks it left running as failed, and numbers new tasks after the
    /// stored ones.
    pub fn start(
        bridge: &str,
        switch: Arc<dyn Switch>,
        naming: Naming,
        pool: AddressPool,
        store: Arc<dyn palisade_store::Store>,
    ) -> Result<Self, TaskError> {
        let flows = TaskFlows::new(switch);
        let store = TaskRecords::new(store);
        let interrupted = store.fail_interrupted().map_err(TaskError::Store)?;
        if interrupted > 0 {
            warn!(tasks = interrupted, "scan tasks were cut short by a crash; marked failed");
        }
        let next = store.last_id().map_err(TaskError::Store)?.saturating_add(1);
        let spaces = space::purge_orphans(&naming, bridge).map_err(TaskError::Space)?;
        let cookies = flows.purge_orphans().map_err(TaskError::Flows)?;
        if !spaces.is_empty() || cookies > 0 {
            warn!(spaces = spaces.len(), flow_owners = cookies, "removed task spaces and flows left by a previous run");
        }
        Ok(Self { bridge: bridge.to_owned(), naming, flows, pool: Mutex::new(pool), next: AtomicU32::new(next), store })
    }

    fn pool(&self) -> MutexGuard<'_, AddressPool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks the pool against the desired state (no tenant subnet may overlap it).
    pub fn check_pool(&self, inv: &Inventory) -> Result<(), PoolError> {
        self.pool().check_against(inv)
    }

    /// Runs a task of `profile.kind` against `target` now, blocking until it is finished, and records it.
    pub fn run(&self, target: &Target, profile: &Profile) -> TaskRecord {
        let id = TaskId(self.next.fetch_add(1, Ordering::Relaxed));
        let started = std::time::Instant::now();
        let started_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let mut rec = TaskRecord {
            id: id.0,
            tenant: target.tenant.to_string(),
            target: target.key(),
            kind: profile.kind,
            state: TaskState::Running,
            reason: None,
            detail: None,
            started_ms,
            duration_ms: 0.0,
            open: Vec::new(),
            ports: Vec::new(),
            services: Vec::new(),
            findings: Vec::new(),
        };
        if let Err(e) = self.store.put(&rec) {
            warn!(task = %id, error = %ErrorChain(&e), "could not record the task's start");
        }
        match self.run_task(id, target, profile) {
            Ok(found) => {
                rec.state = TaskState::Done;
                rec.open = found.ports.iter().filter(|p| p.state == crate::PortState::Open).cloned().collect();
                rec.ports = found.ports;
                rec.services = found.services;
                rec.findings = found.findings;
            }
            Err(e) => {
                warn!(task = %id, target = %rec.target, error = %ErrorChain(&e), "scan task failed");
                fail(&mut rec, &e);
            }
        }
        rec.duration_ms = started.elapsed().as_secs_f64() * 1e3;
        info!(task = %id, target = %rec.target, open = rec.open.len(), ms = rec.duration_ms, "scan task finished");
        if let Err(e) = self.store.put(&rec) {
            let e = TaskError::Store(e);
            warn!(task = %id, error = %ErrorChain(&e), "could not record the task's result");
            fail(&mut rec, &e);
        }
        rec
    }

    fn run_task(&self, id: TaskId, target: &Target, profile: &Profile) -> Result<Found, TaskError> {
        let (addrs, net) = {
            let mut pool = self.pool();
            (pool.allocate().map_err(TaskError::Pool)?, pool.net())
        };
        let released = Release { service: self, addrs };
        let space = TaskSpace::create(&self.naming, id, addrs, &self.bridge).map_err(TaskError::Space)?;
        let ports = self.flows.switch().ports().map_err(TaskError::Ports)?;
        let rules = compile_task(id, &addrs, space.name(), target, net, &ports).map_err(|e| match e {
            TargetError::PortMissing(port) if port == space.name() => {
                TaskError::SpacePort(TargetError::PortMissing(port))
            }
            other => TaskError::Target(other),
        })?;
        self.flows.setup(id, &rules).map_err(TaskError::Flows)?;
        let scanned = match profile.kind {
            ScanKind::PortScan => {
                let spec = ScanSpec {
                    target: addrs.vir.ip,
                    tcp: profile.tcp.clone(),
                    udp: profile.udp.clone(),
                    concurrency: profile.concurrency.max(1),
                    timeout: Duration::from_millis(profile.timeout_ms),
                };
                scan_in(&space.netns_path(), spec)
                    .map(|r| Found { ports: r.ports, ..Found::default() })
                    .map_err(TaskError::Engine)
            }
            ScanKind::VulnScan => {
                let spec = NmapSpec {
                    target: addrs.vir.ip,
                    tcp: profile.tcp.clone(),
                    udp: profile.udp.clone(),
                    scripts: crate::nmap::script_selection(&profile.scripts),
                    service_detection: profile.service_detection,
                    timeout: VULN_SCAN_TIMEOUT,
                };
                nmap_in(&space.netns_path(), &spec)
                    .map(|r| Found { ports: r.ports, services: r.services, findings: r.findings })
                    .map_err(TaskError::Nmap)
            }
        };
        let (down, removed) = teardown(&self.flows, id, space);
        let (down, removed) = (down.map_err(TaskError::FlowsRemove), removed.map_err(TaskError::SpaceRemove));
        drop(released);
        let found = scanned?;
        down?;
        removed?;
        Ok(found)
    }

    /// Tasks recorded, oldest first; `tenant` limits them to one tenant's.
    pub fn tasks(&self, tenant: Option<&str>) -> Result<Vec<TaskRecord>, RecordError> {
        self.store.list(tenant)
    }

    /// One task, if recorded.
    pub fn task(&self, id: u32) -> Result<Option<TaskRecord>, RecordError> {
        self.store.get(id)
    }
}

/// Tears a task down: its flows (one bundle) and its space. The two do not depend on each other,
/// so they run at once; each result is returned.
pub fn teardown(flows: &TaskFlows, id: TaskId, space: TaskSpace) -> (Result<(), FlowError>, Result<(), SpaceError>) {
    std::thread::scope(|s| {
        let removed = s.spawn(move || space.remove());
        let down = flows.teardown(id);
        (down, removed.join().unwrap_or(Err(SpaceError::Panicked)))
    })
}

/// Returns a task's addresses to the pool however the task ends.
struct Release<'a> {
    service: &'a ScanService,
    addrs: TaskAddrs,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.service.pool().release(&self.addrs) {
            warn!(error = %e, "task addresses were not in the pool");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;
    use crate::portscan::EngineError;

    fn record() -> TaskRecord {
        TaskRecord {
            id: 1,
            tenant: "alpha".into(),
            target: "alpha/web1".into(),
            kind: ScanKind::VulnScan,
            state: TaskState::Running,
            reason: None,
            detail: None,
            started_ms: 0,
            duration_ms: 0.0,
            open: Vec::new(),
            ports: Vec::new(),
            services: Vec::new(),
            findings: Vec::new(),
        }
    }

    fn ovs_failed() -> palisade_ovs::OvsError {
        palisade_ovs::OvsError::Failed {
            command: "ovs-ofctl dump-ports-desc pal0".into(),
            stderr: "no such bridge".into(),
        }
    }

    #[test]
    fn each_task_error_names_its_reason() {
        let space = || SpaceError::Exists("pst-00000001".into());
        let cases = [
            (TaskError::Pool(PoolError::Exhausted("100.64.0.0/30".parse().unwrap())), FailureReason::NoFreeAddress),
            (TaskError::Space(space()), FailureReason::SpaceCreate),
            (TaskError::SpacePort(TargetError::PortMissing("pst-00000001".into())), FailureReason::SpaceCreate),
            (TaskError::SpaceRemove(space()), FailureReason::SpaceRemove),
            (TaskError::Flows(FlowError::Duplicate(TaskId(1))), FailureReason::FlowsRefused),
            (TaskError::FlowsRemove(FlowError::Read(ovs_failed())), FailureReason::FlowsRemove),
            (TaskError::Target(TargetError::PortMissing("pa-web1".into())), FailureReason::TargetNotAttached),
            (TaskError::Target(TargetError::NoPort("alpha/web1".into())), FailureReason::TargetNotAttached),
            (TaskError::Target(TargetError::NoGatewayMac("alpha/web1".into())), FailureReason::TargetUnreachable),
            (TaskError::Ports(ovs_failed()), FailureReason::SwitchUnreadable),
            (TaskError::Engine(EngineError::Empty), FailureReason::EngineFailed),
            (TaskError::Nmap(NmapError::Timeout(VULN_SCAN_TIMEOUT)), FailureReason::NmapTimedOut),
            (TaskError::Nmap(NmapError::Empty), FailureReason::NmapFailed),
            (
                TaskError::Store(RecordError::Store(palisade_store::StoreError::SchemaTooNew {
                    found: 5,
                    supported: 4,
                })),
                FailureReason::StoreFailed,
            ),
        ];
        for (error, reason) in cases {
            assert_eq!(error.reason(), reason, "{error}");
        }
    }

    /// Tenants read the reason; the command, its output and paths stay in the operator's detail.
    #[test]
    fn a_failure_tells_tenants_the_reason_and_the_operator_the_causes() {
        let e = TaskError::Nmap(NmapError::Exit {
            status: std::process::ExitStatus::from_raw(256),
            stderr: "Failed to open /usr/share/nmap/nse_main.lua".into(),
        });
        let mut rec = record();

        fail(&mut rec, &e);

        assert_eq!((rec.state, rec.reason.clone()), (TaskState::Failed, Some(FailureReason::NmapFailed)));
        let detail = rec.detail.clone().unwrap_or_default();
        assert!(detail.starts_with("the vuln-scan engine (nmap) failed: nmap exited with"), "{detail}");
        assert!(detail.contains("/usr/share/nmap/nse_main.lua"), "{detail}");
        let tenant = serde_json::to_string(&rec.for_tenant()).unwrap();
        assert!(tenant.contains(r#""reason":"the vuln-scan engine (nmap) failed""#), "{tenant}");
        assert!(!tenant.contains("nse_main") && !tenant.contains("detail"), "{tenant}");
    }
}
