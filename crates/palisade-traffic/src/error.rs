//! Why a lab dataset could not be made.

use std::path::PathBuf;

/// Why `palisade lab traffic` failed.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// The window length is zero.
    #[error("the window length must be at least one second")]
    ZeroWindow,
    /// The run is not a whole number of windows, or too short for its attacks.
    #[error(
        "{seconds} s is too short for the attack schedule: {part} has {has} s for {episodes} episodes, which \
         need {needed} s with their quiet margins (run longer, e.g. --minutes 3, or lower --share)"
    )]
    TooShort {
        /// Length of the run.
        seconds: u64,
        /// Which part of the split.
        part: &'static str,
        /// Seconds that part has.
        has: u64,
        /// Seconds that part would need.
        needed: u64,
        /// Episodes in that part.
        episodes: usize,
    },
    /// The attack share is out of range.
    #[error("the attack share must be above 0 and below 0.5, not {0}")]
    BadShare(f64),
    /// The daily period is zero.
    #[error("the daily period must be at least two windows")]
    BadPeriod,
    /// Every kind is held back.
    #[error("every attack kind is held back: nothing is left for the training part")]
    NothingToTrain,
    /// An attack kind's name is not known.
    #[error("unknown attack kind `{name}` (known: {known})")]
    UnknownKind {
        /// The name given.
        name: String,
        /// The names known.
        known: String,
    },
    /// A program the run needs is not installed.
    #[error("`{tool}` is not installed (apt-get install {package})")]
    ToolMissing {
        /// The program.
        tool: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// A lab namespace is missing.
    #[error("the lab is not up: network namespace {netns} does not exist (run `palisade lab up`)")]
    LabNotUp {
        /// The namespace.
        netns: String,
    },
    /// An address the run adds to the client host is already used by the lab.
    #[error("address {0} is in the run's client or attacker pool but the lab already uses it")]
    AddressTaken(std::net::Ipv4Addr),
    /// A program could not be started, or a command run to completion failed.
    #[error(transparent)]
    Tool(#[from] palisade_host::ToolError),
    /// An attack program (or the in-process URL prober) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    ToolFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of what it wrote to stderr.
        stderr: String,
    },
    /// tcpdump did not say it was listening.
    #[error("tcpdump on {port} did not start capturing: {said}")]
    CaptureStart {
        /// The OVS port.
        port: String,
        /// What it said instead.
        said: String,
    },
    /// Code could not run inside a namespace.
    #[error("could not run inside the lab's namespace")]
    Netns(#[from] palisade_host::netns::NetnsError),
    /// A socket inside a namespace could not be opened.
    #[error("could not open {what} in namespace {netns}")]
    Socket {
        /// The socket.
        what: String,
        /// The namespace.
        netns: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written or read.
    #[error("could not write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The raw capture could not be read back.
    #[error("could not read the capture {path}")]
    ReadCapture {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: palisade_nad::ReadError,
    },
    /// The labels could not be written.
    #[error("could not write the labels")]
    Labels(#[source] palisade_nad::labels::LabelsError),
    /// The run was interrupted (Ctrl-C or SIGTERM); everything it started was stopped.
    #[error("interrupted; every process and address the run started was removed")]
    Interrupted,
    /// The benign clients saw too many failures: the lab does not forward their traffic.
    #[error("{failed} of {total} benign requests failed: is the lab's controller running (`palisade lab status`)?")]
    BenignFailing {
        /// Failed requests.
        failed: u64,
        /// All requests.
        total: u64,
    },
    /// A lab host named on the command line does not exist.
    #[error("no lab host with namespace {netns} (known: {known})")]
    UnknownHost {
        /// The namespace given.
        netns: String,
        /// The lab's namespaces.
        known: String,
    },
}
