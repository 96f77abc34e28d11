//! Palisade's API contract: the request and response bodies of `palisaded`'s REST API.
//!
//! The controller serialises these types, `palisade-client` deserialises them, and the CLI
//! renders their fields, so a field renamed on one side fails to compile on the other.
//! `docs/openapi.json` describes the same bodies; `tests/openapi.rs` fails when the two drift.
//! Types only: no I/O, no behaviour beyond formatting helpers.
//!
//! ```text
//!   objects   ObjectView, Outcome (ObjectChange, RuleChange), Reconciled, AuditEntry, Status
//!   flows     FlowTable (FlowOwner, FlowView, GroupView)
//!   guests    GuestStatus, MonitorStatus, Symbols (SymbolEntry)
//!   events    MonitorEvent, EventPage
//!   alerts    AlertRecord (Deviation), AlertPage, DetectorStatus (WatchState, Phase)
//!   scans     ScanRequest, TaskRecord (PortResult, ServiceInfo, Finding, FailureReason), ScanDiff
//! ```

#![forbid(unsafe_code)]

pub mod alerts;
pub mod events;
pub mod flows;
pub mod guests;
pub mod objects;
pub mod scans;

use serde::{Deserialize, Serialize};

pub use alerts::{AlertPage, AlertRecord, DetectorStatus, Deviation, Phase, WatchState};
pub use events::{EventPage, MonitorEvent};
pub use flows::{FlowOwner, FlowTable, FlowView, GroupView};
pub use guests::{GuestState, GuestStatus, MonitorState, MonitorStatus, SymbolEntry, Symbols};
pub use objects::{
    AuditChange, AuditEntry, AuditOp, ObjectChange, ObjectOp, ObjectRef, ObjectView, Outcome, Reconciled, RuleChange,
    Status,
};
pub use scans::{
    FailureReason, Finding, PortResult, PortState, Proto, ScanDiff, ScanRequest, ServiceInfo, TaskRecord, TaskState,
    VersionChange,
};

/// The body of every error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// One line per problem (`file:line: field: message`), when there are several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// `POST /v1/apply`: a policy file to apply (or, with `dry_run`, to diff).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// The file's name, used in error locations.
    pub file: String,
    /// Its text (YAML or JSON).
    pub content: String,
}
