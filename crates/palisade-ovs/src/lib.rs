//! Palisade's boundary to the switch: reads ports and installed rules, commits bundles.
//!
//! Owns the `Switch` trait, its Open vSwitch implementation (`ovs-ofctl bundle`, which is
//! atomic: a rejected bundle leaves the previous rules in place) and a recording fake for unit
//! tests. Does not decide what to install (see `palisade-flows`).

#![forbid(unsafe_code)]

mod fake;
mod naming;
mod ofctl;
mod parse;
mod vsctl;

use std::fmt::Debug;

pub use fake::RecordingSwitch;
pub use naming::{NamingError, PortNaming, IFNAME_MAX};
pub use ofctl::OfctlSwitch;
pub use palisade_flows::{Installed, PortMap};
pub use parse::{parse_dump_flows, parse_dump_groups, parse_interfaces, parse_ports_desc};
pub use vsctl::Vsctl;

/// Errors from the switch.
#[derive(Debug, thiserror::Error)]
pub enum OvsError {
    /// A tool could not be started.
    #[error("could not run `{command}`")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tool ran and failed; the switch rejected the request.
    #[error("`{command}` failed: {stderr}")]
    Failed {
        /// The command.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The switch answered with something we could not read.
    #[error("unexpected output from `{command}`: {detail}")]
    Parse {
        /// The command.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// Running the tool failed in another way.
    #[error("a host tool failed")]
    Tool(#[source] palisade_host::ToolError),
    /// The bridge does not exist.
    #[error("bridge `{0}` does not exist (run `palisade lab up`, or create it)")]
    NoBridge(String),
}

/// A switch Palisade programs.
pub trait Switch: Send + Sync + Debug {
    /// Port name -> OpenFlow port number.
    fn ports(&self) -> Result<PortMap, OvsError>;
    /// What of Palisade's the switch holds now.
    fn installed(&self) -> Result<Installed, OvsError>;
    /// Commits `lines` (`flow add ...`, `group modify ...`) as one atomic bundle.
    fn commit(&self, lines: &[String]) -> Result<(), OvsError>;
    /// Every flow as text, for display (`palisade flows --installed`).
    fn dump(&self) -> Result<Vec<String>, OvsError>;
}
