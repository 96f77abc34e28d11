//! Type 2 security service access (issue #7): one engine serves many tenants through task spaces.
//!
//! Owns the reserved address pool, the task rules (the paper's S1–S3/R1–R3) and their reference
//! counting, task spaces (a namespace joined to OVS by a veth) and the built-in port scanner,
//! whose sockets are opened inside a task's namespace, and what a stored task record means.
//! Does not own policies or storage: task records are kept in the controller's `palisade-store`.
//!
//! ```text
//!  engine (one process) ── thread setns(task ns) ── sockets ─▶ task space ─ vport ─┐
//!                                                                                  OVS: S1-S3 ─▶ VM
//!                                               task space ◀─ vport ◀─ R1-R3 ──────┘
//! ```

#![forbid(unsafe_code)]

pub mod diff;
pub mod flows;
pub mod manager;
/// Entering network namespaces, the host's one way (`palisade-host`).
pub use palisade_host::netns;
pub mod nmap;
pub mod pool;
pub mod portscan;
pub mod records;
pub mod schedule;
pub mod service;
pub mod space;
pub mod task;

pub use diff::{diff, DiffError, ScanDiff};
pub use flows::{compile_task, Target, TargetError, TaskRules};
pub use ipnet::Ipv4Net;
pub use manager::{FlowError, TaskFlows};
pub use pool::{AddressPool, Endpoint, PoolError, TaskAddrs, DEFAULT_POOL};
pub use portscan::{scan_in, PortResult, PortState, Proto, ScanReport, ScanSpec};
pub use records::RecordError;
pub use schedule::Scheduler;
pub use service::{FailureReason, Profile, ScanService, TaskError, TaskRecord, TaskState};
pub use space::{SpaceError, TaskSpace};
pub use task::{Naming, TaskId};
