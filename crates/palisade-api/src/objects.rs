//! Objects of the desired state, changes to them, and the audit log.

use palisade_model::Kind;
use serde::{Deserialize, Serialize};

/// One object as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectView {
    /// Kind.
    pub kind: Kind,
    /// Owning tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Name.
    pub name: String,
    /// Body, in the policy-file model's form.
    pub spec: serde_json::Value,
}

/// What happened to one object in a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectOp {
    /// It did not exist.
    Create,
    /// It existed and changed.
    Update,
    /// It was removed.
    Delete,
    /// It was named and is the same.
    Unchanged,
}

impl ObjectOp {
    /// The word the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectOp::Create => "create",
            ObjectOp::Update => "update",
            ObjectOp::Delete => "delete",
            ObjectOp::Unchanged => "unchanged",
        }
    }
}

/// One object's fate in a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectChange {
    /// What happened to it.
    pub op: ObjectOp,
    /// The object, e.g. `policy alpha/web1-to-web2-via-fw`.
    pub object: String,
}

/// A flow or group that a change adds or removes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleChange {
    /// `+` added, `-` removed.
    pub op: char,
    /// The owner's name.
    pub owner: String,
    /// The rule in ovs-ofctl syntax.
    pub rule: String,
}

/// What a change did (or, in a dry run, would do): the reply of apply and delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// True if nothing was changed because this was a dry run.
    pub dry_run: bool,
    /// Desired-state revision after the change.
    pub revision: u64,
    /// Objects created, updated, deleted or left unchanged.
    pub objects: Vec<ObjectChange>,
    /// Flows and groups added (`+`) and removed (`-`).
    pub rules: Vec<RuleChange>,
    /// Rules that wait for a switch port, and policies nothing enforces here.
    pub pending: Vec<String>,
    /// False if the switch could not be reached; the reconciler enforces the change later.
    pub enforced: bool,
}

/// The result of one reconcile pass (`POST /v1/reconcile`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciled {
    /// Owners reprogrammed.
    pub changed: usize,
    /// Owners removed.
    pub removed: usize,
    /// Flows Palisade holds after the pass.
    pub flows: usize,
    /// Rules still waiting for ports.
    pub pending: Vec<String>,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The desired state's revision.
    pub revision: u64,
    /// Who the token is: `admin` or `tenant:<name>`.
    pub scope: String,
}

/// Put or delete, in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOp {
    /// Created or replaced.
    Put,
    /// Removed.
    Delete,
}

/// Which object an audit change touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Kind, e.g. `policy`.
    pub kind: String,
    /// Owning tenant, if any.
    pub tenant: Option<String>,
    /// Name.
    pub name: String,
}

/// One effective change inside an audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditChange {
    /// Put or delete.
    pub op: AuditOp,
    /// The object.
    pub key: ObjectRef,
    /// Its body before (absent when the put created it).
    pub before: Option<serde_json::Value>,
    /// Its body after (absent for a delete).
    pub after: Option<serde_json::Value>,
}

/// One committed revision of the desired state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The revision.
    pub revision: u64,
    /// When, in Unix milliseconds.
    pub at_unix_ms: i64,
    /// Who (`admin`, `tenant:<name>`, `controller`).
    pub actor: String,
    /// One line on what was done.
    pub summary: String,
    /// The changes, in order.
    pub mutations: Vec<AuditChange>,
}
