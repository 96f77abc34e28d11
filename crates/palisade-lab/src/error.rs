//! Errors returned by the lab.

use std::fmt;
use std::path::PathBuf;

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The lab description is invalid; nothing on the machine was changed.
    #[error("the lab spec is invalid")]
    InvalidSpec(#[from] SpecError),

    /// A command could not be run, or ran and failed.
    #[error(transparent)]
    Tool(#[from] palisade_host::ToolError),

    /// A command printed JSON this crate could not read.
    #[error("could not parse the JSON printed by `{command}`")]
    ParseJson {
        /// The command line.
        command: String,
        /// The parse failure.
        #[source]
        source: serde_json::Error,
    },

    /// A command printed something other than what this crate expects.
    #[error("unexpected output from `{command}`: {detail}")]
    UnexpectedOutput {
        /// The command line.
        command: String,
        /// What was wrong with it.
        detail: String,
    },

    /// Open vSwitch is not answering, even after trying to start it.
    #[error("Open vSwitch is not running and `{start_command}` did not bring it up")]
    OvsUnavailable {
        /// The start command that was tried.
        start_command: String,
        /// Why the last check or start failed.
        #[source]
        source: Box<LabError>,
    },

    /// Something with a lab name exists but is not the lab's, so the lab will not touch it.
    #[error("refusing to touch {object}: {reason}")]
    Conflict {
        /// The object, e.g. `interface pa-web1`.
        object: String,
        /// Why it is not the lab's.
        reason: String,
    },

    /// The lab state directory (pid files, pcaps, logs) could not be used.
    #[error("could not use the lab state path {path}")]
    StatePath {
        /// The file or directory.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },

    /// A tap capture process exited right after it was started.
    #[error("the tap capture in namespace {netns} exited at start; its log says: {log}")]
    TapDied {
        /// The appliance namespace.
        netns: String,
        /// The tail of the capture's log file.
        log: String,
    },

    /// An appliance operation was asked of a host that is not an appliance.
    #[error("host {netns} is not an appliance")]
    NotAnAppliance {
        /// The host's namespace.
        netns: String,
    },

    /// An nftables counter the spec calls for is missing from the appliance.
    #[error("appliance {netns} has no nftables counter {counter}; is the lab up?")]
    MissingCounter {
        /// The appliance namespace.
        netns: String,
        /// The nftables counter name.
        counter: String,
    },

    /// `down` removed what it could; these objects remain.
    #[error("the lab teardown left {} object(s) behind: {}", .failures.len(), TeardownList(.failures))]
    TeardownIncomplete {
        /// What could not be removed, and why.
        failures: Vec<TeardownFailure>,
    },
}

/// One object `down` could not remove.
#[derive(Debug)]
pub struct TeardownFailure {
    /// The object, e.g. `namespace pal-alpha-web1`.
    pub object: String,
    /// Why; for an object that is simply still there, an `UnexpectedOutput` saying so.
    pub error: LabError,
}

struct TeardownList<'a>(&'a [TeardownFailure]);

impl fmt::Display for TeardownList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let cause = std::error::Error::source(&failure.error).map(palisade_host::ErrorChain);
            write!(f, "{} ({})", failure.object, failure.error)?;
            if let Some(cause) = cause {
                write!(f, ": {cause}")?;
            }
        }
        Ok(())
    }
}

/// Why a [`crate::LabSpec`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A name is empty, too long, or uses characters outside `[a-z0-9_-]`.
    #[error("{kind} name {name:?} is invalid: {reason}")]
    BadName {
        /// What the name is for: bridge, namespace, port, rule.
        kind: &'static str,
        /// The offending name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Two objects of the same kind share a name or value.
    #[error("{kind} {value:?} is used by more than one host or rule")]
    Duplicate {
        /// What is duplicated: namespace, port, mac, address, rule.
        kind: &'static str,
        /// The duplicated value.
        value: String,
    },

    /// A MAC address is malformed or not a unicast address.
    #[error("host {netns}: MAC {mac:?} is invalid: {reason}")]
    BadMac {
        /// The host.
        netns: String,
        /// The MAC as written.
        mac: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A host's address or gateway does not make sense.
    #[error("host {netns}: {reason}")]
    BadAddress {
        /// The host.
        netns: String,
        /// What is wrong.
        reason: String,
    },

    /// A VLAN tag outside 1..=4094.
    #[error("host {netns}: VLAN {vlan} is outside 1..=4094")]
    BadVlan {
        /// The host.
        netns: String,
        /// The tag.
        vlan: u16,
    },

    /// An appliance description is inconsistent.
    #[error("appliance {netns}: {reason}")]
    BadAppliance {
        /// The appliance host.
        netns: String,
        /// What is wrong.
        reason: String,
    },
}
