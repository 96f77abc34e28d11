//! The compiled OpenFlow rules, per owner (`GET /v1/flows`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One flow, without its cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowView {
    /// OpenFlow priority.
    pub priority: u16,
    /// Match fields in ovs-ofctl syntax (empty: match all).
    pub matches: String,
    /// Actions in ovs-ofctl syntax.
    pub actions: String,
}

/// One OpenFlow group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    /// Group id.
    pub id: u32,
    /// Type and buckets in ovs-ofctl syntax (after `group_id=N,`).
    pub spec: String,
}

/// Everything one owner (base, appliance, policy) puts on the switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowOwner {
    /// The cookie on all its flows.
    pub cookie: u64,
    /// `base`, `appliance fw1`, `policy alpha/web1-to-web2-via-fw`, ...
    pub name: String,
    /// Its groups.
    pub groups: Vec<GroupView>,
    /// Its flows.
    pub flows: Vec<FlowView>,
}

/// The compiled rules the caller may see.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FlowTable {
    /// Owners by cookie (in decimal).
    pub owners: BTreeMap<String, FlowOwner>,
    /// Rules that cannot be compiled yet, and why (a port not on the bridge).
    pub pending: Vec<String>,
}
