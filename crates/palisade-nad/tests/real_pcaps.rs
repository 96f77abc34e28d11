//! The real captures in `crates/palisade-traffic/testdata/pcaps` (kept there because the
//! synthetic dataset builds them in; see its README for their origins). Expected values are
//! derived in the test from first principles: tcpdump (an independent decoder) prints every
//! packet, and a plain re-count over its lines (whole capture in memory, maps, no streaming)
//! applies the spec. A few facts are checked against the README's hand counts as well. Needs
//! `tcpdump` (installed by scripts/setup.sh); a missing one fails the test.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use palisade_nad::{extract, open_file, Config, Row, Seconds, Series};

/// A checked-in capture; a missing one fails the test naming the path.
fn capture(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../palisade-traffic/testdata/pcaps").join(name);
    assert!(path.is_file(), "capture {} is missing", path.display());
    path
}

/// One IP packet as tcpdump prints it.
struct Line {
    ts_ns: u64,
    wire: u64,
    src: String,
    dst: String,
    dst_port: Option<u16>,
    syn: bool,
}

/// `1541241031.281919` -> nanoseconds.
fn ts_ns(tok: &str) -> u64 {
    let (s, us) = tok.split_once('.').expect("tcpdump -tt time");
    s.parse::<u64>().expect("seconds") * 1_000_000_000 + us.parse::<u64>().expect("micros") * 1000
}

/// `10.0.0.1.80` -> (`10.0.0.1`, Some(80)); `10.0.0.1` -> (`10.0.0.1`, None).
fn host_port(tok: &str) -> (String, Option<u16>) {
    let tok = tok.trim_end_matches(':');
    let parts: Vec<&str> = tok.split('.').collect();
    if parts.len() == 5 {
        (parts[..4].join("."), Some(parts[4].parse().expect("port")))
    } else {
        (tok.to_owned(), None)
    }
}

fn tcpdump(path: &PathBuf) -> Vec<Line> {
    let out = Command::new("tcpdump")
        .args(["-tt", "-nn", "-e", "-r"])
        .arg(path)
        .output()
        .expect("tcpdump must be installed (scripts/setup.sh installs it)");
    assert!(out.status.success(), "tcpdump failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = Vec::new();
    for l in text.lines().filter(|l| !l.starts_with([' ', '\t'])) {
        let ts = ts_ns(l.split(' ').next().expect("time"));
        let wire: u64 = {
            let at = l.find(", length ").expect("frame length") + 9;
            l[at..].split(':').next().expect("length").parse().expect("length number")
        };
        // After the last IP EtherType (so inside any VLAN tags); skip anything not IP.
        let Some(at) = l.rfind("ethertype IPv4 (0x0800), ").map(|i| i + 25) else { continue };
        let mut rest = &l[at..];
        if let Some(r) = rest.strip_prefix("length ") {
            rest = &r[r.find(": ").expect("length colon") + 2..];
        }
        let mut toks = rest.split(' ');
        let (src, _) = host_port(toks.next().expect("src"));
        assert_eq!(toks.next(), Some(">"), "{l}");
        let (dst, dst_port) = host_port(toks.next().expect("dst"));
        let flags = rest.split_once("Flags [").map(|(_, f)| f.split(']').next().unwrap_or(""));
        let syn = flags.is_some_and(|f| f.contains('S') && !f.contains('.'));
        lines.push(Line { ts_ns: ts, wire, src, dst, dst_port, syn });
    }
    lines
}

fn entropy(counts: impl Iterator<Item = f64>) -> f64 {
    let c: Vec<f64> = counts.filter(|&c| c > 0.0).collect();
    if c.len() < 2 {
        return 0.0;
    }
    let total: f64 = c.iter().sum();
    -c.iter().map(|x| x / total).map(|p| p * p.log2()).sum::<f64>()
}

/// The spec applied directly to tcpdump's lines: `(window_start_ns, [11 features])` per window.
fn expected(lines: &[Line], vm: &str, w_ns: u64) -> Vec<(u64, [f64; 11])> {
    let mine: Vec<&Line> = lines.iter().filter(|l| l.src == vm || l.dst == vm).collect();
    let mut by_window: BTreeMap<u64, Vec<&Line>> = BTreeMap::new();
    for l in &mine {
        by_window.entry(l.ts_ns / w_ns).or_default().push(l);
    }
    let (Some(&first), Some(&last)) = (by_window.keys().next(), by_window.keys().last()) else { return vec![] };
    let w = w_ns as f64 / 1e9;
    (first..=last)
        .map(|k| {
            let pk = by_window.get(&k).cloned().unwrap_or_default();
            let mut peers: HashMap<&str, f64> = HashMap::new();
            let mut clients: HashMap<&str, HashSet<u16>> = HashMap::new();
            let mut service: HashMap<u16, f64> = HashMap::new();
            let (mut bytes, mut syn) = (0.0, 0.0);
            for l in &pk {
                let peer = if l.src == vm { &l.dst } else { &l.src };
                *peers.entry(peer).or_default() += 1.0;
                bytes += l.wire as f64;
                syn += f64::from(u8::from(l.syn));
                if let (true, Some(p)) = (l.dst == vm, l.dst_port) {
                    clients.entry(&l.src).or_default().insert(p);
                    *service.entry(p).or_default() += 1.0;
                }
            }
            let n = pk.len() as f64;
            let ips = peers.len() as f64;
            let div = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
            let f = [
                entropy(clients.values().map(|s| s.len() as f64)),
                entropy(peers.values().copied()),
                entropy(service.values().copied()),
                div(syn, n),
                bytes / w,
                n / w,
                div(n, ips),
                ips,
                div(syn, ips),
                div(bytes, ips),
                syn,
            ];
            (k * w_ns, f)
        })
        .collect()
}

fn extracted(path: &PathBuf, vms: &[&str], window: &str) -> Vec<Row> {
    let cfg = Config {
        vms: vms.iter().map(|v| v.parse::<IpAddr>().expect("vm")).collect(),
        window: window.parse::<Seconds>().expect("window"),
        reorder: Seconds::from_secs(1),
        series: Series::Bounded,
    };
    let (mut reader, _) = open_file(path).expect("open capture");
    let mut rows: Vec<Row> = Vec::new();
    let report = extract(&mut reader, &cfg, &mut rows, &mut |_| {}).expect("extract");
    assert!(report.stop.is_none(), "{path:?}: {:?}", report.stop);
    assert_eq!(report.extract.late, 0);
    rows
}

/// Checks every row of every VM against the re-count; returns the rows.
fn check(name: &str, vms: &[&str], window: &str) -> Vec<Row> {
    let path = capture(name);
    let lines = tcpdump(&path);
    let rows = extracted(&path, vms, window);
    let w_ns = window.parse::<Seconds>().expect("window").as_nanos();
    for vm in vms {
        let want = expected(&lines, vm, w_ns);
        let got: Vec<&Row> = rows.iter().filter(|r| r.vm.to_string() == *vm).collect();
        assert!(!want.is_empty(), "{name}: no packets for {vm}");
        assert_eq!(got.len(), want.len(), "{name} {vm}: rows");
        for (g, (start, f)) in got.iter().zip(&want) {
            assert_eq!(g.window_start_ns, *start, "{name} {vm}");
            let x = g.features;
            let have = [
                x.access_port,
                x.ip_entro,
                x.service_port_entro,
                x.syn_rate,
                x.bps,
                x.pps,
                x.packet_per_ip,
                x.ip_count as f64,
                x.syn_per_ip,
                x.bytes_per_ip,
                x.syn_count as f64,
            ];
            for (i, (h, e)) in have.iter().zip(f).enumerate() {
                assert!(
                    (h - e).abs() <= 1e-9 * e.abs().max(1.0),
                    "{name} {vm} window {start}: feature {i}: {h} vs {e}"
                );
            }
        }
    }
    rows
}

fn total(rows: &[Row], vm: &str, f: impl Fn(&Row) -> f64) -> f64 {
    rows.iter().filter(|r| r.vm.to_string() == vm).map(f).sum()
}

#[test]
fn cicddos2019_synflood_matches_the_recount_and_the_readme() {
    let rows = check("cicddos2019-synflood.pcap", &["192.168.50.4", "172.16.0.5"], "1");
    // README: 26,316 packets, 18,778 pure SYN from 172.16.0.5 to 192.168.50.4.
    assert_eq!(total(&rows, "192.168.50.4", |r| r.features.pps), 26_316.0);
    assert_eq!(total(&rows, "192.168.50.4", |r| r.features.syn_count as f64), 18_778.0);
    check("cicddos2019-synflood.pcap", &["192.168.50.4"], "0.1");
}

#[test]
fn cicddos2019_webddos_over_25_minutes_with_empty_windows() {
    let rows = check("cicddos2019-webddos.pcap", &["192.168.50.1", "172.16.0.5"], "1");
    assert_eq!(total(&rows, "192.168.50.1", |r| r.features.pps), 3_104.0, "README: 3,104 packets");
    assert!(rows.iter().any(|r| r.features.pps == 0.0), "a 1,541 s capture at 1 s windows has empty windows");
    check("cicddos2019-webddos.pcap", &["192.168.50.1"], "60");
}

#[test]
fn esnet_masscan_tcp_and_udp_scans_inside_vlan_tags() {
    let rows = check("esnet-masscan-tcp_0_1000_20190821.pcap", &["198.124.152.15", "172.31.15.102"], "1");
    let syns = total(&rows, "198.124.152.15", |r| r.features.syn_count as f64);
    assert!((1000.0..=1010.0).contains(&syns), "README: about 1,001 SYNs, got {syns}");
    check("esnet-masscan-udp_0_1000_20190821.pcap", &["198.124.152.15", "172.31.15.102"], "1");
}

#[test]
fn esnet_nmap_scans() {
    check("esnet-nmap-nmap_80_all.pcap", &["130.211.223.103", "10.87.1.10"], "1");
    check("esnet-nmap-nmap_80_w_service_detection.pcap", &["130.211.223.103", "10.87.1.10"], "1");
}

#[test]
fn esnet_tcp_flag_combinations_and_single_packets() {
    check("esnet-tcpflags-one_way_all_flags.pcap", &["10.0.0.80", "10.0.0.10"], "1");
    check("esnet-tcpflags-two_way_all_flags.pcap", &["10.0.0.80", "10.0.0.10"], "1");
    // Hand facts: one SYN is a SYN; a SYN-ACK and an RST are not. 54-byte frames.
    for (name, syn) in [
        ("esnet-tcpflags-single_syn.pcap", 1),
        ("esnet-tcpflags-single_syn_ack.pcap", 0),
        ("esnet-tcpflags-single_rst.pcap", 0),
    ] {
        let rows = check(name, &["10.0.0.80"], "1");
        assert_eq!(rows.len(), 1, "{name}");
        let f = rows[0].features;
        assert_eq!((f.syn_count, f.pps, f.bps, f.ip_count, f.service_port_entro), (syn, 1.0, 54.0, 1, 0.0), "{name}");
    }
}

#[test]
fn esnet_whois_exchange() {
    check("esnet-whois-whois.pcap", &["10.87.1.50", "199.15.84.131"], "1");
}
