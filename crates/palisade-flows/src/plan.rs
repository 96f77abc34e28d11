//! Plans one atomic bundle that takes the switch from what is installed to what is desired.
//!
//! Owners are compared by digest against what was last applied, and by flow count and
//! groups against what the switch actually holds (so drift, e.g. a flushed bridge, is
//! repaired). Unchanged owners are not touched: no counters reset, no traffic disturbed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::compile::Program;
use crate::cookie::{Cookie, GROUP_BASE, GROUP_LAST};

/// What the switch holds of Palisade's, as read back from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    /// Flow count per Palisade cookie.
    pub flows: BTreeMap<Cookie, u32>,
    /// Group ids in Palisade's range.
    pub groups: BTreeSet<u32>,
}

impl Installed {
    /// What the switch holds once a plan for `program` has committed: exactly the program's
    /// owners and groups (the plan removes every other Palisade cookie and group).
    pub fn of(program: &Program) -> Installed {
        Installed {
            flows: program
                .owners
                .values()
                .filter(|o| !o.flows.is_empty())
                .map(|o| (o.cookie, o.flows.len() as u32))
                .collect(),
            groups: program.owners.values().flat_map(|o| o.groups.iter().map(|g| g.id)).collect(),
        }
    }
}

/// What the controller last applied for one owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRecord {
    /// Owner cookie.
    pub cookie: Cookie,
    /// Digest of its rules.
    pub digest: String,
    /// Number of flows.
    pub flow_count: u32,
    /// Groups it owns.
    pub groups: Vec<u32>,
}

/// One planned bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// `ovs-ofctl bundle` lines, in order.
    pub lines: Vec<String>,
    /// Owners (re)programmed.
    pub changed: Vec<Cookie>,
    /// Owners removed.
    pub removed: Vec<Cookie>,
    /// The applied records once the bundle commits.
    pub applied_after: Vec<AppliedRecord>,
}

impl Plan {
    /// True when the switch already matches.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Plans the bundle. `applied` is what the controller recorded; `installed` what the switch has.
pub fn plan(program: &Program, applied: &[AppliedRecord], installed: &Installed) -> Plan {
    let applied: BTreeMap<Cookie, &AppliedRecord> = applied.iter().map(|a| (a.cookie, a)).collect();
    let mut groups_first = Vec::new();
    let mut flow_lines = Vec::new();
    let mut plan = Plan::default();
    let wanted_groups: BTreeSet<u32> = program.owners.values().flat_map(|o| o.groups.iter().map(|g| g.id)).collect();

    for owner in program.owners.values() {
        let digest = owner.digest();
        let flow_count = owner.flows.len() as u32;
        let same_digest = applied.get(&owner.cookie).is_some_and(|a| a.digest == digest);
        let on_switch = installed.flows.get(&owner.cookie).copied().unwrap_or(0) == flow_count
            && owner.groups.iter().all(|g| installed.groups.contains(&g.id));
        plan.applied_after.push(AppliedRecord {
            cookie: owner.cookie,
            digest,
            flow_count,
            groups: owner.groups.iter().map(|g| g.id).collect(),
        });
        if same_digest && on_switch {
            continue;
        }
        plan.changed.push(owner.cookie);
        for g in &owner.groups {
            let verb = if installed.groups.contains(&g.id) { "modify" } else { "add" };
            groups_first.push(format!("group {verb} {}", g.to_ofctl()));
        }
        if installed.flows.contains_key(&owner.cookie) {
            flow_lines.push(format!("flow delete cookie={}/-1", owner.cookie));
        }
        flow_lines.extend(owner.flows.iter().map(|f| format!("flow add {}", f.to_ofctl(owner.cookie))));
    }

    let stale: BTreeSet<Cookie> = installed
        .flows
        .keys()
        .chain(applied.keys())
        // Type 2 task flows belong to the scan task manager (issue #7), not to the desired state.
        .filter(|c| c.is_palisade() && !c.is_task() && !program.owners.contains_key(c))
        .copied()
        .collect();
    for cookie in &stale {
        if installed.flows.contains_key(cookie) {
            flow_lines.push(format!("flow delete cookie={cookie}/-1"));
        }
        plan.removed.push(*cookie);
    }
    let groups_last: Vec<String> = installed
        .groups
        .iter()
        .filter(|g| (GROUP_BASE..=GROUP_LAST).contains(*g) && !wanted_groups.contains(g))
        .map(|g| format!("group delete group_id={g}"))
        .collect();

    plan.lines = groups_first.into_iter().chain(flow_lines).chain(groups_last).collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cookie::OwnerKind;

    /// Issue #7: the reconciler must not remove the flows of running scan tasks.
    #[test]
    fn task_flows_are_not_stale() {
        let task = Cookie::new(OwnerKind::Task, "task 1");
        let shared = Cookie::new(OwnerKind::TaskShared, "target alpha/web1");
        let old_policy = Cookie::new(OwnerKind::Redirect, "policy alpha/gone");
        let installed = Installed {
            flows: [(task, 4), (shared, 2), (old_policy, 1)].into_iter().collect(),
            ..Installed::default()
        };
        let p = plan(&Program::default(), &[], &installed);
        assert_eq!(p.removed, vec![old_policy]);
        assert_eq!(p.lines, vec![format!("flow delete cookie={old_policy}/-1")]);
    }
}
