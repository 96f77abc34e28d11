//! Writing packets and capture files: hand-built packets for tests, fuzz seeds and the
//! benchmark generator. Checksums are left zero (the decoder does not read them).

use std::io::{self, Write};
use std::net::IpAddr;

use crate::capture::LinkType;

/// A transport header to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// TCP with these ports and flags (see [`crate::decode::tcp_flags`]).
    Tcp(u16, u16, u8),
    /// UDP with these ports.
    Udp(u16, u16),
    /// ICMP (IPv4) or ICMPv6 echo request.
    Icmp,
}

/// An IP packet from `src` to `dst` (same family) whose IP total length is `ip_len` bytes
/// (at least the headers). IPv6 packets carry the `ext` extension headers (protocol numbers of
/// hop-by-hop 0, routing 43, destination options 60, fragment 44) before the transport header.
///
/// # Panics
/// When `src` and `dst` are of different families (a bug in the caller, not bad input).
pub fn ip_packet(src: IpAddr, dst: IpAddr, l4: L4, ip_len: usize, ext: &[u8]) -> Vec<u8> {
    let (proto, mut l4b) = match l4 {
        L4::Tcp(s, d, flags) => {
            let mut h = vec![0u8; 20];
            h[0..2].copy_from_slice(&s.to_be_bytes());
            h[2..4].copy_from_slice(&d.to_be_bytes());
            h[12] = 5 << 4;
            h[13] = flags;
            (6u8, h)
        }
        L4::Udp(s, d) => {
            let mut h = vec![0u8; 8];
            h[0..2].copy_from_slice(&s.to_be_bytes());
            h[2..4].copy_from_slice(&d.to_be_bytes());
            (17, h)
        }
        L4::Icmp => {
            (if src.is_ipv4() { 1 } else { 58 }, vec![if src.is_ipv4() { 8 } else { 128 }, 0, 0, 0, 0, 0, 0, 0])
        }
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = ip_len.max(20 + l4b.len());
            l4b.resize(total - 20, 0);
            if let (L4::Udp(..), true) = (l4, l4b.len() >= 8) {
                let n = l4b.len() as u16;
                l4b[4..6].copy_from_slice(&n.to_be_bytes());
            }
            let mut p = vec![0x45, 0];
            p.extend_from_slice(&(total as u16).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&l4b);
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut exts = Vec::new();
            for (i, &h) in ext.iter().enumerate() {
                let next = ext.get(i + 1).copied().unwrap_or(proto);
                exts.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 0]);
                if h == 44 {
                    exts.truncate(exts.len() - 8);
                    exts.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 1]);
                }
            }
            let total = ip_len.max(40 + exts.len() + l4b.len());
            l4b.resize(total - 40 - exts.len(), 0);
            let mut p = vec![0x60, 0, 0, 0];
            p.extend_from_slice(&((total - 40) as u16).to_be_bytes());
            p.push(ext.first().copied().unwrap_or(proto));
            p.push(64);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&exts);
            p.extend_from_slice(&l4b);
            p
        }
        _ => panic!("ip_packet: {src} and {dst} are of different families"),
    }
}

/// The EtherType of an IP packet built above.
fn ethertype_of(ip: &[u8]) -> u16 {
    if ip.first().is_some_and(|b| b >> 4 == 6) {
        0x86DD
    } else {
        0x0800
    }
}

/// An Ethernet frame around `ip`, inside the given `(TPID, VLAN id)` tags, outermost first.
pub fn ethernet(ip: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for &(tpid, vid) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype_of(ip).to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// A Linux cooked capture (v1) frame around `ip`.
pub fn sll(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0, 6, 0x02, 0, 0, 0, 0, 1, 0, 0];
    f.extend_from_slice(&ethertype_of(ip).to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// A Linux cooked capture v2 frame around `ip`.
pub fn sll2(ip: &[u8]) -> Vec<u8> {
    let mut f = ethertype_of(ip).to_be_bytes().to_vec();
    f.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 0x02, 0, 0, 0, 0, 1, 0, 0]);
    f.extend_from_slice(ip);
    f
}

/// Writes a classic pcap file.
#[derive(Debug)]
pub struct PcapWriter<W> {
    out: W,
    nanos: bool,
    big_endian: bool,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header: microsecond or nanosecond magic, in either byte order.
    pub fn new(mut out: W, link: LinkType, snaplen: u32, nanos: bool, big_endian: bool) -> io::Result<Self> {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut h = Vec::with_capacity(24);
        let put32 =
            |h: &mut Vec<u8>, v: u32| h.extend_from_slice(&if big_endian { v.to_be_bytes() } else { v.to_le_bytes() });
        put32(&mut h, magic);
        let (maj, min) = if big_endian {
            (2u16.to_be_bytes(), 4u16.to_be_bytes())
        } else {
            (2u16.to_le_bytes(), 4u16.to_le_bytes())
        };
        h.extend_from_slice(&maj);
        h.extend_from_slice(&min);
        put32(&mut h, 0);
        put32(&mut h, 0);
        put32(&mut h, snaplen);
        put32(&mut h, u32::from(link.0));
        out.write_all(&h)?;
        Ok(PcapWriter { out, nanos, big_endian })
    }

    /// Writes one record: time in nanoseconds, wire length, captured bytes.
    pub fn packet(&mut self, ts_ns: u64, orig_len: u32, data: &[u8]) -> io::Result<()> {
        let frac = if self.nanos { ts_ns % 1_000_000_000 } else { ts_ns % 1_000_000_000 / 1000 };
        let fields = [(ts_ns / 1_000_000_000) as u32, frac as u32, data.len() as u32, orig_len];
        let mut h = [0u8; 16];
        for (i, v) in fields.into_iter().enumerate() {
            h[i * 4..i * 4 + 4].copy_from_slice(&if self.big_endian { v.to_be_bytes() } else { v.to_le_bytes() });
        }
        self.out.write_all(&h)?;
        self.out.write_all(data)
    }

    /// Flushes and returns the writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes a pcapng file block by block.
#[derive(Debug)]
pub struct PcapngWriter<W> {
    out: W,
    big_endian: bool,
}

impl<W: Write> PcapngWriter<W> {
    /// Starts a file with a section header in the given byte order.
    pub fn new(out: W, big_endian: bool) -> io::Result<Self> {
        let mut w = PcapngWriter { out, big_endian };
        w.section(big_endian)?;
        Ok(w)
    }

    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn u16(&self, v: u16) -> [u8; 2] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    /// Writes a raw block: type, body (padded to 4 bytes), lengths.
    pub fn block(&mut self, kind: u32, body: &[u8]) -> io::Result<()> {
        let padded = (body.len() + 3) & !3;
        let len = (12 + padded) as u32;
        let mut b = Vec::with_capacity(len as usize);
        b.extend_from_slice(&self.u32(kind));
        b.extend_from_slice(&self.u32(len));
        b.extend_from_slice(body);
        b.resize(8 + padded, 0);
        b.extend_from_slice(&self.u32(len));
        self.out.write_all(&b)
    }

    /// Starts a new section (forgetting interfaces) in the given byte order.
    pub fn section(&mut self, big_endian: bool) -> io::Result<()> {
        self.big_endian = big_endian;
        let mut body = self.u32(0x1A2B_3C4D).to_vec();
        body.extend_from_slice(&self.u16(1));
        body.extend_from_slice(&self.u16(0));
        body.extend_from_slice(&[0xff; 8]);
        self.block(0x0A0D_0D0A, &body)
    }

    /// Describes the next interface; `tsresol` is the raw `if_tsresol` byte, `tsoffset` seconds.
    pub fn interface(
        &mut self,
        link: LinkType,
        snaplen: u32,
        tsresol: Option<u8>,
        tsoffset: Option<i64>,
    ) -> io::Result<()> {
        let mut body = self.u16(link.0).to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&self.u32(snaplen));
        if let Some(r) = tsresol {
            body.extend_from_slice(&self.u16(9));
            body.extend_from_slice(&self.u16(1));
            body.extend_from_slice(&[r, 0, 0, 0]);
        }
        if let Some(o) = tsoffset {
            body.extend_from_slice(&self.u16(14));
            body.extend_from_slice(&self.u16(8));
            body.extend_from_slice(&if self.big_endian { o.to_be_bytes() } else { o.to_le_bytes() });
        }
        if tsresol.is_some() || tsoffset.is_some() {
            body.extend_from_slice(&[0, 0, 0, 0]);
        }
        self.block(1, &body)
    }

    /// An enhanced packet block: interface, timestamp in that interface's units.
    pub fn enhanced(&mut self, iface: u32, ts_units: u64, orig_len: u32, data: &[u8]) -> io::Result<()> {
        let mut body = self.u32(iface).to_vec();
        body.extend_from_slice(&self.u32((ts_units >> 32) as u32));
        body.extend_from_slice(&self.u32(ts_units as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(&self.u32(orig_len));
        body.extend_from_slice(data);
        self.block(6, &body)
    }

    /// A simple packet block (interface 0, no timestamp).
    pub fn simple(&mut self, orig_len: u32, data: &[u8]) -> io::Result<()> {
        let mut body = self.u32(orig_len).to_vec();
        body.extend_from_slice(data);
        self.block(3, &body)
    }

    /// The obsolete packet block.
    pub fn obsolete(&mut self, iface: u16, ts_units: u64, orig_len: u32, data: &[u8]) -> io::Result<()> {
        let mut body = self.u16(iface).to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&self.u32((ts_units >> 32) as u32));
        body.extend_from_slice(&self.u32(ts_units as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(&self.u32(orig_len));
        body.extend_from_slice(data);
        self.block(2, &body)
    }

    /// Flushes and returns the writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
