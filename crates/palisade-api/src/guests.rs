//! Guest VMs, their monitors and their kernels' symbols.

use serde::{Deserialize, Serialize};

/// Where a guest is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

impl GuestState {
    /// The word the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestState::Starting => "starting",
            GuestState::Running => "running",
            GuestState::Stopped => "stopped",
            GuestState::Failed => "failed",
        }
    }
}

/// Where a guest's monitor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MonitorState {
    /// Waiting for the guest to run, or being injected.
    Injecting,
    /// Hooked; events flow.
    Active,
    /// Injection or reading failed; `detail` says why (retried later).
    Failed,
}

impl MonitorState {
    /// The word the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorState::Injecting => "injecting",
            MonitorState::Active => "active",
            MonitorState::Failed => "failed",
        }
    }
}

/// A guest's monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorStatus {
    /// Its state.
    pub state: MonitorState,
    /// Timings, or the failure with its causes.
    pub detail: String,
    /// The interception method, once injected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// A guest VM (`GET /v1/guests`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestStatus {
    /// `tenant/name`.
    pub vm: String,
    /// Its state.
    pub state: GuestState,
    /// The accelerator and why, or the failure.
    pub detail: String,
    /// `kvm` or `tcg`, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel: Option<String>,
    /// QEMU's process id, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Guest RAM in MiB.
    pub memory_mb: u32,
    /// vCPUs.
    pub vcpus: u8,
    /// Its switch port, as the inventory names it.
    pub port: String,
    /// Its monitor, when monitor policies target it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorStatus>,
}

/// One kernel symbol, as /proc/kallsyms shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolEntry {
    /// Value (a kernel virtual address, or a per-cpu offset for absolute per-cpu symbols).
    pub address: u64,
    /// Type letter (`T`, `t`, `D`, ...).
    #[serde(rename = "type")]
    pub kind: char,
    /// Name.
    pub name: String,
}

/// A guest kernel's symbols, recovered from its memory (`GET /v1/vmi/{tenant}/{vm}/symbols`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symbols {
    /// `tenant/name`.
    pub vm: String,
    /// Runtime virtual address of `_text`, in hex.
    pub virt_base: String,
    /// Guest physical address of `_text`, in hex.
    pub phys_base: String,
    /// KASLR displacement against 0xffffffff81000000.
    pub kaslr_slide: i64,
    /// How the tables were laid out.
    pub layout: String,
    /// Milliseconds the recovery took.
    pub recovery_ms: u64,
    /// Symbols in the table (before `grep`).
    pub total: usize,
    /// The symbols asked for, in the kernel's order.
    pub symbols: Vec<SymbolEntry>,
}
