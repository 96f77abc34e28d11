//! Capture formats and link types: every variant of the same traffic gives the same rows; damage
//! is counted and reported, never fatal; no input panics.

use std::net::IpAddr;

use palisade_nad::build::{ethernet, ip_packet, sll, sll2, PcapWriter, PcapngWriter, L4};
use palisade_nad::decode::tcp_flags::{ACK, SYN};
use palisade_nad::{extract_bytes, CaptureReader, Config, LinkType, ReadError, Row, Seconds, Series, Stop};
use palisade_rng::Rng;

const T0: u64 = 1_700_000_000_000_000_000;
const S: u64 = 1_000_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn cfg(vms: &[&str]) -> Config {
    Config {
        vms: vms.iter().map(|v| ip(v)).collect(),
        window: Seconds::from_secs(1),
        reorder: Seconds::from_secs(1),
        series: Series::Bounded,
    }
}

/// The traffic every format carries: (time, IP packet, wire length of an Ethernet frame).
fn traffic() -> Vec<(u64, Vec<u8>, u32)> {
    let v = "10.0.0.5";
    vec![
        (T0 + 1_000, ip_packet(ip("10.0.0.9"), ip(v), L4::Tcp(40000, 80, SYN), 46, &[]), 60),
        (T0 + 2_000, ip_packet(ip(v), ip("10.0.0.9"), L4::Tcp(80, 40000, SYN | ACK), 46, &[]), 60),
        (T0 + 3_500, ip_packet(ip("10.0.0.7"), ip(v), L4::Udp(5000, 53), 86, &[]), 100),
        (T0 + 2 * S + 7, ip_packet(ip("10.0.0.7"), ip(v), L4::Udp(5000, 123), 86, &[]), 100),
        (T0 + 2 * S + 9, ip_packet(ip("fd00::7"), ip("fd00::5"), L4::Tcp(1, 22, SYN), 60, &[0]), 74),
    ]
}

fn rows(bytes: &[u8]) -> Vec<Row> {
    extract_bytes(bytes, &cfg(&["10.0.0.5", "fd00::5"])).expect("extract").0
}

fn pcap(nanos: bool, big_endian: bool, link: LinkType, wrap: fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new(), link, 65535, nanos, big_endian).expect("mem");
    for (ts, p, wire) in traffic() {
        w.packet(ts, wire, &wrap(&p)).expect("mem");
    }
    w.into_inner().expect("mem")
}

fn eth(p: &[u8]) -> Vec<u8> {
    ethernet(p, &[])
}

fn raw(p: &[u8]) -> Vec<u8> {
    p.to_vec()
}

#[test]
fn classic_pcap_in_every_magic_and_byte_order_gives_the_same_rows() {
    let reference = rows(&pcap(false, false, LinkType::ETHERNET, eth));
    // Windows 0..2 for the IPv4 VM (1 empty) and window 2 for the IPv6 one.
    assert_eq!(reference.len(), 4);
    assert_eq!(reference[0].features.pps, 3.0);
    for (nanos, be) in [(false, true), (true, false), (true, true)] {
        assert_eq!(rows(&pcap(nanos, be, LinkType::ETHERNET, eth)), reference, "nanos={nanos} big_endian={be}");
    }
}

#[test]
fn every_link_type_gives_the_same_rows() {
    let reference = rows(&pcap(false, false, LinkType::ETHERNET, eth));
    for (link, wrap) in [
        (LinkType::LINUX_SLL, sll as fn(&[u8]) -> Vec<u8>),
        (LinkType::LINUX_SLL2, sll2),
        (LinkType::RAW, raw),
        (LinkType(1), |p: &[u8]| ethernet(p, &[(0x8100, 7)])),
        (LinkType(1), |p: &[u8]| ethernet(p, &[(0x88a8, 7), (0x8100, 9)])),
    ] {
        assert_eq!(rows(&pcap(true, false, link, wrap)), reference, "{link}");
    }
    // LINKTYPE_IPV4 / IPV6 carry one family each.
    let mut w4 = PcapWriter::new(Vec::new(), LinkType::IPV4, 65535, false, false).expect("mem");
    let mut w6 = PcapWriter::new(Vec::new(), LinkType::IPV6, 65535, false, false).expect("mem");
    for (ts, p, wire) in traffic() {
        let w = if p[0] >> 4 == 4 { &mut w4 } else { &mut w6 };
        w.packet(ts, wire, &p).expect("mem");
    }
    let mut both = rows(&w4.into_inner().expect("mem"));
    both.extend(rows(&w6.into_inner().expect("mem")));
    assert_eq!(both, reference);
}

#[test]
fn pcapng_interfaces_with_their_own_link_types_resolutions_and_byte_orders() {
    let reference = rows(&pcap(false, false, LinkType::ETHERNET, eth));
    for big_endian in [false, true] {
        let mut w = PcapngWriter::new(Vec::new(), big_endian).expect("mem");
        // 0: Ethernet, default microseconds; 1: SLL2 in nanoseconds; 2: raw IP in 2^-20 s with
        // a 100 s offset; the packets rotate over them.
        w.interface(LinkType::ETHERNET, 0, None, None).expect("mem");
        w.interface(LinkType::LINUX_SLL2, 0, Some(9), None).expect("mem");
        w.interface(LinkType::RAW, 0, Some(0x80 | 20), Some(100)).expect("mem");
        for (i, (ts, p, wire)) in traffic().into_iter().enumerate() {
            match i % 3 {
                0 => w.enhanced(0, ts / 1000, wire, &ethernet(&p, &[])),
                1 => w.enhanced(1, ts, wire, &sll2(&p)),
                _ => {
                    // Units of 2^-20 s since (epoch + 100 s); exact for these times to 1 µs.
                    let units = (u128::from(ts - 100 * S) << 20).div_ceil(1_000_000_000) as u64;
                    w.enhanced(2, units, wire, &p)
                }
            }
            .expect("mem");
        }
        let got = rows(&w.into_inner().expect("mem"));
        assert_eq!(got.len(), reference.len());
        for (g, r) in got.iter().zip(&reference) {
            assert_eq!((g.vm, g.window_start_ns, g.features), (r.vm, r.window_start_ns, r.features));
        }
    }
}

#[test]
fn pcapng_sections_switch_byte_order_and_reset_interfaces_simple_and_obsolete_blocks_read() {
    let t = traffic();
    let mut w = PcapngWriter::new(Vec::new(), false).expect("mem");
    w.interface(LinkType::ETHERNET, 0, Some(9), None).expect("mem");
    w.enhanced(0, t[0].0, t[0].2, &ethernet(&t[0].1, &[])).expect("mem");
    // A simple packet block has no time: placed at the previous packet's.
    w.simple(t[1].2, &ethernet(&t[1].1, &[])).expect("mem");
    w.section(true).expect("mem");
    // Interface 0 of the new section is raw IP; a packet naming interface 1 is skipped.
    w.interface(LinkType::RAW, 0, None, None).expect("mem");
    w.obsolete(0, t[2].0 / 1000, t[2].2, &t[2].1).expect("mem");
    w.enhanced(1, t[3].0 / 1000, t[3].2, &t[3].1).expect("mem");
    w.block(0x0000_0BAD, &[1, 2, 3]).expect("mem"); // unknown block: skipped by length
    let bytes = w.into_inner().expect("mem");
    let (rows, report) = extract_bytes(&bytes, &cfg(&["10.0.0.5"])).expect("extract");
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].features.pps, rows[0].features.syn_count, rows[0].features.ip_count), (3.0, 1, 2));
    assert_eq!((report.read.untimed_placed, report.read.unknown_interface), (1, 1));
    assert!(report.stop.is_none());
}

#[test]
fn a_truncated_file_yields_rows_for_what_was_read_and_says_where_it_ends() {
    let full = pcap(false, false, LinkType::ETHERNET, eth);
    let cut = &full[..full.len() - 30]; // inside the last record
    let (rows, report) = extract_bytes(cut, &cfg(&["10.0.0.5", "fd00::5"])).expect("extract");
    assert_eq!(rows.len(), 3, "the IPv6 packet in the cut record is gone, the rest is there");
    let last = ethernet(&traffic()[4].1, &[]).len();
    let offset = (full.len() - 16 - last) as u64;
    assert_eq!(report.stop, Some(Stop::Truncated { offset }));
    assert!(report.warnings()[0].starts_with("the file is truncated"), "{:?}", report.warnings());
}

#[test]
fn a_corrupt_record_stops_reading_with_a_warning_rows_before_it_stay() {
    let mut bytes = pcap(false, false, LinkType::ETHERNET, eth);
    let third = 24 + (16 + 60) * 2; // third record header
    bytes[third + 8..third + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let (rows, report) = extract_bytes(&bytes, &cfg(&["10.0.0.5"])).expect("extract");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].features.pps, 2.0);
    assert!(matches!(report.stop, Some(Stop::Corrupt { offset, .. }) if offset == third as u64));
}

#[test]
fn files_that_are_not_captures_are_errors_that_say_so() {
    let e = CaptureReader::new(&b"GET / HTTP/1.1\r\n\r\n...."[..]).expect_err("not a capture");
    assert!(matches!(e, ReadError::NotCapture { magic: Some(0x2054_4547) }), "{e}");
    assert_eq!(e.to_string(), "not a pcap or pcapng file (magic number 0x20544547)");
    let e = CaptureReader::new(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0][..]).expect_err("short");
    assert_eq!(e.to_string(), "the pcap file header is cut short (6 bytes)");
    assert!(matches!(CaptureReader::new(&[][..]), Err(ReadError::NotCapture { magic: None })));
}

#[test]
fn malformed_packets_are_counted_by_reason_and_reported() {
    let mut w = PcapWriter::new(Vec::new(), LinkType::ETHERNET, 65535, false, false).expect("mem");
    let good = ip_packet(ip("10.0.0.9"), ip("10.0.0.5"), L4::Udp(1, 53), 86, &[]);
    w.packet(T0, 100, &ethernet(&good, &[])).expect("mem");
    w.packet(T0 + 1, 100, &[0u8; 10]).expect("mem"); // shorter than Ethernet
    let mut bad_ihl = ethernet(&good, &[]);
    bad_ihl[14] = 0x43;
    w.packet(T0 + 2, 100, &bad_ihl).expect("mem");
    let (rows, report) = extract_bytes(&w.into_inner().expect("mem"), &cfg(&["10.0.0.5"])).expect("extract");
    assert_eq!(rows[0].features.pps, 1.0);
    assert_eq!(report.extract.malformed_total(), 2);
    let warning = report.warnings().join("\n");
    assert!(
        warning.contains(
            "2 malformed packets (1 frame shorter than its link-layer header, 1 IPv4 header length below 20 bytes)"
        ),
        "{warning}"
    );
}

#[test]
fn mutated_captures_never_panic_seeded() {
    let mut seeds = vec![
        pcap(false, false, LinkType::ETHERNET, eth),
        pcap(true, true, LinkType::LINUX_SLL, sll),
        pcap(false, false, LinkType::RAW, raw),
    ];
    let mut w = PcapngWriter::new(Vec::new(), true).expect("mem");
    w.interface(LinkType::LINUX_SLL2, 0, Some(0x85), Some(-5)).expect("mem");
    for (ts, p, wire) in traffic() {
        w.enhanced(0, ts, wire, &sll2(&p)).expect("mem");
    }
    seeds.push(w.into_inner().expect("mem"));
    // Seeded: the same mutations every run.
    let mut rng = Rng::new(4);
    // A mutated timestamp can jump decades, and every window between the first and the last
    // packet is a row (as the spec says): a long window keeps that to thousands of rows.
    let cfg = Config { window: Seconds::from_secs(1_000_000), ..cfg(&["10.0.0.5", "fd00::5", "10.0.0.9"]) };
    for round in 0..3000 {
        let mut b = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(b.len());
            match rng.below(3) {
                0 => b[at] = rng.next_u64() as u8,
                1 => b.truncate(at),
                _ => b[at] ^= 1 << rng.below(8),
            }
            if b.is_empty() {
                break;
            }
        }
        // Any outcome is fine except a panic (or a hang).
        let _ = extract_bytes(&b, &cfg);
        for link in [1u16, 101, 113, 228, 229, 276] {
            let _ = palisade_nad::decode(LinkType(link), b.get(24..).unwrap_or_default());
        }
    }
}
