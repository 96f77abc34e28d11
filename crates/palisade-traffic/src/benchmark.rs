//! A seeded generator of benchmark captures for the feature extractor (`palisade nad generate`): classic pcap, Ethernet, headers-only snap length,
//! a mix of TCP (with connection requests), UDP and ICMP between a few VMs and many peers, plus
//! traffic the features ignore (other hosts, ARP, VLAN-tagged, IPv6).

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use palisade_nad::build::{ethernet, ip_packet, PcapWriter, L4};
use palisade_nad::decode::tcp_flags::{ACK, FIN, PSH, RST, SYN};
use palisade_nad::LinkType;

use palisade_rng::Rng;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Number of packets.
    pub packets: u64,
    /// Number of monitored VMs: 10.0.0.1, 10.0.0.2, ...
    pub vms: u32,
    /// Peer addresses each VM talks to (drawn uniformly, so a window sees about this many).
    pub peers: u32,
    /// Packets per second of capture time.
    pub rate: u64,
    /// PRNG seed: the same seed gives the same file.
    pub seed: u64,
    /// Bytes kept per packet.
    pub snaplen: u32,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig { packets: 1_000_000, vms: 4, peers: 1000, rate: 100_000, seed: 1, snaplen: 96 }
    }
}

/// The addresses of the generated VMs, for `--vm`.
pub fn vm_addrs(n: u32) -> Vec<IpAddr> {
    (0..n).map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i))).collect()
}

const SERVICES: [u16; 8] = [80, 443, 22, 8080, 3306, 25, 6379, 5432];

/// Writes the capture; returns the bytes written.
pub fn generate<W: Write>(out: W, cfg: &GenConfig) -> io::Result<u64> {
    let mut rng = Rng::new(cfg.seed);
    let mut w =
        PcapWriter::new(io::BufWriter::with_capacity(1 << 20, out), LinkType::ETHERNET, cfg.snaplen, false, false)?;
    let vms = vm_addrs(cfg.vms.max(1));
    let gap = 1_000_000_000 / cfg.rate.max(1);
    let mut ts: u64 = 1_700_000_000_000_000_000;
    let mut written = 24u64;
    let arp = [0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 9, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1];
    for _ in 0..cfg.packets {
        ts += gap / 2 + rng.below_u64(gap.max(1));
        let roll = rng.below(100);
        let frame: Vec<u8>;
        let wire: u32;
        if roll < 1 {
            frame = arp.to_vec();
            wire = 60;
        } else {
            let vm = vms[rng.below(vms.len())];
            let peer_n = rng.below_u64(u64::from(cfg.peers.max(1))) as u32;
            let (vm, peer) = if roll < 3 {
                // IPv6 traffic of the same hosts: not the VMs' IPv4 addresses, so ignored.
                let v6 =
                    |x: u32| IpAddr::V6(Ipv6Addr::from(0xfd00_0000_0000_0000_0000_0000_0000_0000u128 | u128::from(x)));
                (v6(1), v6(peer_n + 2))
            } else if roll < 8 {
                (IpAddr::V4(Ipv4Addr::from(0xc0a8_0000 + peer_n % 60000)), IpAddr::V4(Ipv4Addr::new(192, 168, 255, 1)))
            } else {
                (vm, IpAddr::V4(Ipv4Addr::from(0x6400_0000 + peer_n)))
            };
            let inbound = rng.below(100) < 55;
            let service = SERVICES[rng.below(SERVICES.len())];
            let ephemeral = 32768 + rng.below(28000) as u16;
            let kind = rng.below(100);
            let (l4, len) = if kind < 75 {
                let flags = match rng.below(100) {
                    0..=7 => SYN,
                    8..=11 => SYN | ACK,
                    12..=14 => FIN | ACK,
                    15 => RST,
                    16..=55 => ACK,
                    _ => PSH | ACK,
                };
                let len = if flags == PSH | ACK { 66 + rng.below(1449) } else { 40 + 12 * rng.below(2) };
                let (s, d) = if inbound { (ephemeral, service) } else { (service, ephemeral) };
                (L4::Tcp(s, d, flags), len)
            } else if kind < 95 {
                let port = if rng.below(100) < 60 { 53 } else { 1024 + rng.below(60000) as u16 };
                let (s, d) = if inbound { (ephemeral, port) } else { (port, ephemeral) };
                (L4::Udp(s, d), 28 + 16 + rng.below(500))
            } else {
                (L4::Icmp, 84)
            };
            let (src, dst) = if inbound { (peer, vm) } else { (vm, peer) };
            let ip = ip_packet(src, dst, l4, len, &[]);
            let tags: &[(u16, u16)] = if roll < 10 { &[(0x8100, 42)] } else { &[] };
            let mut f = ethernet(&ip, tags);
            wire = f.len().max(60) as u32;
            f.truncate(cfg.snaplen as usize);
            frame = f;
        }
        w.packet(ts, wire, &frame)?;
        written += 16 + frame.len() as u64;
    }
    w.into_inner()?.flush()?;
    Ok(written)
}
