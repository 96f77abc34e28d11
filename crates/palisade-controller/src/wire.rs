//! The controller's own values turned into the API's types (`palisade-api`).

use palisade_api::{
    AuditChange, AuditEntry, AuditOp, FlowOwner, FlowTable, FlowView, GroupView, ObjectRef, RuleChange,
};

/// A flow or group a change adds or removes.
pub(crate) fn rule_change(r: palisade_flows::RuleChange) -> RuleChange {
    RuleChange { op: r.op, owner: r.owner, rule: r.rule }
}

/// The compiled rules, per owner, keyed by cookie in decimal.
pub(crate) fn flow_table(p: palisade_flows::Program) -> FlowTable {
    let owners = p
        .owners
        .into_iter()
        .map(|(cookie, o)| {
            let owner = FlowOwner {
                cookie: cookie.0,
                name: o.name,
                groups: o.groups.into_iter().map(|g| GroupView { id: g.id, spec: g.spec }).collect(),
                flows: o
                    .flows
                    .into_iter()
                    .map(|f| FlowView { priority: f.priority, matches: f.matches, actions: f.actions })
                    .collect(),
            };
            (cookie.0.to_string(), owner)
        })
        .collect();
    FlowTable { owners, pending: p.pending }
}

/// One audit-log entry.
pub(crate) fn audit_entry(e: palisade_store::AuditEntry) -> AuditEntry {
    let mutations = e
        .mutations
        .into_iter()
        .map(|m| AuditChange {
            op: match m.op {
                palisade_store::AuditOp::Put => AuditOp::Put,
                palisade_store::AuditOp::Delete => AuditOp::Delete,
            },
            key: ObjectRef { kind: m.key.kind, tenant: m.key.tenant, name: m.key.name },
            before: m.before,
            after: m.after,
        })
        .collect();
    AuditEntry { revision: e.revision, at_unix_ms: e.at_unix_ms, actor: e.actor, summary: e.summary, mutations }
}
