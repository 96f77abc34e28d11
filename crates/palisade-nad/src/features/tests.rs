//! Every rule of shared/specs/nad-features.md on hand-built packets, through the whole pipeline
//! (pcap bytes -> reader -> decoder -> extractor). Expected values are worked out by hand in
//! each test's comment.

use std::net::IpAddr;

use super::{Config, Features, Row, Seconds, Series};
use crate::build::{ethernet, ip_packet, PcapWriter, L4};
use crate::capture::LinkType;
use crate::decode::tcp_flags::{ACK, SYN};
use crate::run::extract_bytes;

const T0: u64 = 1_700_000_000_000_000_000; // a multiple of 10 s
const S: u64 = 1_000_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// A packet: time, frame, wire length.
struct P(u64, Vec<u8>, u32);

fn eth(src: &str, dst: &str, l4: L4, wire: u32) -> Vec<u8> {
    let ip_len = wire.saturating_sub(14) as usize;
    ethernet(&ip_packet(ip(src), ip(dst), l4, ip_len, &[]), &[])
}

/// A full-length Ethernet frame of `wire` bytes.
fn p(ts: u64, src: &str, dst: &str, l4: L4, wire: u32) -> P {
    P(ts, eth(src, dst, l4, wire), wire)
}

fn pcap(pkts: &[P]) -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new(), LinkType::ETHERNET, 65535, true, false).expect("in memory");
    for P(ts, frame, wire) in pkts {
        w.packet(*ts, *wire, frame).expect("in memory");
    }
    w.into_inner().expect("in memory")
}

fn cfg(vms: &[&str], window: &str) -> Config {
    Config {
        vms: vms.iter().map(|v| ip(v)).collect(),
        window: window.parse().expect("window"),
        reorder: Seconds::from_secs(1),
        series: Series::Bounded,
    }
}

fn rows(vms: &[&str], window: &str, pkts: &[P]) -> Vec<Row> {
    extract_bytes(&pcap(pkts), &cfg(vms, window)).expect("extract").0
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn assert_features(got: &Features, want: &Features) {
    let pairs = [
        ("access_port", got.access_port, want.access_port),
        ("ip_entro", got.ip_entro, want.ip_entro),
        ("service_port_entro", got.service_port_entro, want.service_port_entro),
        ("syn_rate", got.syn_rate, want.syn_rate),
        ("bps", got.bps, want.bps),
        ("pps", got.pps, want.pps),
        ("packet_per_ip", got.packet_per_ip, want.packet_per_ip),
        ("syn_per_ip", got.syn_per_ip, want.syn_per_ip),
        ("bytes_per_ip", got.bytes_per_ip, want.bytes_per_ip),
    ];
    for (name, g, w) in pairs {
        assert!(close(g, w), "{name}: got {g}, want {w}");
    }
    assert_eq!((got.ip_count, got.syn_count), (want.ip_count, want.syn_count), "ip_count, syn_count");
}

#[test]
fn worked_example_of_the_spec_is_reproduced_exactly() {
    // A=10.0.0.9:40000 -> V:80 SYN (60), V:80 -> A SYN-ACK (60), B=10.0.0.7:5000 -> V:53 UDP (100).
    let r = rows(
        &["10.0.0.5"],
        "1",
        &[
            p(T0, "10.0.0.9", "10.0.0.5", L4::Tcp(40000, 80, SYN), 60),
            p(T0 + 1000, "10.0.0.5", "10.0.0.9", L4::Tcp(80, 40000, SYN | ACK), 60),
            p(T0 + 2000, "10.0.0.7", "10.0.0.5", L4::Udp(5000, 53), 100),
        ],
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].window_start_ns, T0);
    let f = r[0].features;
    assert_eq!(f.access_port, 1.0);
    assert!((f.ip_entro - 0.918296).abs() < 5e-7, "ip_entro {}", f.ip_entro);
    assert_eq!(f.service_port_entro, 1.0);
    assert_eq!(f.syn_rate, 1.0 / 3.0);
    assert_eq!((f.bps, f.pps, f.packet_per_ip, f.ip_count), (220.0, 3.0, 1.5, 2));
    assert_eq!((f.syn_per_ip, f.bytes_per_ip, f.syn_count), (0.5, 110.0, 1));
}

#[test]
fn only_ip_packets_to_or_from_the_vm_count() {
    let mut pkts = vec![
        p(T0, "10.0.0.9", "10.0.0.5", L4::Udp(1, 53), 100),
        // Other hosts, and V's address inside a non-IP frame (ARP), do not count.
        p(T0 + 1, "10.0.0.9", "10.0.0.6", L4::Udp(1, 53), 100),
    ];
    let mut arp = vec![0xff; 12];
    arp.extend_from_slice(&[
        0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 9, 10, 0, 0, 9, 0, 0, 0, 0, 0, 0, 10, 0, 0, 5,
    ]);
    pkts.push(P(T0 + 2, arp, 60));
    let r = rows(&["10.0.0.5"], "1", &pkts);
    assert_eq!((r[0].features.pps, r[0].features.bps), (1.0, 100.0));
}

#[test]
fn ip_in_one_or_two_vlan_tags_counts_in_three_does_not() {
    let ipp = ip_packet(ip("10.0.0.9"), ip("10.0.0.5"), L4::Udp(1, 53), 86, &[]);
    let pkts = vec![
        P(T0, ethernet(&ipp, &[(0x8100, 10)]), 104),
        P(T0 + 1, ethernet(&ipp, &[(0x88a8, 20), (0x8100, 10)]), 108),
        P(T0 + 2, ethernet(&ipp, &[(0x88a8, 20), (0x8100, 10), (0x8100, 5)]), 112),
    ];
    let (r, report) = extract_bytes(&pcap(&pkts), &cfg(&["10.0.0.5"], "1")).expect("extract");
    assert_eq!((r[0].features.pps, r[0].features.bps), (2.0, 212.0));
    assert_eq!(report.extract.too_many_tags, 1);
}

#[test]
fn bytes_are_wire_length_not_captured_length() {
    let mut frame = eth("10.0.0.9", "10.0.0.5", L4::Tcp(40000, 80, ACK), 1514);
    frame.truncate(68); // snaplen 68
    let r = rows(&["10.0.0.5"], "1", &[P(T0, frame, 1514)]);
    assert_eq!((r[0].features.bps, r[0].features.bytes_per_ip), (1514.0, 1514.0));
}

#[test]
fn syn_means_syn_without_ack_in_either_direction() {
    // In: SYN (counts), SYN-ACK (no); out: SYN (counts), SYN|FIN without ACK (counts), ACK (no).
    let r = rows(
        &["10.0.0.5"],
        "1",
        &[
            p(T0, "10.0.0.9", "10.0.0.5", L4::Tcp(1000, 80, SYN), 60),
            p(T0 + 1, "10.0.0.9", "10.0.0.5", L4::Tcp(1000, 80, SYN | ACK), 60),
            p(T0 + 2, "10.0.0.5", "10.0.0.9", L4::Tcp(2000, 22, SYN), 60),
            p(T0 + 3, "10.0.0.5", "10.0.0.9", L4::Tcp(2000, 22, SYN | 0x01), 60),
            p(T0 + 4, "10.0.0.5", "10.0.0.9", L4::Tcp(2000, 22, ACK), 60),
        ],
    );
    let f = r[0].features;
    assert_eq!((f.syn_count, f.syn_rate, f.syn_per_ip), (3, 3.0 / 5.0, 3.0));
}

#[test]
fn access_port_counts_distinct_ports_per_client_of_inbound_tcp_udp_only() {
    // Client A -> V ports {80, 443, 22} (80 twice), client B -> V port {53}:
    // n = (3, 1), p = (3/4, 1/4): H = 0.811278124459. Outbound packets V -> C:9999 add no client.
    let r = rows(
        &["10.0.0.5"],
        "1",
        &[
            p(T0, "10.0.0.9", "10.0.0.5", L4::Tcp(1000, 80, ACK), 60),
            p(T0 + 1, "10.0.0.9", "10.0.0.5", L4::Tcp(1001, 80, ACK), 60),
            p(T0 + 2, "10.0.0.9", "10.0.0.5", L4::Tcp(1002, 443, ACK), 60),
            p(T0 + 3, "10.0.0.9", "10.0.0.5", L4::Udp(1003, 22), 60),
            p(T0 + 4, "10.0.0.7", "10.0.0.5", L4::Udp(5000, 53), 60),
            p(T0 + 5, "10.0.0.5", "10.0.0.8", L4::Tcp(40000, 9999, SYN), 60),
        ],
    );
    let h = -(0.75f64 * 0.75f64.log2() + 0.25 * 0.25f64.log2());
    assert!(close(r[0].features.access_port, h), "{}", r[0].features.access_port);
    assert!((h - 0.811278124459).abs() < 1e-12);
}

#[test]
fn service_port_entropy_weighs_inbound_packets_by_destination_port() {
    // Inbound TCP/UDP destination ports: 80 x3, 53 x1 (ICMP and outbound ignored):
    // p = (3/4, 1/4) -> 0.811278.
    let r = rows(
        &["10.0.0.5"],
        "1",
        &[
            p(T0, "10.0.0.9", "10.0.0.5", L4::Tcp(1000, 80, ACK), 60),
            p(T0 + 1, "10.0.0.9", "10.0.0.5", L4::Tcp(1000, 80, ACK), 60),
            p(T0 + 2, "10.0.0.7", "10.0.0.5", L4::Tcp(1000, 80, ACK), 60),
            p(T0 + 3, "10.0.0.7", "10.0.0.5", L4::Udp(1000, 53), 60),
            p(T0 + 4, "10.0.0.7", "10.0.0.5", L4::Icmp, 60),
            p(T0 + 5, "10.0.0.5", "10.0.0.7", L4::Udp(53, 1000), 60),
        ],
    );
    let h = -(0.75f64 * 0.75f64.log2() + 0.25 * 0.25f64.log2());
    assert!(close(r[0].features.service_port_entro, h));
    // ip_entro over all 6 packets: peer .9 has 2, .7 has 4 -> -(1/3 log 1/3 + 2/3 log 2/3).
    let ie = -((1.0f64 / 3.0) * (1.0f64 / 3.0).log2() + (2.0 / 3.0) * (2.0f64 / 3.0).log2());
    assert!(close(r[0].features.ip_entro, ie));
    assert_eq!(r[0].features.ip_count, 2);
}

#[test]
fn non_first_fragments_count_in_totals_but_carry_no_ports() {
    let mut frag = ip_packet(ip("10.0.0.9"), ip("10.0.0.5"), L4::Udp(1000, 7777), 100, &[]);
    frag[6] = 0x00;
    frag[7] = 0x10; // fragment offset 16 (x 8 bytes): the "UDP header" bytes are payload
    let first = ip_packet(ip("10.0.0.9"), ip("10.0.0.5"), L4::Udp(1000, 53), 100, &[]);
    let r = rows(&["10.0.0.5"], "1", &[P(T0, ethernet(&first, &[]), 114), P(T0 + 1, ethernet(&frag, &[]), 114)]);
    let f = r[0].features;
    assert_eq!((f.pps, f.bps), (2.0, 228.0));
    // Only port 53 was seen: one category -> 0; had port 7777 counted it would be 1.
    assert_eq!(f.service_port_entro, 0.0);
}

#[test]
fn truncated_tcp_header_still_counts_as_an_ip_packet() {
    let mut frame = eth("10.0.0.9", "10.0.0.5", L4::Tcp(1000, 80, SYN), 60);
    frame.truncate(14 + 20 + 10); // TCP header cut after 10 bytes
    let good = eth("10.0.0.7", "10.0.0.5", L4::Tcp(1000, 22, ACK), 60);
    let (r, report) =
        extract_bytes(&pcap(&[P(T0, frame, 60), P(T0 + 1, good, 60)]), &cfg(&["10.0.0.5"], "1")).expect("ok");
    let f = r[0].features;
    assert_eq!((f.pps, f.ip_count, f.syn_count), (2.0, 2, 0), "counted, but its SYN flag is unreadable");
    assert_eq!(f.service_port_entro, 0.0, "only port 22 is known");
    assert_eq!(report.extract.malformed[crate::Malformed::TcpTruncated.index()], 1);
}

#[test]
fn windows_are_aligned_to_multiples_of_w_since_the_epoch() {
    // w = 10 s. T0 is a multiple of 10 s: T0-1ns is in the window before, T0+10s-1ns in T0's.
    assert_eq!(T0 % (10 * S), 0);
    let r = rows(
        &["10.0.0.5"],
        "10",
        &[
            p(T0 - 1, "10.0.0.9", "10.0.0.5", L4::Icmp, 60),
            p(T0, "10.0.0.9", "10.0.0.5", L4::Icmp, 60),
            p(T0 + 10 * S - 1, "10.0.0.9", "10.0.0.5", L4::Icmp, 60),
            p(T0 + 10 * S, "10.0.0.9", "10.0.0.5", L4::Icmp, 60),
        ],
    );
    let starts: Vec<u64> = r.iter().map(|r| r.window_start_ns).collect();
    assert_eq!(starts, vec![T0 - 10 * S, T0, T0 + 10 * S]);
    let pps: Vec<f64> = r.iter().map(|r| r.features.pps).collect();
    assert_eq!(pps, vec![0.1, 0.2, 0.1], "rates divide by w = 10");
}

#[test]
fn empty_windows_between_first_and_last_are_zero_rows_and_none_outside() {
    // VM .5: packets in windows 0 and 3 -> rows 0,1,2,3. VM .6: one packet in window 2 -> row 2.
    let r = rows(
        &["10.0.0.5", "10.0.0.6"],
        "1",
        &[
            p(T0, "10.0.0.9", "10.0.0.5", L4::Icmp, 60),
            p(T0 + 2 * S, "10.0.0.9", "10.0.0.6", L4::Icmp, 70),
            p(T0 + 3 * S + 5, "10.0.0.9", "10.0.0.5", L4::Icmp, 80),
        ],
    );
    let keyed: Vec<(String, u64)> = r.iter().map(|r| (r.vm.to_string(), (r.window_start_ns - T0) / S)).collect();
    let mut sorted = keyed.clone();
    sorted.sort();
    let want: Vec<(String, u64)> =
        [("10.0.0.5", 0), ("10.0.0.5", 1), ("10.0.0.5", 2), ("10.0.0.5", 3), ("10.0.0.6", 2)]
            .iter()
            .map(|&(v, k)| (v.to_owned(), k))
            .collect();
    assert_eq!(sorted, want);
    for row in r.iter().filter(|r| r.vm.to_string() == "10.0.0.5" && matches!((r.window_start_ns - T0) / S, 1 | 2)) {
        assert_eq!(row.features, Features::default(), "empty window: all zeros");
    }
}

#[test]
fn state_is_reset_per_window() {
    // The same peer in two windows is one peer in each; no counts leak across.
    let r = rows(
        &["10.0.0.5"],
        "1",
        &[
            p(T0, "10.0.0.9", "10.0.0.5", L4::Tcp(1, 80, SYN), 60),
            p(T0 + 1, "10.0.0.7", "10.0.0.5", L4::Tcp(1, 81, SYN), 60),
            p(T0 + S, "10.0.0.9", "10.0.0.5", L4::Tcp(1, 80, ACK), 100),
        ],
    );
    assert_eq!(r[1].features.ip_count, 1);
    assert_eq!((r[1].features.syn_count, r[1].features.bps, r[1].features.service_port_entro), (0, 100.0, 0.0));
    assert_eq!(r[0].features.ip_count, 2);
}

#[test]
fn fractional_windows_and_rates_per_second() {
    // w = 0.5 s: 2 packets of 100 bytes in one window -> pps 4, bps 400.
    let r = rows(
        &["10.0.0.5"],
        "0.5",
        &[
            p(T0 + S / 2, "10.0.0.9", "10.0.0.5", L4::Icmp, 100),
            p(T0 + S / 2 + 7, "10.0.0.9", "10.0.0.5", L4::Icmp, 100),
        ],
    );
    assert_eq!(r[0].window_start_ns, T0 + S / 2);
    assert_eq!((r[0].features.pps, r[0].features.bps), (4.0, 400.0));
    assert_eq!(Seconds::from_nanos(S / 2).format_instant(r[0].window_start_ns), "1700000000.5");
}

#[test]
fn many_vms_in_one_pass_and_vm_to_vm_traffic_counts_for_both() {
    // .5 -> .6 TCP SYN to port 22: outbound for .5 (peer .6), inbound for .6 (peer .5, client).
    let r = rows(&["10.0.0.5", "10.0.0.6"], "1", &[p(T0, "10.0.0.5", "10.0.0.6", L4::Tcp(1, 22, SYN), 60)]);
    assert_eq!(r.len(), 2);
    for row in &r {
        let want = Features {
            syn_rate: 1.0,
            bps: 60.0,
            pps: 1.0,
            packet_per_ip: 1.0,
            ip_count: 1,
            syn_per_ip: 1.0,
            bytes_per_ip: 60.0,
            syn_count: 1,
            ..Features::default()
        };
        assert_features(&row.features, &want);
    }
}

#[test]
fn ipv6_vm_with_extension_headers() {
    // Hop-by-hop + destination options before TCP: ports found. A first fragment (offset 0)
    // carries the UDP header: its port counts.
    let v = "fd00::5";
    let a = ip_packet(ip("fd00::9"), ip(v), L4::Tcp(1000, 443, SYN), 120, &[0, 60]);
    let b = ip_packet(ip("fd00::7"), ip(v), L4::Udp(1000, 53), 120, &[44]);
    let r = rows(&[v], "1", &[P(T0, ethernet(&a, &[]), 134), P(T0 + 1, ethernet(&b, &[]), 134)]);
    let f = r[0].features;
    assert_eq!((f.ip_count, f.syn_count, f.access_port, f.service_port_entro), (2, 1, 1.0, 1.0));
}

#[test]
fn out_of_order_packets_within_the_allowance_land_in_their_window_later_ones_are_reported() {
    // Reorder allowance 1 s, w = 1 s. A packet of window 0 after one of window 1 still counts;
    // one of window 0 after time 2.5 s (window 0 closed at 1 s + 1 s) is late.
    let pkts = [
        p(T0 + 100, "10.0.0.9", "10.0.0.5", L4::Icmp, 60),
        p(T0 + S + 100, "10.0.0.9", "10.0.0.5", L4::Icmp, 60),
        p(T0 + 200, "10.0.0.9", "10.0.0.5", L4::Icmp, 60),
        p(T0 + 2 * S + S / 2, "10.0.0.9", "10.0.0.5", L4::Icmp, 60),
        p(T0 + 300, "10.0.0.9", "10.0.0.5", L4::Icmp, 60),
    ];
    let (r, report) = extract_bytes(&pcap(&pkts), &cfg(&["10.0.0.5"], "1")).expect("extract");
    let pps: Vec<f64> = r.iter().map(|r| r.features.pps).collect();
    assert_eq!(pps, vec![2.0, 1.0, 1.0]);
    assert_eq!(report.extract.late, 1);
    assert!(report.warnings().iter().any(|w| w.contains("1 packets arrived after their window had closed")));
}

#[test]
fn live_series_emits_every_closed_window_after_the_first_packet() {
    use super::Extractor;
    let c = Config { series: Series::Open, reorder: Seconds::from_nanos(0), ..cfg(&["10.0.0.5"], "1") };
    let mut ex = Extractor::new(&c).expect("config");
    let mut out: Vec<Row> = Vec::new();
    ex.advance(T0 + 5 * S, &mut out).expect("vec");
    assert!(out.is_empty(), "nothing before the first counted packet");
    let P(ts, frame, wire) = p(T0 + 5 * S + 1, "10.0.0.9", "10.0.0.5", L4::Icmp, 60);
    ex.push(ts, wire, &crate::decode(LinkType::ETHERNET, &frame), &mut out).expect("vec");
    ex.advance(T0 + 8 * S, &mut out).expect("vec"); // windows 5, 6, 7 closed
    let starts: Vec<u64> = out.iter().map(|r| (r.window_start_ns - T0) / S).collect();
    assert_eq!(starts, vec![5, 6, 7]);
    assert_eq!(out[0].features.pps, 1.0);
    assert_eq!(out[2].features, Features::default());
}

#[test]
fn configuration_errors_name_the_problem() {
    use crate::error::ConfigError;
    let mut c = cfg(&["10.0.0.5", "10.0.0.5"], "1");
    assert_eq!(super::Extractor::new(&c).err(), Some(ConfigError::DuplicateVm(ip("10.0.0.5"))));
    c.vms.clear();
    assert_eq!(super::Extractor::new(&c).err(), Some(ConfigError::NoVm));
}
