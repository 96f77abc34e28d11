//! The flow-level difference between two programs, for `palisade diff`.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::compile::Program;

/// A flow or group that a change adds or removes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RuleChange {
    /// `+` added, `-` removed.
    pub op: char,
    /// The owner's name.
    pub owner: String,
    /// The rule in ovs-ofctl syntax.
    pub rule: String,
}

fn rules(p: &Program) -> BTreeSet<(String, String)> {
    p.owners
        .values()
        .flat_map(|o| {
            let groups = o.groups.iter().map(|g| (o.name.clone(), format!("group {}", g.to_ofctl())));
            let flows = o.flows.iter().map(|f| (o.name.clone(), f.to_ofctl(o.cookie)));
            groups.chain(flows).collect::<Vec<_>>()
        })
        .collect()
}

/// Rules in `after` but not `before` (`+`) and the reverse (`-`).
pub fn diff(before: &Program, after: &Program) -> Vec<RuleChange> {
    let (b, a) = (rules(before), rules(after));
    let removed =
        b.difference(&a).map(|(owner, rule)| RuleChange { op: '-', owner: owner.clone(), rule: rule.clone() });
    let added = a.difference(&b).map(|(owner, rule)| RuleChange { op: '+', owner: owner.clone(), rule: rule.clone() });
    removed.chain(added).collect()
}
