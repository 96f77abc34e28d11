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

/// Where a guest is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestState {
    /// Images are being prepared or the kernel is booting.
    Starting,
    /// Booted and ready for introspection.
    Running,
    /// Its QEMU exited (the guest powered off or crashed); not restarted automatically.
    Stopped,
    /// It could not be started; `detail` says why.
    Failed,
}

/// A guest as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestStatus {
    /// `tenant/name`.
    pub vm: String,
    /// Its state.
    pub state: GuestState,
    /// Human detail: the accelerator and why, or the failure.
    pub detail: String,
    /// `kvm` or `tcg`, once started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accel: Option<String>,
    /// QEMU's process id, while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Guest RAM in MiB.
    pub memory_mb: u32,
    /// vCPUs.
    pub vcpus: u8,
    /// Tap device / switch port.
    pub port: String,
    /// Its monitor, when monitor policies target it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorStatus>,
}

/// Where a guest's monitor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MonitorState {
    /// Waiting for the guest to run, or being injected.
    Injecting,
    /// Hooked; events flow.
    Active,
    /// Injection or reading failed; `detail` says why (retried later).
    Failed,
}

/// A guest's monitor as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonitorStatus {
    /// Its state.
    pub state: MonitorState,
    /// Human detail: timings, or the failure with its causes.
    pub detail: String,
    /// The interception method, once injected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Hooked system calls by name.
    pub syscalls: Vec<String>,
    /// Rules in force.
    pub rules: usize,
    /// Events received since injection.
    pub events: u64,
    /// Events the guest dropped because its ring was full (never silently).
    pub lost: u64,
}

/// One kernel symbol, as /proc/kallsyms shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolEntry {
    /// Value (a kernel virtual address, or a per-cpu offset for absolute per-cpu symbols).
    pub address: u64,
    /// Type letter (`T`, `t`, `D`, ...).
    #[serde(rename = "type")]
    pub kind: char,
    /// Name.
    pub name: String,
}

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
