//! Classic libpcap files: a 24-byte header, then 16-byte record headers each followed by the
//! captured bytes. Microsecond (`a1b2c3d4`) and nanosecond (`a1b23c4d`) magics, either byte order.

use std::io::Read;

use super::{ns_from, Chunked, Frame, LinkType, ReadStats, Stop};
use crate::error::ReadError;

/// A record longer than this is taken as corruption (libpcap itself caps at 256 KiB).
pub(crate) const MAX_RECORD: u32 = 16 << 20;

/// Reader of a classic pcap file.
#[derive(Debug)]
pub struct PcapReader<R> {
    buf: Chunked<R>,
    big_endian: bool,
    frac_per_sec: u64,
    link: LinkType,
    stop: Option<Stop>,
    stats: ReadStats,
}

impl<R: Read> PcapReader<R> {
    /// Reads the file header.
    pub fn new(src: R) -> Result<Self, ReadError> {
        Self::from_buf(Chunked::new(src))
    }

    pub(crate) fn from_buf(mut buf: Chunked<R>) -> Result<Self, ReadError> {
        let io = |source| ReadError::Io { source };
        if !buf.fill(24).map_err(io)? {
            let have = buf.available();
            let magic = (have >= 4).then(|| u32::from_le_bytes(buf.peek(4).try_into().unwrap_or_default()));
            return match magic {
                Some(0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1) => {
                    Err(ReadError::ShortHeader { format: "pcap", len: have })
                }
                _ => Err(ReadError::NotCapture { magic }),
            };
        }
        let h = buf.take(0, 24, 24);
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (big_endian, frac_per_sec) = match magic {
            0xa1b2_c3d4 => (false, 1_000_000),
            0xd4c3_b2a1 => (true, 1_000_000),
            0xa1b2_3c4d => (false, 1_000_000_000),
            0x4d3c_b2a1 => (true, 1_000_000_000),
            other => return Err(ReadError::NotCapture { magic: Some(other) }),
        };
        let network = read_u32(&h[20..24], big_endian);
        // The low 16 bits are the link type; the high bits may carry FCS information.
        let link = LinkType((network & 0xffff) as u16);
        Ok(PcapReader { buf, big_endian, frac_per_sec, link, stop: None, stats: ReadStats::default() })
    }

    /// The file's link type.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Why reading ended early, if it did.
    pub fn stop(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// Counters of odd records.
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.buf.offset()
    }

    /// The next packet, or `None` at the end of the file or at damage (see [`Self::stop`]).
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, ReadError> {
        loop {
            if self.stop.is_some() {
                return Ok(None);
            }
            let io = |source| ReadError::Io { source };
            if self.buf.available() < 16 && !self.buf.fill(16).map_err(io)? {
                if self.buf.available() > 0 {
                    self.stop = Some(Stop::Truncated { offset: self.buf.offset() });
                }
                return Ok(None);
            }
            let h = self.buf.peek(16);
            let be = self.big_endian;
            let (sec, frac) = (read_u32(&h[0..4], be), read_u32(&h[4..8], be));
            let (incl, orig) = (read_u32(&h[8..12], be), read_u32(&h[12..16], be));
            if incl > MAX_RECORD {
                let reason = format!("record claims {incl} captured bytes");
                self.stop = Some(Stop::Corrupt { offset: self.buf.offset(), reason });
                return Ok(None);
            }
            let total = 16 + incl as usize;
            if self.buf.available() < total && !self.buf.fill(total).map_err(io)? {
                self.stop = Some(Stop::Truncated { offset: self.buf.offset() });
                return Ok(None);
            }
            let Some(ts_ns) = ns_from(u64::from(sec), u64::from(frac), self.frac_per_sec) else {
                self.stats.bad_timestamp += 1;
                self.buf.skip(total);
                continue;
            };
            if incl > orig {
                self.stats.caplen_over_wire += 1;
            }
            if !self.link.is_supported() {
                self.stats.unsupported_link += 1;
            }
            self.stats.packets += 1;
            let data = self.buf.take(16, total, total);
            return Ok(Some(Frame { ts_ns, orig_len: orig, link: self.link, data }));
        }
    }
}

#[inline]
pub(crate) fn read_u32(b: &[u8], big_endian: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

#[inline]
pub(crate) fn read_u16(b: &[u8], big_endian: bool) -> u16 {
    let a = [b[0], b[1]];
    if big_endian {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}
