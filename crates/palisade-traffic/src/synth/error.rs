//! Why a dataset could not be made.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use palisade_nad::ReadError;

/// A dataset could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// An attack capture could not be opened or read.
    #[error("cannot read attack capture {capture}")]
    Capture {
        /// Which capture.
        capture: CaptureOrigin,
        /// Why.
        #[source]
        source: CaptureSource,
    },
    /// An attack capture holds no IPv4 packet to or from the victim the dataset expects there.
    #[error("attack capture {capture} has no IPv4 packet to or from its victim {victim}")]
    NoVictimPackets {
        /// Which capture.
        capture: CaptureOrigin,
        /// The victim address expected in it.
        victim: Ipv4Addr,
    },
    /// A held-back kind that does not exist.
    #[error("unknown attack kind `{name}` (known: {known})")]
    UnknownKind {
        /// What was given.
        name: String,
        /// The known kinds, comma-separated.
        known: String,
    },
    /// Every kind held back: the training part would have no attacks.
    #[error("every attack kind is held back; at least one must appear in the training part")]
    NothingToTrain,
    /// A window length of zero seconds.
    #[error("the window must be at least 1 second")]
    ZeroWindow,
    /// A span that is not a whole number of windows.
    #[error("the span of {span} s is not a whole number of {window} s windows")]
    SpanNotWhole {
        /// Span in seconds.
        span: u64,
        /// Window in seconds.
        window: u64,
    },
    /// A span too short for one episode of each kind per half at the wanted attack share.
    #[error(
        "a span of {span} s is too short: one half needs {episodes} attack episodes (one per kind), which at an \
         attack share of {share} needs {need} s or more; use a longer span or a larger share"
    )]
    SpanTooShort {
        /// Span in seconds.
        span: u64,
        /// Episodes in the fuller half.
        episodes: usize,
        /// The wanted share of abnormal windows.
        share: f64,
        /// The shortest span that would do, in seconds.
        need: u64,
    },
    /// A share so large that episodes would get fewer than 3 windows each.
    #[error(
        "an attack share of {share} needs {episodes} episodes in a half of {windows} windows, fewer than 3 windows \
         each (one for the attack, one of quiet on either side); use a smaller share"
    )]
    ShareTooLarge {
        /// The wanted share of abnormal windows.
        share: f64,
        /// Episodes it needs in one half.
        episodes: usize,
        /// Windows in that half.
        windows: u64,
    },
    /// A span that ends after nanoseconds since 1970 fit in 64 bits (the year 2554).
    #[error("a span from {start} ending {span} s later does not fit in 64-bit nanoseconds since 1970")]
    StartTooLate {
        /// First second.
        start: u64,
        /// Span in seconds.
        span: u64,
    },
    /// A surge rate that is negative or not a number.
    #[error("the benign surges per day {0} is not a non-negative number")]
    BadSurges(f64),
    /// An attack share outside (0, 0.5).
    #[error("the attack share {0} is not between 0 and 0.5 (exclusive)")]
    BadShare(f64),
    /// The VM's address is one the generator uses for other hosts.
    #[error("the VM address {0} is in a range the generator uses for clients, attackers or the monitor")]
    VmAddressTaken(Ipv4Addr),
    /// `labels.csv` could not be written.
    #[error(transparent)]
    Labels(#[from] palisade_nad::labels::LabelsError),
    /// An output file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Why an attack capture could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaptureSource {
    /// Opening failed.
    #[error("opening failed")]
    Open(#[source] io::Error),
    /// Reading failed.
    #[error("reading failed")]
    Read(#[source] ReadError),
}

/// Where an attack capture was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureOrigin {
    /// The copy built into the program (from palisade-traffic's `testdata/pcaps`).
    BuiltIn(&'static str),
    /// A file in a directory given instead of the built-in copies.
    File(PathBuf),
}

impl fmt::Display for CaptureOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureOrigin::BuiltIn(file) => write!(f, "{file} (built in)"),
            CaptureOrigin::File(path) => write!(f, "{}", path.display()),
        }
    }
}
