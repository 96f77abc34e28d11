//! Writes the fuzz seeds in fuzz/seeds/nad_decode and fuzz/seeds/nad_capture:
//! `cargo test -p palisade-nad --test fuzz_seeds -- --ignored`. The seeds are hand-built with
//! `palisade_nad::build`, so they are reproducible and hold nobody else's traffic.

use std::net::IpAddr;
use std::path::PathBuf;

use palisade_nad::build::{ethernet, ip_packet, sll, sll2, PcapWriter, PcapngWriter, L4};
use palisade_nad::decode::tcp_flags::{ACK, SYN};
use palisade_nad::LinkType;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn seeds_dir(target: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds").join(target);
    std::fs::create_dir_all(&d).expect("seed dir");
    d
}

#[test]
#[ignore = "writes fuzz seeds into the source tree"]
fn write_fuzz_seeds() {
    let v4 = ip_packet(ip("10.0.0.9"), ip("10.0.0.5"), L4::Tcp(40000, 80, SYN), 60, &[]);
    let udp = ip_packet(ip("10.0.0.7"), ip("10.0.0.5"), L4::Udp(5000, 53), 60, &[]);
    let v6 = ip_packet(ip("fd00::9"), ip("fd00::5"), L4::Tcp(1, 443, SYN | ACK), 90, &[0, 43, 60]);
    let v6frag = ip_packet(ip("fd00::9"), ip("fd00::5"), L4::Udp(1, 53), 90, &[44]);
    let icmp = ip_packet(ip("10.0.0.9"), ip("10.0.0.5"), L4::Icmp, 84, &[]);
    // Link type index in the fuzz target: 0 Ethernet, 1 raw, 2 SLL, 3 IPv4, 4 IPv6, 5 SLL2.
    let frames: Vec<(&str, u8, Vec<u8>)> = vec![
        ("eth_tcp_syn", 0, ethernet(&v4, &[])),
        ("eth_qinq_udp", 0, ethernet(&udp, &[(0x88a8, 5), (0x8100, 7)])),
        ("eth_three_tags", 0, ethernet(&udp, &[(0x88a8, 5), (0x8100, 7), (0x8100, 9)])),
        ("eth_v6_ext", 0, ethernet(&v6, &[])),
        ("raw_v6_frag", 1, v6frag.clone()),
        ("raw_icmp", 1, icmp),
        ("sll_udp", 2, sll(&udp)),
        ("ipv4_cut_tcp", 3, v4[..28].to_vec()),
        ("ipv6_frag", 4, v6frag),
        ("sll2_v6", 5, sll2(&v6)),
    ];
    let dir = seeds_dir("nad_decode");
    for (name, link, frame) in &frames {
        let mut b = vec![*link];
        b.extend_from_slice(frame);
        std::fs::write(dir.join(name), b).expect("write seed");
    }
    let dir = seeds_dir("nad_capture");
    let t0 = 1_700_000_000_000_000_000u64;
    for (name, nanos, be) in [("pcap_us_le", false, false), ("pcap_ns_be", true, true)] {
        let mut w = PcapWriter::new(Vec::new(), LinkType::ETHERNET, 65535, nanos, be).expect("mem");
        for (i, (_, _, f)) in frames.iter().enumerate().filter(|(_, (_, link, _))| *link == 0) {
            w.packet(t0 + i as u64 * 300_000_000, f.len() as u32, f).expect("mem");
        }
        std::fs::write(dir.join(name), w.into_inner().expect("mem")).expect("write seed");
    }
    let mut w = PcapngWriter::new(Vec::new(), false).expect("mem");
    w.interface(LinkType::ETHERNET, 0, None, None).expect("mem");
    w.interface(LinkType::LINUX_SLL2, 96, Some(9), Some(3)).expect("mem");
    w.enhanced(0, t0 / 1000, 74, &ethernet(&v4, &[])).expect("mem");
    w.enhanced(1, t0 + 5, 110, &sll2(&v6)).expect("mem");
    w.simple(74, &ethernet(&udp, &[])).expect("mem");
    w.section(true).expect("mem");
    w.interface(LinkType::RAW, 0, Some(0x80 | 20), None).expect("mem");
    w.obsolete(0, 1 << 40, 60, &udp).expect("mem");
    w.enhanced(0, (1 << 40) + 1, 60, &v4).expect("mem");
    std::fs::write(dir.join("pcapng_mixed"), w.into_inner().expect("mem")).expect("write seed");
}
