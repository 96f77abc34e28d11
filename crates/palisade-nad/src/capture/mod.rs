//! Capture files: classic pcap and pcapng, read in large chunks into one reusable buffer and
//! parsed in place. A reader hands out [`Frame`]s that borrow that buffer (no per-packet
//! allocation). Damage is never fatal: a file cut short or a corrupt block ends the packets
//! with a [`Stop`] the caller reports; a bad record is counted in [`ReadStats`] and skipped.

mod buf;
mod pcap;
mod pcapng;

use std::fmt;
use std::io::Read;

pub use self::pcap::PcapReader;
pub use self::pcapng::PcapngReader;
pub(crate) use buf::Chunked;

use crate::error::ReadError;

/// A link-layer header type (the `LINKTYPE_*` registry of tcpdump.org).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub u16);

impl LinkType {
    /// IEEE 802.3 Ethernet.
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP; the version nibble says IPv4 or IPv6.
    pub const RAW: LinkType = LinkType(101);
    /// Linux cooked capture v1 (`tcpdump -i any` before libpcap 1.10).
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// Whether the packet decoder understands this link type.
    pub fn is_supported(self) -> bool {
        matches!(self, Self::ETHERNET | Self::RAW | Self::LINUX_SLL | Self::IPV4 | Self::IPV6 | Self::LINUX_SLL2)
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::ETHERNET => "Ethernet",
            Self::RAW => "raw IP",
            Self::LINUX_SLL => "Linux cooked (SLL)",
            Self::IPV4 => "raw IPv4",
            Self::IPV6 => "raw IPv6",
            Self::LINUX_SLL2 => "Linux cooked v2 (SLL2)",
            _ => return write!(f, "link type {}", self.0),
        };
        write!(f, "{name} ({})", self.0)
    }
}

/// One captured packet, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Length of the packet on the wire (`orig_len`), which the features count as its bytes.
    pub orig_len: u32,
    /// Link type of the interface it was captured on.
    pub link: LinkType,
    /// The captured bytes (possibly fewer than `orig_len`).
    pub data: &'a [u8],
}

/// Why a file ended before its last byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The file ends inside a record or block (e.g. a capture still being written, or cut).
    Truncated {
        /// Offset of the incomplete record or block.
        offset: u64,
    },
    /// A record or block header makes no sense; nothing after it can be trusted.
    Corrupt {
        /// Offset of the bad record or block.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Truncated { offset } => {
                write!(f, "the file is truncated: it ends inside the record at byte {offset}")
            }
            Stop::Corrupt { offset, reason } => write!(f, "the file is corrupt at byte {offset} ({reason})"),
        }
    }
}

/// What a reader skipped or could not place, beside the packets it returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Packets returned.
    pub packets: u64,
    /// Records whose captured length exceeds their wire length (returned; wire length counts).
    pub caplen_over_wire: u64,
    /// pcapng packets naming an interface that was never described (skipped).
    pub unknown_interface: u64,
    /// pcapng simple packets (no timestamp of their own) given the previous packet's time.
    pub untimed_placed: u64,
    /// pcapng simple packets before any timed packet (skipped: no time to place them at).
    pub untimed_skipped: u64,
    /// Packets whose timestamp does not fit in 64-bit nanoseconds since 1970 (skipped).
    pub bad_timestamp: u64,
    /// Packets on interfaces whose link type the decoder does not know (returned, then ignored).
    pub unsupported_link: u64,
}

/// A capture file reader of either format, chosen by the file's magic number.
#[derive(Debug)]
pub enum CaptureReader<R> {
    /// Classic libpcap.
    Pcap(PcapReader<R>),
    /// pcapng.
    Pcapng(PcapngReader<R>),
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header and picks the format.
    pub fn new(src: R) -> Result<Self, ReadError> {
        let mut buf = Chunked::new(src);
        let have = buf.fill(4).map_err(|source| ReadError::Io { source })?;
        if !have {
            return Err(ReadError::NotCapture { magic: None });
        }
        let magic: [u8; 4] = buf.peek(4).try_into().unwrap_or_default();
        match u32::from_le_bytes(magic) {
            0x0A0D_0D0A => Ok(Self::Pcapng(PcapngReader::from_buf(buf)?)),
            _ => Ok(Self::Pcap(PcapReader::from_buf(buf)?)),
        }
    }

    /// The next packet, or `None` at the end (see [`Self::stop`] for how it ended).
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, ReadError> {
        match self {
            Self::Pcap(r) => r.next_frame(),
            Self::Pcapng(r) => r.next_frame(),
        }
    }

    /// Why reading ended early, if it did.
    pub fn stop(&self) -> Option<&Stop> {
        match self {
            Self::Pcap(r) => r.stop(),
            Self::Pcapng(r) => r.stop(),
        }
    }

    /// Counters of skipped and odd records.
    pub fn stats(&self) -> &ReadStats {
        match self {
            Self::Pcap(r) => r.stats(),
            Self::Pcapng(r) => r.stats(),
        }
    }

    /// Bytes of the file consumed so far.
    pub fn offset(&self) -> u64 {
        match self {
            Self::Pcap(r) => r.offset(),
            Self::Pcapng(r) => r.offset(),
        }
    }

    /// Link types seen so far, with whether the decoder supports them.
    pub fn link_types(&self) -> Vec<LinkType> {
        match self {
            Self::Pcap(r) => vec![r.link()],
            Self::Pcapng(r) => r.link_types(),
        }
    }
}

/// Nanoseconds from a (seconds, fraction) pair, or `None` when it overflows `u64`.
pub(crate) fn ns_from(seconds: u64, frac: u64, frac_per_sec: u64) -> Option<u64> {
    let frac_ns = if frac_per_sec == 1_000_000_000 { frac } else { frac.checked_mul(1_000_000_000 / frac_per_sec)? };
    seconds.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}
