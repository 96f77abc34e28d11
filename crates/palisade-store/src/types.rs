//! The values that cross the [`Store`](crate::Store) boundary. None of them mention a backend.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Identity of one desired-state object: its kind, the tenant that owns it (`None` for global
/// objects such as admin-wide settings) and its name within that kind and tenant.
///
/// Ordering is by kind, then tenant (global objects before tenant ones), then name; this is the
/// order [`Store::objects`](crate::Store::objects) returns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// Object kind, e.g. `"policy"`. The store does not interpret it.
    pub kind: String,
    /// Owning tenant, or `None` for a global object.
    pub tenant: Option<String>,
    /// Name, unique within `(kind, tenant)`.
    pub name: String,
}

impl ObjectKey {
    /// A key for an object owned by `tenant`.
    pub fn tenant(kind: impl Into<String>, tenant: impl Into<String>, name: impl Into<String>) -> Self {
        Self { kind: kind.into(), tenant: Some(tenant.into()), name: name.into() }
    }

    /// A key for a global object (no owning tenant).
    pub fn global(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Self { kind: kind.into(), tenant: None, name: name.into() }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tenant {
            Some(tenant) => write!(f, "{} {:?} of tenant {:?}", self.kind, self.name, tenant),
            None => write!(f, "global {} {:?}", self.kind, self.name),
        }
    }
}

/// One desired-state object as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredObject {
    /// Identity of the object.
    pub key: ObjectKey,
    /// The opaque JSON document.
    pub spec: Value,
    /// The revision that last wrote this object.
    pub revision: u64,
}

/// One change requested in a [`Store::commit`](crate::Store::commit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Mutation {
    /// Create or replace the object at `key`.
    Put {
        /// Object to write.
        key: ObjectKey,
        /// New document.
        spec: Value,
    },
    /// Remove the object at `key` if present.
    Delete {
        /// Object to remove.
        key: ObjectKey,
    },
}

impl Mutation {
    /// The key this mutation touches.
    pub fn key(&self) -> &ObjectKey {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key } => key,
        }
    }
}

/// Who made a change, recorded verbatim in the audit log: e.g. `"admin"` or `"tenant:alpha"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor(pub String);

/// Whether an audited mutation wrote or removed an object. Serialises as `"put"` / `"delete"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOp {
    /// The object was created or replaced.
    Put,
    /// The object was removed.
    Delete,
}

impl AuditOp {
    /// `"put"` or `"delete"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOp::Put => "put",
            AuditOp::Delete => "delete",
        }
    }
}

/// One effective change inside an [`AuditEntry`]: no-op mutations are never recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditMutation {
    /// Put or delete.
    pub op: AuditOp,
    /// Object touched.
    pub key: ObjectKey,
    /// Document before the change (`None` when the put created the object).
    pub before: Option<Value>,
    /// Document after the change (`None` for a delete).
    pub after: Option<Value>,
}

/// One committed revision of the desired state, as kept in the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Revision this commit created.
    pub revision: u64,
    /// Commit time as given by the caller's clock, in Unix milliseconds.
    pub at_unix_ms: i64,
    /// Who committed it (see [`Actor`]).
    pub actor: String,
    /// Caller-written one-line summary.
    pub summary: String,
    /// Effective changes, in the order they were applied.
    pub mutations: Vec<AuditMutation>,
}

/// What the reconciler last programmed for one flow owner (identified by its flow cookie).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppliedOwner {
    /// Flow cookie that tags every flow of this owner. All 64 bits are kept.
    pub cookie: u64,
    /// Digest of the flows programmed, used to skip unchanged owners.
    pub digest: String,
    /// Number of flows programmed.
    pub flow_count: u32,
    /// Group ids programmed for this owner.
    pub groups: Vec<u32>,
}

/// One security event (a monitored system call, issue #5) kept for its tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Row id, increasing in append order (`0` when appending: the store assigns it).
    pub id: u64,
    /// The tenant whose VM the event is about; a tenant reads only its own.
    pub tenant: String,
    /// The VM's name within the tenant.
    pub vm: String,
    /// The event itself, opaque to the store.
    pub body: Value,
}

/// A stream of events kept per tenant and VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStream {
    /// Monitor events (agentless monitoring, issue #5).
    Monitor,
    /// Anomaly alerts (LSTM-NAD, issue #6).
    Alerts,
}

impl EventStream {
    /// What one entry is called in messages (`monitor event`, `anomaly alert`).
    pub fn entry(self) -> &'static str {
        match self {
            EventStream::Monitor => "monitor event",
            EventStream::Alerts => "anomaly alert",
        }
    }
}

/// One scan task (issue #7) as stored: the columns the store filters on, and the record itself.
///
/// The store does not interpret `state` or `body`; the scan service owns their meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredScanTask {
    /// Task id, chosen by the scan service (see
    /// [`Store::last_scan_task_id`](crate::Store::last_scan_task_id)).
    pub id: u64,
    /// The tenant scanned; a tenant reads only its own tasks.
    pub tenant: String,
    /// The task's state as the scan service names it, e.g. `"running"`.
    pub state: String,
    /// When the task started, in Unix milliseconds (the caller's clock).
    pub started_unix_ms: i64,
    /// The task record, opaque to the store.
    pub body: Value,
}
