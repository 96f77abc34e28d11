//! Packets of the dataset and the Internet checksums they carry. Background packets are built
//! headers-only with [`palisade_nad::build`]: the payload is all zeros and not captured, so the real
//! TCP/UDP checksum is the one over pseudo-header and header alone (zeros add nothing). Spliced
//! attack packets keep their captured bytes and have their checksums updated incrementally for
//! the rewritten addresses (RFC 1624), which stays right even when the payload was not captured.

use std::net::{IpAddr, Ipv4Addr};

use palisade_nad::build::{ethernet, ip_packet, L4};

/// Bytes kept per packet: Ethernet + IPv4 + TCP with options, or an ICMP error's quoted headers.
pub const SNAPLEN: u32 = 96;

/// One packet of the dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packet {
    /// Nanoseconds since the epoch.
    pub ts_ns: u64,
    /// Length on the wire.
    pub orig_len: u32,
    /// The captured bytes (at most [`SNAPLEN`]).
    pub frame: Vec<u8>,
}

/// The ones' complement sum of `b` (16-bit big-endian words, an odd last byte padded), folded.
pub(crate) fn ones_sum(b: &[u8], mut acc: u32) -> u32 {
    let mut chunks = b.chunks_exact(2);
    for w in &mut chunks {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    fold(acc)
}

fn fold(mut acc: u32) -> u32 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// The pseudo-header sum of a TCP/UDP segment of `len` bytes.
pub(crate) fn pseudo_sum(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u32 {
    let mut acc = ones_sum(&src, 0);
    acc = ones_sum(&dst, acc);
    fold(acc + u32::from(proto) + (len as u32 & 0xffff) + (len as u32 >> 16))
}

/// RFC 1624 eqn. 3: the checksum `hc` after a covered 16-bit word changed from `old` to `new`.
pub(crate) fn adjust(hc: u16, old: u16, new: u16) -> u16 {
    !(fold(u32::from(!hc) + u32::from(!old) + u32::from(new)) as u16)
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// A headers-only Ethernet + IPv4 frame whose IP total length is `ip_len`; TCP carries
/// `seq`/`ack`. Checksums are the real ones for an all-zero payload.
#[allow(clippy::too_many_arguments)]
pub(crate) fn header_frame(
    ts_ns: u64,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    l4: L4,
    ip_len: usize,
    ip_id: u16,
    seq_ack: (u32, u32),
    icmp_reply: bool,
) -> Packet {
    let mut ip = ip_packet(IpAddr::V4(src), IpAddr::V4(dst), l4, 0, &[]);
    let ip_len = ip_len.max(ip.len()).min(usize::from(u16::MAX));
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    let l4_len = ip_len - 20;
    let (s, d) = (src.octets(), dst.octets());
    match l4 {
        L4::Tcp(..) => {
            ip[24..28].copy_from_slice(&seq_ack.0.to_be_bytes());
            ip[28..32].copy_from_slice(&seq_ack.1.to_be_bytes());
            ip[34..36].copy_from_slice(&64240u16.to_be_bytes());
            let sum = ones_sum(&ip[20..40], pseudo_sum(s, d, 6, l4_len));
            ip[36..38].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        }
        L4::Udp(..) => {
            ip[24..26].copy_from_slice(&(l4_len as u16).to_be_bytes());
            let sum = ones_sum(&ip[20..28], pseudo_sum(s, d, 17, l4_len));
            let c = !(sum as u16);
            ip[26..28].copy_from_slice(&if c == 0 { 0xffff } else { c }.to_be_bytes());
        }
        L4::Icmp => {
            if icmp_reply {
                ip[20] = 0;
            }
            ip[24..26].copy_from_slice(&ip_id.to_be_bytes());
            let sum = ones_sum(&ip[20..28], 0);
            ip[22..24].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        }
    }
    let sum = ones_sum(&ip[..20], 0);
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let frame = ethernet(&ip, &[]);
    Packet { ts_ns, orig_len: (14 + ip_len).max(60) as u32, frame }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjust_equals_recomputing() {
        let mut b = [0x45u8, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 192, 168, 1, 9];
        let c = !(ones_sum(&b, 0) as u16);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(ones_sum(&b, 0), 0xffff, "a right checksum sums to all ones");
        let old = be16(&b, 14);
        b[14..16].copy_from_slice(&[0xab, 0xcd]);
        let c2 = adjust(c, old, 0xabcd);
        b[10..12].copy_from_slice(&c2.to_be_bytes());
        assert_eq!(ones_sum(&b, 0), 0xffff);
    }

    #[test]
    fn header_frames_carry_right_checksums() {
        let (a, v) = (Ipv4Addr::new(23, 1, 2, 3), Ipv4Addr::new(10, 0, 0, 5));
        for (l4, proto) in [(L4::Tcp(40000, 80, 0x18), 6u8), (L4::Udp(5000, 53), 17)] {
            let p = header_frame(0, a, v, l4, 700, 9, (1, 2), false);
            let ip = &p.frame[14..];
            assert_eq!(ones_sum(&ip[..20], 0), 0xffff, "IPv4 header checksum");
            assert_eq!(be16(ip, 2), 700);
            assert_eq!(p.orig_len, 714);
            let seg = pseudo_sum(a.octets(), v.octets(), proto, 680);
            assert_eq!(ones_sum(&ip[20..], seg), 0xffff, "{l4:?}: checksum over a zero payload");
        }
        let p = header_frame(0, v, a, L4::Icmp, 84, 3, (0, 0), true);
        assert_eq!(p.frame[14 + 20], 0, "echo reply");
        assert_eq!(ones_sum(&p.frame[34..], 0), 0xffff);
    }
}
