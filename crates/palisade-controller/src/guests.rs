//! The controller's boundary to guest runtimes: VMs that are real QEMU guests, and what
//! Palisade learns about them from outside (their kernel's symbol table).
//!
//! The real runtime (`palisade_runtime`-style QEMU management) and an in-memory fake both
//! implement [`GuestRuntime`]; the controller only says which guests should run and asks
//! for their state and symbols.

use std::fmt::Debug;
use std::net::Ipv4Addr;
use std::sync::Arc;

use palisade_model::{GuestSpec, Inventory, MacAddr, Name, PortName};
use serde::Serialize;

use crate::monitors::{self, EventPage, MonitorPlan};

/// A guest the desired state says should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGuest {
    /// Owning tenant.
    pub tenant: Name,
    /// VM name.
    pub name: Name,
    /// How to boot it.
    pub spec: GuestSpec,
    /// Its tap device, which is also its switch port.
    pub port: PortName,
    /// Its NIC's MAC.
    pub mac: MacAddr,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Prefix length of its subnet.
    pub prefix_len: u8,
    /// Its subnet's gateway.
    pub gateway: Ipv4Addr,
    /// VLAN tag of its domain (the access tag of its port).
    pub vlan: u16,
    /// The merged plan of the monitor policies targeting it, if any (see [`monitors`]).
    pub monitor: Option<MonitorPlan>,
}

impl DesiredGuest {
    /// `tenant/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.tenant, self.name)
    }

    /// Whether `other` boots the same machine (everything but the monitor plan is equal): a
    /// changed plan never restarts a guest.
    pub fn same_machine(&self, other: &DesiredGuest) -> bool {
        DesiredGuest { monitor: None, ..self.clone() } == DesiredGuest { monitor: None, ..other.clone() }
    }
}

/// Every guest VM in `inv`, in key order.
pub fn desired_guests(inv: &Inventory) -> Vec<DesiredGuest> {
    let mut out = Vec::new();
    let mut plans = monitors::plans(inv);
    for (key, vm) in inv.vms() {
        let (Some(spec), Some(port), Some(tenant)) = (&vm.guest, &vm.port, &key.tenant) else { continue };
        let Some(sub) = inv.subdomain(tenant, &vm.subdomain) else { continue };
        let Some(domain) = inv.domain(tenant, &sub.domain) else { continue };
        out.push(DesiredGuest {
            tenant: tenant.clone(),
            name: key.name.clone(),
            spec: spec.clone(),
            port: port.clone(),
            mac: vm.mac,
            ip: vm.ip,
            prefix_len: sub.cidr.prefix_len(),
            gateway: sub.gateway,
            vlan: domain.segment,
            monitor: plans.remove(&format!("{tenant}/{}", key.name)),
        });
    }
    out
}

pub use palisade_api::guests::{GuestState, GuestStatus, MonitorState, MonitorStatus, SymbolEntry};

/// A guest kernel's symbol table, recovered from guest memory alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolTable {
    /// Runtime virtual address of `_text`.
    pub virt_base: u64,
    /// Guest physical address of `_text`.
    pub phys_base: u64,
    /// KASLR displacement against 0xffffffff81000000.
    pub kaslr_slide: i64,
    /// How the tables were laid out (for the curious and for bug reports).
    pub layout: String,
    /// Milliseconds the recovery took.
    pub recovery_ms: u64,
    /// The symbols in the kernel's order.
    pub symbols: Vec<SymbolEntry>,
}

/// Why a guest question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum GuestRuntimeError {
    /// No such guest.
    #[error("guest {0} not found")]
    NotFound(String),
    /// The guest is not running (yet).
    #[error("guest {vm} is {state:?}, not running: {detail}")]
    NotRunning {
        /// `tenant/name`.
        vm: String,
        /// Its state.
        state: GuestState,
        /// Why.
        detail: String,
    },
    /// Introspection failed.
    #[error("introspection of guest {vm} failed: {message}")]
    Introspection {
        /// `tenant/name`.
        vm: String,
        /// What failed, with its causes.
        message: String,
    },
}

/// Runs guests and looks into them.
pub trait GuestRuntime: Send + Sync + Debug {
    /// Brings the running guests to `desired`: starts missing ones (in the background), stops
    /// ones no longer wanted. Returns at once.
    fn reconcile(&self, desired: &[DesiredGuest]);
    /// Every guest the runtime knows, in id order.
    fn status(&self) -> Vec<GuestStatus>;
    /// The guest kernel's symbol table (recovered once per boot, then cached).
    fn symbols(&self, vm: &str) -> Result<Arc<SymbolTable>, GuestRuntimeError>;
    /// Whether it enforces [`DesiredGuest::monitor`] plans.
    fn enforces_monitors(&self) -> bool {
        false
    }
    /// Up to `limit` of the guest's recent monitor events after sequence `after`.
    fn events(&self, vm: &str, _after: u64, _limit: usize) -> Result<EventPage, GuestRuntimeError> {
        Err(GuestRuntimeError::NotFound(vm.to_owned()))
    }
}

/// A runtime with no guests: for controllers that run none, and for tests.
#[derive(Debug, Default)]
pub struct NoGuests;

impl GuestRuntime for NoGuests {
    fn reconcile(&self, _desired: &[DesiredGuest]) {}

    fn status(&self) -> Vec<GuestStatus> {
        Vec::new()
    }

    fn symbols(&self, vm: &str) -> Result<Arc<SymbolTable>, GuestRuntimeError> {
        Err(GuestRuntimeError::NotFound(vm.to_owned()))
    }
}

/// An in-memory runtime for unit tests: every desired guest "runs" at once and answers with
/// the symbol table it was given; a guest with a monitor plan is "monitored" at once and has
/// the events tests push.
#[derive(Debug)]
pub struct FakeGuests {
    table: Arc<SymbolTable>,
    running: std::sync::Mutex<Vec<DesiredGuest>>,
    events: std::sync::Mutex<std::collections::BTreeMap<String, monitors::EventRing>>,
}

impl FakeGuests {
    /// A fake whose every guest has `table`.
    pub fn new(table: SymbolTable) -> Self {
        Self { table: Arc::new(table), running: std::sync::Mutex::new(Vec::new()), events: Default::default() }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Vec<DesiredGuest>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an event to guest `vm`'s recent events (numbered by the ring).
    pub fn push_event(&self, vm: &str, event: monitors::MonitorEvent) {
        let mut rings = self.events.lock().unwrap_or_else(|e| e.into_inner());
        rings.entry(vm.to_owned()).or_insert_with(|| monitors::EventRing::new(1024)).push(event);
    }
}

impl GuestRuntime for FakeGuests {
    fn reconcile(&self, desired: &[DesiredGuest]) {
        *self.running() = desired.to_vec();
    }

    fn status(&self) -> Vec<GuestStatus> {
        self.running()
            .iter()
            .map(|g| GuestStatus {
                vm: g.id(),
                state: GuestState::Running,
                detail: "fake".to_owned(),
                accel: Some("tcg".to_owned()),
                pid: None,
                memory_mb: g.spec.memory_mb,
                vcpus: g.spec.vcpus,
                port: g.port.to_string(),
                monitor: g.monitor.as_ref().map(|p| MonitorStatus {
                    state: MonitorState::Active,
                    detail: "fake".to_owned(),
                    method: Some("fentry".to_owned()),
                    syscalls: p.syscalls.iter().map(|n| n.to_string()).collect(),
                    rules: p.rules.len(),
                    events: 0,
                    lost: 0,
                }),
            })
            .collect()
    }

    fn enforces_monitors(&self) -> bool {
        true
    }

    fn events(&self, vm: &str, after: u64, limit: usize) -> Result<EventPage, GuestRuntimeError> {
        if !self.running().iter().any(|g| g.id() == vm) {
            return Err(GuestRuntimeError::NotFound(vm.to_owned()));
        }
        let rings = self.events.lock().unwrap_or_else(|e| e.into_inner());
        Ok(rings.get(vm).map(|r| r.page(after, limit)).unwrap_or_default())
    }

    fn symbols(&self, vm: &str) -> Result<Arc<SymbolTable>, GuestRuntimeError> {
        if self.running().iter().any(|g| g.id() == vm) {
            Ok(self.table.clone())
        } else {
            Err(GuestRuntimeError::NotFound(vm.to_owned()))
        }
    }
}
