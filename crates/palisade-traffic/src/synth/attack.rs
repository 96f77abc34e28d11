//! Attacks from real captures (`testdata/pcaps` of this crate, built into the program): the
//! kinds, the captures they come from, reading a capture into a template (with palisade-nad's
//! own reader), and replaying a template as an episode: victim -> the VM, each attacker -> a
//! generated address, times mapped into the episode (stretched, compressed, subsampled or
//! repeated), checksums updated.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use palisade_nad::build::ethernet;
use palisade_nad::decode::{EthernetFrame, Ipv4Header};
use palisade_nad::{CaptureReader, LinkType};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::{CaptureOrigin, CaptureSource, DatasetError};
use super::packet::{adjust, be16, ones_sum, pseudo_sum, Packet, SNAPLEN};
use palisade_rng::Rng;

/// An attack kind; its name is what `labels.csv` says in the `attack` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackKind {
    /// TCP SYN flood (CIC-DDoS2019).
    SynFlood,
    /// HTTP flood (CIC-DDoS2019 WebDDoS).
    HttpFlood,
    /// masscan TCP port scan of ports 0-1000 (ESnet).
    MasscanTcp,
    /// masscan UDP port scan of ports 0-1000 (ESnet).
    MasscanUdp,
    /// nmap scans of port 80: `-A` (OS and version detection, scripts) or `-sV` (ESnet).
    Nmap,
}

/// One capture an attack kind replays: its file name, the victim address inside it, and its
/// bytes as built into the program.
#[derive(Clone, Copy)]
pub struct Source {
    /// File name in `testdata/pcaps` (and in a directory given instead of the built-in copies).
    pub file: &'static str,
    /// The attacked host in that capture (see `testdata/pcaps/README.md`).
    pub victim: Ipv4Addr,
    /// The capture, from `testdata/pcaps` at build time.
    pub(crate) built_in: &'static [u8],
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("file", &self.file)
            .field("victim", &self.victim)
            .field("built_in_bytes", &self.built_in.len())
            .finish()
    }
}

/// A [`Source`] whose built-in bytes are `testdata/pcaps/$file`.
macro_rules! source {
    ($file:literal, $victim:expr) => {
        Source { file: $file, victim: $victim, built_in: include_bytes!(concat!("../../testdata/pcaps/", $file)) }
    };
}

/// How an episode's times are made from the capture's.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timing {
    /// Fit the capture into a duration drawn from `secs`, at a packet rate drawn from `rate`
    /// (subsampling, or repeating the capture), or with every packet when `rate` is `None`.
    Fit { secs: (u64, u64), rate: Option<(f64, f64)> },
    /// Stretch the capture's own time by a factor drawn from this range; every packet.
    Stretch { factor: (f64, f64) },
}

impl AttackKind {
    /// Every kind, in label order.
    pub const ALL: [AttackKind; 5] =
        [AttackKind::SynFlood, AttackKind::HttpFlood, AttackKind::MasscanTcp, AttackKind::MasscanUdp, AttackKind::Nmap];

    /// The name used in `labels.csv`, `dataset.json` and `--held-back`.
    pub fn name(self) -> &'static str {
        match self {
            AttackKind::SynFlood => "syn_flood",
            AttackKind::HttpFlood => "http_flood",
            AttackKind::MasscanTcp => "masscan_tcp",
            AttackKind::MasscanUdp => "masscan_udp",
            AttackKind::Nmap => "nmap",
        }
    }

    /// The kind of a name (`-` and `_` alike).
    pub fn parse(name: &str) -> Result<Self, DatasetError> {
        let norm = name.trim().replace('-', "_");
        Self::ALL.into_iter().find(|k| k.name() == norm).ok_or_else(|| DatasetError::UnknownKind {
            name: name.to_owned(),
            known: Self::ALL.map(|k| k.name()).join(", "),
        })
    }

    /// The captures this kind replays (one is chosen per episode).
    pub fn sources(self) -> &'static [Source] {
        const SYN: [Source; 1] = [source!("cicddos2019-synflood.pcap", Ipv4Addr::new(192, 168, 50, 4))];
        const HTTP: [Source; 1] = [source!("cicddos2019-webddos.pcap", Ipv4Addr::new(192, 168, 50, 1))];
        const MTCP: [Source; 1] = [source!("esnet-masscan-tcp_0_1000_20190821.pcap", Ipv4Addr::new(198, 124, 152, 15))];
        const MUDP: [Source; 1] = [source!("esnet-masscan-udp_0_1000_20190821.pcap", Ipv4Addr::new(198, 124, 152, 15))];
        const NMAP: [Source; 2] = [
            source!("esnet-nmap-nmap_80_all.pcap", Ipv4Addr::new(130, 211, 223, 103)),
            source!("esnet-nmap-nmap_80_w_service_detection.pcap", Ipv4Addr::new(130, 211, 223, 103)),
        ];
        match self {
            AttackKind::SynFlood => &SYN,
            AttackKind::HttpFlood => &HTTP,
            AttackKind::MasscanTcp => &MTCP,
            AttackKind::MasscanUdp => &MUDP,
            AttackKind::Nmap => &NMAP,
        }
    }

    /// The SYN flood's 26,316 packets in 0.7 s become 2-10 minutes at 5-40 packets/s; the
    /// HTTP flood's 26 minutes are compressed into 3-10; scans keep their own pace or are
    /// slowed down up to 12 (masscan) or 8 (nmap) times.
    pub(crate) fn timing(self) -> Timing {
        match self {
            AttackKind::SynFlood => Timing::Fit { secs: (120, 600), rate: Some((5.0, 40.0)) },
            AttackKind::HttpFlood => Timing::Fit { secs: (180, 600), rate: None },
            AttackKind::MasscanTcp | AttackKind::MasscanUdp => Timing::Stretch { factor: (1.0, 12.0) },
            AttackKind::Nmap => Timing::Stretch { factor: (1.0, 8.0) },
        }
    }
}

impl fmt::Display for AttackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A capture's packets that involve its victim, ready to replay.
#[derive(Debug)]
pub(crate) struct Template {
    pub source: Source,
    pub sha256: String,
    /// `(time since the first kept packet, IP wire length, IP bytes up to the snap length)`.
    pub packets: Vec<(u64, u32, Vec<u8>)>,
    /// The addresses other than the victim, in order of first appearance.
    pub peers: Vec<u32>,
    /// Records in the file.
    pub records: u64,
    /// Records skipped: not IPv4 over Ethernet/raw IP, or not to/from the victim.
    pub skipped: u64,
}

impl Template {
    /// Reads the capture built into the program, or `dir/source.file` when `dir` is given,
    /// with palisade-nad's reader.
    pub(crate) fn load(dir: Option<&Path>, source: Source) -> Result<Self, DatasetError> {
        let (capture, bytes) = match dir {
            None => (CaptureOrigin::BuiltIn(source.file), Cow::Borrowed(source.built_in)),
            Some(dir) => {
                let path = dir.join(source.file);
                let bytes = std::fs::read(&path).map_err(|e| DatasetError::Capture {
                    capture: CaptureOrigin::File(path.clone()),
                    source: CaptureSource::Open(e),
                })?;
                (CaptureOrigin::File(path), Cow::Owned(bytes))
            }
        };
        let failed = |s| DatasetError::Capture { capture: capture.clone(), source: s };
        let sha256 = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        let mut reader = CaptureReader::new(&bytes[..]).map_err(|e| failed(CaptureSource::Read(e)))?;
        let (mut packets, mut peers, mut records, mut skipped) = (Vec::new(), Vec::new(), 0, 0);
        let victim = u32::from(source.victim);
        while let Some(f) = reader.next_frame().map_err(|e| failed(CaptureSource::Read(e)))? {
            records += 1;
            let Some(ip) = ipv4_bytes(f.link, f.data) else {
                skipped += 1;
                continue;
            };
            let Ok(h) = Ipv4Header::new_checked(ip) else {
                skipped += 1;
                continue;
            };
            let peer = match (h.src() == victim, h.dst() == victim) {
                (true, false) => h.dst(),
                (false, true) => h.src(),
                _ => {
                    skipped += 1;
                    continue;
                }
            };
            if !peers.contains(&peer) {
                peers.push(peer);
            }
            let link_len = (f.data.len() - ip.len()) as u32;
            let wire = f.orig_len.saturating_sub(link_len).max(ip.len() as u32);
            let keep = ip.len().min(SNAPLEN as usize - EthernetFrame::HEADER_LEN);
            packets.push((f.ts_ns, wire, ip[..keep].to_vec()));
        }
        if packets.is_empty() {
            return Err(DatasetError::NoVictimPackets { capture, victim: source.victim });
        }
        packets.sort_by_key(|p| p.0);
        let t0 = packets[0].0;
        for p in &mut packets {
            p.0 -= t0;
        }
        Ok(Template { source, sha256, packets, peers, records, skipped })
    }

    /// Packets kept.
    pub(crate) fn len(&self) -> usize {
        self.packets.len()
    }

    /// Time from the first kept packet to the last, at least 1 ns.
    pub(crate) fn duration_ns(&self) -> u64 {
        self.packets.last().map_or(1, |p| p.0.max(1))
    }
}

/// The IPv4 bytes of an Ethernet (up to two VLAN tags) or raw-IP frame.
fn ipv4_bytes(link: LinkType, data: &[u8]) -> Option<&[u8]> {
    match link {
        LinkType::ETHERNET => {
            let eth = EthernetFrame::new_checked(data).ok()?;
            let (mut ty, mut rest) = (eth.ethertype(), eth.payload());
            for _ in 0..2 {
                if (ty == 0x8100 || ty == 0x88a8) && rest.len() >= 4 {
                    ty = be16(rest, 2);
                    rest = &rest[4..];
                }
            }
            (ty == 0x0800).then_some(rest)
        }
        LinkType::RAW | LinkType::IPV4 => Some(data),
        _ => None,
    }
}

/// One scheduled replay of a template.
#[derive(Debug, Clone, Serialize)]
pub struct Episode {
    /// The kind.
    pub kind: AttackKind,
    /// The capture replayed.
    pub source: &'static str,
    /// First packet, Unix nanoseconds.
    pub start_ns: u64,
    /// Length of the replay in nanoseconds.
    pub duration_ns: u64,
    /// Share of the capture's packets kept per pass.
    pub keep: f64,
    /// Times the capture is played in a row.
    pub passes: u32,
    /// The addresses standing in for the capture's attackers (and any other peer of the victim).
    pub attackers: Vec<Ipv4Addr>,
    /// Packets written (filled in when the episode is replayed).
    pub packets: u64,
    #[serde(skip)]
    pub(crate) template: usize,
    #[serde(skip)]
    pub(crate) seed: u64,
}

impl Episode {
    /// The episode's packets, in time order.
    pub(crate) fn replay(&self, tpl: &Template, vm: Ipv4Addr) -> Vec<Packet> {
        let mut rng = Rng::stream(self.seed, 7);
        let map: HashMap<u32, u32> = tpl.peers.iter().copied().zip(self.attackers.iter().map(|&a| a.into())).collect();
        let victim = u32::from(tpl.source.victim);
        let vm = u32::from(vm);
        let translate = |a: u32| if a == victim { vm } else { map.get(&a).copied().unwrap_or(a) };
        let src_ns = u128::from(tpl.duration_ns());
        let total = src_ns * u128::from(self.passes);
        let mut out = Vec::new();
        for pass in 0..self.passes {
            for (rel, wire, ip) in &tpl.packets {
                if self.keep < 1.0 && !rng.chance(self.keep) {
                    continue;
                }
                let at = (u128::from(pass) * src_ns + u128::from(*rel)) * u128::from(self.duration_ns) / total;
                let mut ip = ip.clone();
                rewrite(&mut ip, &translate);
                let frame = ethernet(&ip, &[]);
                let orig_len = (wire + 14).max(60);
                out.push(Packet { ts_ns: self.start_ns + at as u64, orig_len, frame });
            }
        }
        out
    }
}

/// Rewrites the addresses of an IPv4 packet (and those quoted in an ICMP error) through `map`
/// and leaves its checksums right. When the whole datagram was captured, the IPv4, TCP, UDP and
/// ICMP checksums are computed afresh, so ones the source got wrong (offloaded on the sending
/// host, or a flood tool's) come out right; otherwise they are updated for the changed words
/// (RFC 1624: right if they were right). Never panics: parts cut off are left alone.
pub fn rewrite(ip: &mut [u8], map: &dyn Fn(u32) -> u32) {
    let Some(words) = set_addrs(ip, 0, map) else { return };
    let Ok(h) = Ipv4Header::new_checked(ip) else { return };
    let (hl, proto, total, flags) = (h.header_len(), h.protocol(), h.total_len(), be16(ip, 6));
    let first = flags & 0x1fff == 0;
    let whole = first && flags & 0x2000 == 0 && total >= hl && ip.len() >= total;
    if first {
        match proto {
            6 => {
                fix(ip, hl + 16, &words);
            }
            17 => {
                fix_udp(ip, hl + 6, &words);
            }
            1 if matches!(ip.get(hl), Some(3 | 4 | 5 | 11 | 12)) => icmp_error(ip, hl, map),
            _ => {}
        }
    }
    if whole {
        let (s, d) = (ip[12..16].try_into().unwrap_or_default(), ip[16..20].try_into().unwrap_or_default());
        let seg = &ip[hl..total];
        let (at, start) = match proto {
            6 if seg.len() >= 20 => (hl + 16, pseudo_sum(s, d, 6, seg.len())),
            17 if seg.len() >= 8 && be16(seg, 6) != 0 => (hl + 6, pseudo_sum(s, d, 17, seg.len())),
            1 if seg.len() >= 8 => (hl + 2, 0),
            _ => (0, 0),
        };
        if at != 0 {
            ip[at..at + 2].fill(0);
            let c = !(ones_sum(&ip[hl..total], start) as u16);
            ip[at..at + 2].copy_from_slice(&if c == 0 && proto == 17 { 0xffff } else { c }.to_be_bytes());
        }
    }
    if hl <= ip.len() {
        ip[10..12].fill(0);
        let c = !(ones_sum(&ip[..hl], 0) as u16);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    } else {
        fix(ip, 10, &words);
    }
}

/// The header quoted in an ICMP error: its addresses, its checksum and its transport checksum
/// (whose pseudo-header holds them), and the ICMP checksum over all that.
fn icmp_error(ip: &mut [u8], hl: usize, map: &dyn Fn(u32) -> u32) {
    let inner = hl + 8;
    let Some(inner_words) = set_addrs(ip, inner, map) else { return };
    let mut icmp_changes = inner_words.clone();
    icmp_changes.extend(fix(ip, inner + 10, &inner_words));
    if let Ok(ih) = Ipv4Header::new_checked(&ip[inner..]) {
        if ih.frag_offset() == 0 {
            let at = inner + ih.header_len();
            match ih.protocol() {
                6 => icmp_changes.extend(fix(ip, at + 16, &inner_words)),
                17 => icmp_changes.extend(fix_udp(ip, at + 6, &inner_words)),
                _ => {}
            }
        }
    }
    fix(ip, hl + 2, &icmp_changes);
}

/// Sets the source and destination of the IPv4 header at `at`; returns the changed words.
fn set_addrs(ip: &mut [u8], at: usize, map: &dyn Fn(u32) -> u32) -> Option<Vec<(u16, u16)>> {
    let h = Ipv4Header::new_checked(ip.get(at..)?).ok()?;
    let (src, dst) = (map(h.src()), map(h.dst()));
    let mut words = Vec::with_capacity(4);
    for (off, v) in [(12, src), (16, dst)] {
        let p = at + off;
        let b = v.to_be_bytes();
        words.push((be16(ip, p), u16::from_be_bytes([b[0], b[1]])));
        words.push((be16(ip, p + 2), u16::from_be_bytes([b[2], b[3]])));
        ip[p..p + 4].copy_from_slice(&b);
    }
    Some(words)
}

/// Adjusts the checksum at `at` (if captured) for covered words that changed; returns its change.
fn fix(ip: &mut [u8], at: usize, changes: &[(u16, u16)]) -> Option<(u16, u16)> {
    if ip.len() < at + 2 {
        return None;
    }
    let old = be16(ip, at);
    let new = changes.iter().fold(old, |c, &(o, n)| adjust(c, o, n));
    ip[at..at + 2].copy_from_slice(&new.to_be_bytes());
    Some((old, new))
}

/// As [`fix`] for a UDP checksum: 0 means "none" and stays; a computed 0 is sent as 0xffff.
fn fix_udp(ip: &mut [u8], at: usize, changes: &[(u16, u16)]) -> Option<(u16, u16)> {
    if ip.len() < at + 2 || be16(ip, at) == 0 {
        return None;
    }
    let (old, new) = fix(ip, at, changes)?;
    if new == 0 {
        ip[at..at + 2].copy_from_slice(&0xffffu16.to_be_bytes());
        return Some((old, 0xffff));
    }
    Some((old, new))
}
