//! pcapng files: sections (SHB) in either byte order, each describing its interfaces (IDB: link
//! type, snap length, `if_tsresol`, `if_tsoffset`) before the packets that name them (EPB, SPB,
//! and the obsolete PB). Other blocks are skipped by their length.

use std::io::Read;

use super::pcap::{read_u16, read_u32};
use super::{Chunked, Frame, LinkType, ReadStats, Stop};
use crate::error::ReadError;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// A block longer than this is taken as corruption.
const MAX_BLOCK: u32 = 64 << 20;

/// How an interface's timestamp units become nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    /// Units of 10^-n s with n <= 9: multiply.
    Mul(u64),
    /// Units of 10^-n s with n > 9: divide.
    Div(u128),
    /// Units of 2^-n s.
    Pow2(u32),
    /// An exponent no timestamp can be read with.
    Invalid,
}

impl Resolution {
    fn from_option(v: u8) -> Self {
        let n = u32::from(v & 0x7f);
        if v & 0x80 != 0 {
            return if n < 128 { Resolution::Pow2(n) } else { Resolution::Invalid };
        }
        if n <= 9 {
            Resolution::Mul(10u64.pow(9 - n))
        } else {
            10u128.checked_pow(n - 9).map_or(Resolution::Invalid, Resolution::Div)
        }
    }

    fn to_ns(self, units: u64) -> Option<u64> {
        match self {
            Resolution::Mul(m) => units.checked_mul(m),
            Resolution::Div(d) => u64::try_from(u128::from(units) / d).ok(),
            Resolution::Pow2(n) => u64::try_from((u128::from(units) * 1_000_000_000) >> n).ok(),
            Resolution::Invalid => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    res: Resolution,
    offset_s: i64,
}

/// Reader of a pcapng file.
#[derive(Debug)]
pub struct PcapngReader<R> {
    buf: Chunked<R>,
    big_endian: bool,
    interfaces: Vec<Interface>,
    links_seen: Vec<LinkType>,
    last_ts: Option<u64>,
    stop: Option<Stop>,
    stats: ReadStats,
    bad_blocks: u64,
}

impl<R: Read> PcapngReader<R> {
    /// Reads the first section header.
    pub fn new(src: R) -> Result<Self, ReadError> {
        Self::from_buf(Chunked::new(src))
    }

    pub(crate) fn from_buf(mut buf: Chunked<R>) -> Result<Self, ReadError> {
        let io = |source| ReadError::Io { source };
        if !buf.fill(12).map_err(io)? {
            return Err(ReadError::ShortHeader { format: "pcapng", len: buf.available() });
        }
        let h = buf.peek(12);
        if read_u32(&h[0..4], false) != SHB {
            return Err(ReadError::NotCapture { magic: Some(read_u32(&h[0..4], false)) });
        }
        let bom = read_u32(&h[8..12], false);
        if bom != BYTE_ORDER_MAGIC && bom.swap_bytes() != BYTE_ORDER_MAGIC {
            return Err(ReadError::BadByteOrder { magic: bom });
        }
        Ok(PcapngReader {
            buf,
            big_endian: false,
            interfaces: Vec::new(),
            links_seen: Vec::new(),
            last_ts: None,
            stop: None,
            stats: ReadStats::default(),
            bad_blocks: 0,
        })
    }

    /// Why reading ended early, if it did.
    pub fn stop(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// Counters of odd records.
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// Blocks that were self-inconsistent and skipped (e.g. a packet longer than its block).
    pub fn bad_blocks(&self) -> u64 {
        self.bad_blocks
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.buf.offset()
    }

    /// Link types of the interfaces described so far, each once.
    pub fn link_types(&self) -> Vec<LinkType> {
        self.links_seen.clone()
    }

    fn corrupt(&mut self, reason: String) {
        self.stop = Some(Stop::Corrupt { offset: self.buf.offset(), reason });
    }

    /// The next packet, or `None` at the end of the file or at damage (see [`Self::stop`]).
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, ReadError> {
        loop {
            if self.stop.is_some() {
                return Ok(None);
            }
            let io = |source| ReadError::Io { source };
            if self.buf.available() < 12 && !self.buf.fill(12).map_err(io)? {
                if self.buf.available() > 0 {
                    self.stop = Some(Stop::Truncated { offset: self.buf.offset() });
                }
                return Ok(None);
            }
            let h = self.buf.peek(12);
            let mut be = self.big_endian;
            let kind = read_u32(&h[0..4], be);
            if kind == SHB {
                let bom = read_u32(&h[8..12], false);
                be = match bom {
                    BYTE_ORDER_MAGIC => false,
                    _ if bom.swap_bytes() == BYTE_ORDER_MAGIC => true,
                    _ => {
                        self.corrupt(format!("section header with byte-order magic {bom:#010x}"));
                        return Ok(None);
                    }
                };
            }
            let len = read_u32(&h[4..8], be);
            if len < 12 || !len.is_multiple_of(4) || len > MAX_BLOCK || (kind == SHB && len < 28) {
                self.corrupt(format!("block type {kind:#x} with length {len}"));
                return Ok(None);
            }
            let len = len as usize;
            if self.buf.available() < len && !self.buf.fill(len).map_err(io)? {
                self.stop = Some(Stop::Truncated { offset: self.buf.offset() });
                return Ok(None);
            }
            let block = self.buf.peek(len);
            let trailer = read_u32(&block[len - 4..], be) as usize;
            if trailer != len {
                self.corrupt(format!("block type {kind:#x} says length {len} at its start and {trailer} at its end"));
                return Ok(None);
            }
            match kind {
                SHB => {
                    self.big_endian = be;
                    self.interfaces.clear();
                    self.last_ts = None;
                    self.buf.skip(len);
                }
                IDB => {
                    let iface = parse_idb(&block[8..len - 4], be);
                    self.buf.skip(len);
                    match iface {
                        Some(i) => {
                            if !self.links_seen.contains(&i.link) {
                                self.links_seen.push(i.link);
                            }
                            self.interfaces.push(i);
                        }
                        None => self.bad_blocks += 1,
                    }
                }
                EPB | PB | SPB => {
                    let mut ctx = PacketCtx {
                        stats: &mut self.stats,
                        bad_blocks: &mut self.bad_blocks,
                        interfaces: &self.interfaces,
                        last_ts: &mut self.last_ts,
                    };
                    let Some(p) = ctx.packet_header(kind, &block[8..len - 4], be) else {
                        self.buf.skip(len);
                        continue;
                    };
                    let (ts_ns, orig_len, link, caplen) = p;
                    self.stats.packets += 1;
                    let from = 8 + if kind == SPB { 4 } else { 20 };
                    let data = self.buf.take(from, from + caplen, len);
                    return Ok(Some(Frame { ts_ns, orig_len, link, data }));
                }
                _ => self.buf.skip(len),
            }
        }
    }
}

/// The reader state a packet block updates (split from the buffer it borrows).
struct PacketCtx<'a> {
    stats: &'a mut ReadStats,
    bad_blocks: &'a mut u64,
    interfaces: &'a [Interface],
    last_ts: &'a mut Option<u64>,
}

impl PacketCtx<'_> {
    /// Checks a packet block's header; `None` means skip it (and it has been counted).
    fn packet_header(&mut self, kind: u32, body: &[u8], be: bool) -> Option<(u64, u32, LinkType, usize)> {
        let fixed = if kind == SPB { 4 } else { 20 };
        if body.len() < fixed {
            *self.bad_blocks += 1;
            return None;
        }
        let (iface_id, ts_units, caplen, orig) = match kind {
            SPB => {
                let orig = read_u32(&body[0..4], be);
                (0, None, orig, orig)
            }
            _ => {
                let id = if kind == PB { u32::from(read_u16(&body[0..2], be)) } else { read_u32(&body[0..4], be) };
                let ts = (u64::from(read_u32(&body[4..8], be)) << 32) | u64::from(read_u32(&body[8..12], be));
                (id, Some(ts), read_u32(&body[12..16], be), read_u32(&body[16..20], be))
            }
        };
        let Some(iface) = self.interfaces.get(iface_id as usize).copied() else {
            self.stats.unknown_interface += 1;
            return None;
        };
        let room = body.len() - fixed;
        let caplen = match kind {
            // A simple packet's captured length is implied: the wire length, cut by snaplen and block.
            SPB => {
                let snap = if iface.snaplen == 0 { u32::MAX } else { iface.snaplen };
                (caplen.min(snap) as usize).min(room)
            }
            _ if caplen as usize > room => {
                *self.bad_blocks += 1;
                return None;
            }
            _ => caplen as usize,
        };
        let ts_ns = match ts_units {
            Some(units) => {
                let ts = iface.res.to_ns(units).and_then(|ns| apply_offset(ns, iface.offset_s));
                let Some(ts) = ts else {
                    self.stats.bad_timestamp += 1;
                    return None;
                };
                *self.last_ts = Some(ts);
                ts
            }
            None => match *self.last_ts {
                Some(ts) => {
                    self.stats.untimed_placed += 1;
                    ts
                }
                None => {
                    self.stats.untimed_skipped += 1;
                    return None;
                }
            },
        };
        if caplen > orig as usize {
            self.stats.caplen_over_wire += 1;
        }
        if !iface.link.is_supported() {
            self.stats.unsupported_link += 1;
        }
        Some((ts_ns, orig, iface.link, caplen))
    }
}

fn apply_offset(ns: u64, offset_s: i64) -> Option<u64> {
    let off = i128::from(offset_s) * 1_000_000_000;
    u64::try_from(i128::from(ns) + off).ok()
}

/// Link type, snap length and the two timestamp options of an interface description.
fn parse_idb(body: &[u8], be: bool) -> Option<Interface> {
    if body.len() < 8 {
        return None;
    }
    let mut iface = Interface {
        link: LinkType(read_u16(&body[0..2], be)),
        snaplen: read_u32(&body[4..8], be),
        res: Resolution::Mul(1000),
        offset_s: 0,
    };
    let mut opts = &body[8..];
    while opts.len() >= 4 {
        let code = read_u16(&opts[0..2], be);
        let len = usize::from(read_u16(&opts[2..4], be));
        if code == 0 {
            break;
        }
        let padded = (len + 3) & !3;
        let Some(value) = opts.get(4..4 + len) else { break };
        match (code, len) {
            (9, 1) => iface.res = Resolution::from_option(value[0]),
            (14, 8) => {
                let raw = if be {
                    u64::from_be_bytes(value.try_into().ok()?)
                } else {
                    u64::from_le_bytes(value.try_into().ok()?)
                };
                iface.offset_s = raw as i64;
            }
            _ => {}
        }
        opts = opts.get(4 + padded..).unwrap_or_default();
    }
    Some(iface)
}

#[cfg(test)]
mod tests {
    use super::Resolution;

    #[test]
    fn timestamp_resolutions_convert_to_nanoseconds() {
        assert_eq!(Resolution::from_option(6).to_ns(1_500_000), Some(1_500_000_000));
        assert_eq!(Resolution::from_option(9).to_ns(7), Some(7));
        assert_eq!(Resolution::from_option(12).to_ns(2_000_999), Some(2_000));
        assert_eq!(Resolution::from_option(0x80 | 10).to_ns(1536), Some(1_500_000_000));
        assert_eq!(Resolution::from_option(0x80 | 127).to_ns(u64::MAX), Some(0));
        assert_eq!(Resolution::from_option(0).to_ns(u64::MAX), None);
        assert_eq!(Resolution::from_option(60).to_ns(1), None, "10^-60 cannot be represented");
    }
}
