//! Typed errors. Damage inside a capture is not an error (it is counted and reported); these
//! are the conditions under which there is nothing sensible to compute.

use std::io;
use std::path::PathBuf;

/// A capture could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The underlying reader failed.
    #[error("reading the capture failed")]
    Io {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The first bytes are neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng file (magic number {})", magic.map_or_else(|| "missing: fewer than 4 bytes".to_owned(), |m| format!("{m:#010x}")))]
    NotCapture {
        /// The first four bytes, little-endian, if there were four.
        magic: Option<u32>,
    },
    /// The file header itself is cut short.
    #[error("the {format} file header is cut short ({len} bytes)")]
    ShortHeader {
        /// `pcap` or `pcapng`.
        format: &'static str,
        /// Bytes present.
        len: usize,
    },
    /// A pcapng section header whose byte-order magic is neither order.
    #[error("the pcapng section header has byte-order magic {magic:#010x}, not 0x1a2b3c4d in either order")]
    BadByteOrder {
        /// The value found.
        magic: u32,
    },
}

/// The extractor's configuration is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// No VM to compute features for.
    #[error("no VM given: name at least one with --vm IP")]
    NoVm,
    /// The same VM twice.
    #[error("VM {0} is given twice")]
    DuplicateVm(std::net::IpAddr),
    /// A window length that is not a positive number of seconds with at most 9 decimals.
    #[error("window `{0}` is not a positive number of seconds (at most 9 decimals), e.g. 60 or 0.5")]
    BadWindow(String),
    /// A reorder allowance that is not a non-negative number of seconds.
    #[error("reorder allowance `{0}` is not a non-negative number of seconds, e.g. 1 or 0.25")]
    BadReorder(String),
}

/// Running the extractor over a file or an interface failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The capture file cannot be opened.
    #[error("cannot open capture file {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The capture file cannot be read.
    #[error("cannot read capture file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ReadError,
    },
    /// Rows could not be written.
    #[error("cannot write feature rows")]
    Write {
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Live capture could not start or failed.
    #[error("live capture on interface `{iface}` failed")]
    Live {
        /// The interface.
        iface: String,
        /// Why (from libpcap).
        #[source]
        source: pcap::Error,
    },
    /// The capture's descriptor could not be duplicated for polling.
    #[error("cannot duplicate the capture descriptor of interface `{iface}`")]
    LiveDup {
        /// The interface.
        iface: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for packets failed.
    #[error("waiting for packets on interface `{iface}` failed")]
    LiveWait {
        /// The interface.
        iface: String,
        /// Why.
        #[source]
        source: nix::errno::Errno,
    },
    /// The live interface's link type is not decodable.
    #[error("interface `{iface}` has {link}, which the decoder does not support (Ethernet, SLL, SLL2, raw IP)")]
    LiveLink {
        /// The interface.
        iface: String,
        /// Its link type.
        link: crate::LinkType,
    },
}
