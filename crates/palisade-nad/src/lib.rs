//! Palisade's network anomaly detection input: the 11 traffic features of each monitored VM per
//! time window (`shared/specs/nad-features.md`), from pcap/pcapng files and live interfaces.
//! Owns capture reading and writing, packet decoding, the extractor and the `labels.csv` format
//! of labelled windows; not the detector (`palisade-detect`), nor making datasets
//! (`palisade-traffic`), nor the command line: `palisade nad features` (the `palisade` binary)
//! parses, shows progress and prints the [`Report`]; this crate returns values and typed errors.
//!
//! ```text
//!  file ──► capture (pcap | pcapng: 256 KiB reads, parsed in place) ──┐
//!                                                                     ├─► decode ─► features ─► RowWriter
//!  interface ──► live (libpcap: TPACKET_V3 ring, kernel timestamps) ──┘   (checked    (per VM,    (CSV | JSONL)
//!                                                                          views)      per window)
//! ```
//!
//! Live capture uses libpcap (the `pcap` crate) rather than a plain `AF_PACKET` socket: libpcap
//! on Linux reads a `TPACKET_V3` memory-mapped ring (blocks of packets per wake-up, no syscall
//! per packet) and gives kernel timestamps, while a plain socket costs a `recvfrom` per packet
//! and, without `unsafe` control-message parsing, only user-space arrival times. The ring's
//! `unsafe` lives in libpcap; this crate forbids it.

#![forbid(unsafe_code)]

pub mod build;
pub mod capture;
pub mod decode;
mod error;
pub mod features;
pub mod labels;
pub mod live;
mod report;
mod run;

pub use capture::{CaptureReader, Frame, LinkType, ReadStats, Stop};
pub use decode::{decode, Decoded, IpPacket, Malformed, Transport};
pub use error::{ConfigError, ReadError, RunError};
pub use features::{
    BadSeconds, Config, ExtractStats, Extractor, Features, Format, Row, RowSink, RowWriter, Seconds, Series,
};
pub use report::Report;
pub use run::{extract, extract_bytes, extract_file, open_file, PassError, Position};
