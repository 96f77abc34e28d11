//! Compiles Palisade's desired state into OpenFlow 1.3 rules and plans atomic updates.
//!
//! Owns cookies and group ids, the policy-to-flow compiler, and the installed-vs-desired
//! planner. Does not talk to a switch (see `palisade-ovs`) and does not validate the model.

#![forbid(unsafe_code)]

pub mod compile;
pub mod cookie;
pub mod diff;
pub mod plan;

pub use compile::{compile, CompileError, Flow, Group, Owner, PortMap, Program};
pub use cookie::{Cookie, OwnerKind};
pub use diff::{diff, RuleChange};
pub use plan::{plan, AppliedRecord, Installed, Plan};
