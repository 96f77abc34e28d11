//! IPv4, IPv6 (with the extension headers between it and TCP/UDP) and the TCP/UDP headers.
//! Checksums are not verified: captures taken on a sending host routinely carry offloaded,
//! not-yet-computed checksums, and the spec counts packets regardless.

use super::{Decoded, Family, IpPacket, Malformed, Transport};

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// A checked view of an IPv4 header (the fixed 20 bytes are present, version 4, IHL >= 5).
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Header<'a>(&'a [u8]);

impl<'a> Ipv4Header<'a> {
    /// Checks the fixed header.
    pub fn new_checked(b: &'a [u8]) -> Result<Self, Malformed> {
        if b.len() < 20 {
            return Err(Malformed::Ipv4Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(Malformed::BadIpVersion);
        }
        if b[0] & 0x0f < 5 {
            return Err(Malformed::Ipv4BadHeaderLength);
        }
        Ok(Ipv4Header(b))
    }

    /// Header length in bytes (with options).
    pub fn header_len(&self) -> usize {
        usize::from(self.0[0] & 0x0f) * 4
    }

    /// The total length field.
    pub fn total_len(&self) -> usize {
        usize::from(be16(self.0, 2))
    }

    /// Fragment offset in 8-byte units (non-zero: not the first fragment).
    pub fn frag_offset(&self) -> u16 {
        be16(self.0, 6) & 0x1fff
    }

    /// The protocol field.
    pub fn protocol(&self) -> u8 {
        self.0[9]
    }

    /// Source address.
    pub fn src(&self) -> u32 {
        u32::from_be_bytes([self.0[12], self.0[13], self.0[14], self.0[15]])
    }

    /// Destination address.
    pub fn dst(&self) -> u32 {
        u32::from_be_bytes([self.0[16], self.0[17], self.0[18], self.0[19]])
    }

    /// The transport bytes: after the options, up to the total length (so Ethernet padding is
    /// excluded) or the end of the capture. A total length of 0 (segmentation offload) means
    /// "what was captured".
    pub fn payload(&self) -> Result<&'a [u8], Malformed> {
        let hl = self.header_len();
        if hl > self.0.len() {
            return Err(Malformed::Ipv4OptionsTruncated);
        }
        let end = match self.total_len() {
            0 => self.0.len(),
            t if t < hl => return Err(Malformed::Ipv4BadTotalLength),
            t => t.min(self.0.len()),
        };
        Ok(&self.0[hl..end])
    }
}

/// A checked view of the fixed IPv6 header.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Header<'a>(&'a [u8]);

impl<'a> Ipv6Header<'a> {
    /// Checks the fixed 40 bytes and the version.
    pub fn new_checked(b: &'a [u8]) -> Result<Self, Malformed> {
        if b.len() < 40 {
            return Err(Malformed::Ipv6Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Malformed::BadIpVersion);
        }
        Ok(Ipv6Header(b))
    }

    /// Source address.
    pub fn src(&self) -> u128 {
        u128::from_be_bytes(self.0[8..24].try_into().unwrap_or_default())
    }

    /// Destination address.
    pub fn dst(&self) -> u128 {
        u128::from_be_bytes(self.0[24..40].try_into().unwrap_or_default())
    }

    /// Walks the extension headers to the transport header. `Ok(None)` when there is no
    /// TCP/UDP header to read (another protocol, ESP, no next header, a non-first fragment).
    pub fn transport(&self) -> Result<Option<(u8, &'a [u8])>, Malformed> {
        let end = match usize::from(be16(self.0, 4)) {
            0 => self.0.len(), // jumbogram or offload: use what was captured
            n => (40 + n).min(self.0.len()),
        };
        let b = &self.0[..end];
        let (mut next, mut at) = (self.0[6], 40);
        // Each extension header is at least 8 bytes, so the walk ends; the cap is belt and braces.
        for _ in 0..64 {
            let len = match next {
                PROTO_TCP | PROTO_UDP => return Ok(Some((next, &b[at..]))),
                // hop-by-hop, routing, destination options, mobility, HIP, shim6
                0 | 43 | 60 | 135 | 139 | 140 => {
                    let h = b.get(at..at + 2).ok_or(Malformed::Ipv6ExtensionTruncated)?;
                    (usize::from(h[1]) + 1) * 8
                }
                44 => {
                    let h = b.get(at..at + 8).ok_or(Malformed::Ipv6ExtensionTruncated)?;
                    if be16(h, 2) >> 3 != 0 {
                        return Ok(None);
                    }
                    8
                }
                51 => {
                    let h = b.get(at..at + 2).ok_or(Malformed::Ipv6ExtensionTruncated)?;
                    (usize::from(h[1]) + 2) * 4
                }
                _ => return Ok(None),
            };
            next = b[at];
            at += len;
            if at > b.len() {
                return Err(Malformed::Ipv6ExtensionTruncated);
            }
        }
        Ok(None)
    }
}

/// A checked view of a TCP header (the fixed 20 bytes present, data offset >= 5).
#[derive(Debug, Clone, Copy)]
pub struct TcpHeader<'a>(&'a [u8]);

impl<'a> TcpHeader<'a> {
    /// Checks the fixed header.
    pub fn new_checked(b: &'a [u8]) -> Result<Self, Malformed> {
        if b.len() < 20 {
            return Err(Malformed::TcpTruncated);
        }
        if b[12] >> 4 < 5 {
            return Err(Malformed::TcpBadHeaderLength);
        }
        Ok(TcpHeader(b))
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.0, 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.0, 2)
    }

    /// The flags byte.
    pub fn flags(&self) -> u8 {
        self.0[13]
    }
}

/// A checked view of a UDP header.
#[derive(Debug, Clone, Copy)]
pub struct UdpHeader<'a>(&'a [u8]);

impl<'a> UdpHeader<'a> {
    /// Checks the 8-byte header.
    pub fn new_checked(b: &'a [u8]) -> Result<Self, Malformed> {
        if b.len() < 8 {
            return Err(Malformed::UdpTruncated);
        }
        Ok(UdpHeader(b))
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.0, 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.0, 2)
    }
}

#[inline]
fn transport(proto: u8, b: &[u8]) -> Result<Transport, Malformed> {
    Ok(match proto {
        PROTO_TCP => {
            let t = TcpHeader::new_checked(b)?;
            Transport::Tcp { src_port: t.src_port(), dst_port: t.dst_port(), flags: t.flags() }
        }
        PROTO_UDP => {
            let u = UdpHeader::new_checked(b)?;
            Transport::Udp { src_port: u.src_port(), dst_port: u.dst_port() }
        }
        _ => Transport::None,
    })
}

#[inline]
fn packet(family: Family, src: u128, dst: u128, t: Result<Transport, Malformed>) -> Decoded {
    let (transport, malformed) = match t {
        Ok(t) => (t, None),
        Err(m) => (Transport::None, Some(m)),
    };
    Decoded::Ip(IpPacket { family, src, dst, transport, malformed })
}

/// Decodes an IPv4 packet.
#[inline]
pub(super) fn ipv4(b: &[u8]) -> Decoded {
    let h = match Ipv4Header::new_checked(b) {
        Ok(h) => h,
        Err(m) => return Decoded::Malformed(m),
    };
    let t = h.payload().and_then(|p| match h.frag_offset() {
        0 => transport(h.protocol(), p),
        _ => Ok(Transport::None),
    });
    packet(Family::V4, h.src().into(), h.dst().into(), t)
}

/// Decodes an IPv6 packet.
#[inline]
pub(super) fn ipv6(b: &[u8]) -> Decoded {
    let h = match Ipv6Header::new_checked(b) {
        Ok(h) => h,
        Err(m) => return Decoded::Malformed(m),
    };
    let t = h.transport().and_then(|t| match t {
        Some((proto, p)) => transport(proto, p),
        None => Ok(Transport::None),
    });
    packet(Family::V6, h.src(), h.dst(), t)
}
