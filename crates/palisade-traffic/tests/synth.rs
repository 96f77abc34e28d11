//! `palisade nad dataset synth` (issue #6): the synthetic dataset is reproducible, its labels
//! agree with where the attack packets really are (found again by reading the capture back)
//! and with the features palisade-nad computes, its windows cover the span without holes, and
//! held-back kinds never appear before `train_until`. Spans are one day to stay fast.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use palisade_nad::{decode, extract, open_file, Config, Decoded, Row, Seconds, Series};
use palisade_traffic::synth::{synthesize, AttackKind, Summary, SynthConfig};
use sha2::{Digest, Sha256};

fn day(dir: &Path, seed: u64) -> (SynthConfig, Summary) {
    day_with(dir, seed, 0.4)
}

fn day_with(dir: &Path, seed: u64, surges_per_day: f64) -> (SynthConfig, Summary) {
    let mut cfg = SynthConfig::new(dir.to_owned());
    cfg.seed = seed;
    cfg.span_s = 86_400;
    cfg.surges_per_day = surges_per_day;
    let summary = synthesize(&cfg, &mut |_| {}).expect("synthesize");
    (cfg, summary)
}

fn sha(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).expect("read")).to_vec()
}

/// `labels.csv` rows: (window_start, label, attack), read by the one labels parser.
fn labels(dir: &Path) -> Vec<(u64, u8, String)> {
    let labels = palisade_nad::labels::Labels::read(&dir.join("labels.csv")).expect("labels.csv");
    labels
        .by_start
        .into_iter()
        .map(|(ns, l)| (ns / 1_000_000_000, u8::from(l.abnormal), l.attack.unwrap_or_default()))
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    day(a.path(), 42);
    day(b.path(), 42);
    day(c.path(), 43);
    for f in ["capture.pcap", "labels.csv", "dataset.json"] {
        assert_eq!(sha(&a.path().join(f)), sha(&b.path().join(f)), "{f} differs for the same seed");
    }
    assert_ne!(sha(&a.path().join("capture.pcap")), sha(&c.path().join("capture.pcap")));
    assert_ne!(sha(&a.path().join("labels.csv")), sha(&c.path().join("labels.csv")));
}

#[test]
fn labels_match_the_attack_packets_in_the_capture_and_the_features() {
    let dir = tempfile::tempdir().unwrap();
    // Benign surges too: they must stay below the attacks and be labelled 0.
    let (cfg, s) = day_with(dir.path(), 3, 4.0);
    assert!(s.surges.len() >= 2, "{} surges", s.surges.len());
    let rows = labels(dir.path());

    // Coverage: one row per window of the span, consecutive, no holes.
    assert_eq!(rows.len() as u64, s.header.windows);
    assert_eq!(s.header.windows, 1440);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.0, s.header.start + i as u64 * 60);
        assert_eq!(r.1 == 1, !r.2.is_empty(), "label and kind agree: {r:?}");
    }

    // Read the capture back: which windows hold packets of an episode's attackers?
    let mut attacker_kind: HashMap<Ipv4Addr, AttackKind> = HashMap::new();
    for e in &s.episodes {
        for &a in &e.attackers {
            attacker_kind.insert(a, e.kind);
        }
    }
    let (mut reader, _) = open_file(&dir.path().join("capture.pcap")).expect("open");
    let vm = IpAddr::V4(cfg.vm);
    let (mut n, mut last, mut attack_packets) = (0u64, 0u64, 0u64);
    let mut seen: BTreeMap<u64, AttackKind> = BTreeMap::new();
    while let Some(f) = reader.next_frame().expect("read") {
        n += 1;
        assert!(f.ts_ns >= last, "packets in time order");
        last = f.ts_ns;
        let Decoded::Ip(ip) = decode(f.link, f.data) else { panic!("packet {n} is not IP") };
        assert!(ip.malformed.is_none(), "packet {n} is well formed");
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        assert!(src == vm || dst == vm, "packet {n} is the VM's");
        let peer = if src == vm { dst } else { src };
        let IpAddr::V4(peer) = peer else { panic!("IPv4 only") };
        if let Some(&k) = attacker_kind.get(&peer) {
            attack_packets += 1;
            let prev = seen.insert((f.ts_ns / 1_000_000_000 - s.header.start) / 60, k);
            assert!(prev.is_none() || prev == Some(k), "one kind per window");
        }
    }
    assert!(reader.stop().is_none(), "the capture is complete");
    assert_eq!(n, s.counts.packets);
    assert_eq!(attack_packets, s.counts.attack_packets);
    for (i, r) in rows.iter().enumerate() {
        let expected = seen.get(&(i as u64)).map_or("", |k| k.name());
        assert_eq!(r.2, expected, "window {} ({})", i, r.0);
    }

    // Features: the extractor sees the same windows, and the attacks where the labels say.
    let fcfg = Config {
        vms: vec![vm],
        window: Seconds::from_secs(60),
        reorder: Seconds::from_secs(1),
        series: Series::Bounded,
    };
    let (mut reader, _) = open_file(&dir.path().join("capture.pcap")).expect("open");
    let mut feats: Vec<Row> = Vec::new();
    extract(&mut reader, &fcfg, &mut feats, &mut |_| {}).expect("features");
    assert_eq!(feats.len(), rows.len(), "a feature row for every labelled window");
    for (f, r) in feats.iter().zip(&rows) {
        assert_eq!(f.window_start_ns, r.0 * 1_000_000_000);
    }
    let benign = |f: &&Row, r: &&(u64, u8, String)| r.1 == 0 && f.features.pps > 0.0;
    let pairs: Vec<(&Row, &(u64, u8, String))> = feats.iter().zip(&rows).collect();
    let benign_syn = pairs.iter().filter(|(f, r)| benign(f, r)).map(|(f, _)| f.features.syn_count).max().unwrap();
    let benign_ports =
        pairs.iter().filter(|(f, r)| benign(f, r)).map(|(f, _)| f.features.service_port_entro).fold(0.0, f64::max);
    assert!(pairs.iter().filter(|(f, r)| benign(f, r)).count() > 1300, "most windows are benign");
    // Inside a SYN flood (not its first or last window) there are more SYNs than in any benign window.
    let mut flood_windows = 0;
    for w in pairs.windows(3) {
        if w.iter().all(|(_, r)| r.2 == "syn_flood") {
            flood_windows += 1;
            assert!(w[1].0.features.syn_count > benign_syn, "{} vs benign max {benign_syn}", w[1].0.features.syn_count);
        }
    }
    assert!(flood_windows > 0, "the day holds a SYN flood");
    // The busiest window of each port scan spreads over more ports than any benign window.
    for kind in ["masscan_tcp", "masscan_udp"] {
        let peak =
            pairs.iter().filter(|(_, r)| r.2 == kind).map(|(f, _)| f.features.service_port_entro).fold(0.0, f64::max);
        assert!(peak > benign_ports + 1.0, "{kind}: {peak} vs benign max {benign_ports}");
    }
}

#[test]
fn held_back_kinds_appear_only_after_train_until_and_attacks_are_rare() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, s) = day(dir.path(), 9);
    assert_eq!(s.header.train_until, s.header.start + 720 * 60, "train_until ends the first half");
    assert_eq!(cfg.held_back, s.header.held_back_kinds);
    let rows = labels(dir.path());
    let kinds_in = |pred: &dyn Fn(u64) -> bool| -> Vec<String> {
        let mut k: Vec<String> = rows.iter().filter(|r| r.1 == 1 && pred(r.0)).map(|r| r.2.clone()).collect();
        k.sort();
        k.dedup();
        k
    };
    let before = kinds_in(&|t| t < s.header.train_until);
    let after = kinds_in(&|t| t >= s.header.train_until);
    for k in &s.header.held_back_kinds {
        assert!(!before.contains(&k.name().to_owned()), "{k} before train_until");
        assert!(after.contains(&k.name().to_owned()), "{k} in the test part");
    }
    for k in &s.header.train_kinds {
        assert!(before.contains(&k.name().to_owned()), "{k} in the training part");
    }
    let abnormal = rows.iter().filter(|r| r.1 == 1).count() as f64 / rows.len() as f64;
    assert!((0.01..=0.08).contains(&abnormal), "abnormal share {abnormal}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("dataset.json")).unwrap()).unwrap();
    assert_eq!(json["train_until"], s.header.train_until);
    assert_eq!(json["held_back_kinds"], serde_json::json!(["http_flood", "masscan_udp"]));
    assert_eq!(json["counts"]["abnormal_windows"], rows.iter().filter(|r| r.1 == 1).count());
}

/// tcpdump (an independent decoder) verifies every checksum it can: none is wrong, though the
/// SYN flood and nmap sources carry thousands of wrong ones (offloaded or crafted).
#[test]
fn tcpdump_finds_no_wrong_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let (_, s) = day(dir.path(), 21);
    let out = std::process::Command::new("tcpdump")
        .args(["-nn", "-vv", "-r"])
        .arg(dir.path().join("capture.pcap"))
        .output()
        .expect("tcpdump (installed by scripts/setup.sh)");
    assert!(out.status.success(), "tcpdump: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let wrong: Vec<&str> = text.lines().filter(|l| l.contains("incorrect") || l.contains("bad cksum")).collect();
    assert!(wrong.is_empty(), "{} wrong checksums, e.g. {:?}", wrong.len(), &wrong[..wrong.len().min(3)]);
    let verified = text.lines().filter(|l| l.contains("cksum") && l.contains("correct")).count();
    assert!(verified as u64 > s.counts.attack_packets / 2, "tcpdump verified {verified} checksums");
}

/// Writes fuzz/seeds/nad_rewrite: IPv4 packets (Ethernet header removed) from the real
/// captures in testdata/pcaps, one of each shape the rewriter handles — a flood SYN with a wrong checksum, an
/// HTTP request, a UDP probe, a TCP SYN with options and nmap's ICMP error quoting a header.
/// `cargo test -p palisade-traffic --test synth write_fuzz_seeds -- --ignored`
#[test]
#[ignore = "writes fuzz seeds into the source tree"]
fn write_fuzz_seeds() {
    let captures = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pcaps");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/nad_rewrite");
    std::fs::create_dir_all(&out).expect("seed dir");
    // (seed name, capture, predicate on the IPv4 bytes)
    type Pick = fn(&[u8]) -> bool;
    let picks: [(&str, &str, Pick); 5] = [
        ("syn_flood_syn", "cicddos2019-synflood.pcap", |ip| ip[9] == 6),
        ("http_request", "cicddos2019-webddos.pcap", |ip| ip[9] == 6 && ip.len() > 80),
        ("masscan_udp", "esnet-masscan-udp_0_1000_20190821.pcap", |ip| ip[9] == 17),
        ("nmap_syn_options", "esnet-nmap-nmap_80_all.pcap", |ip| ip[9] == 6 && ip[20 + 12] >> 4 > 5),
        ("nmap_icmp_error", "esnet-nmap-nmap_80_all.pcap", |ip| ip[9] == 1 && ip[20] == 3),
    ];
    for (name, file, pick) in picks {
        let (mut reader, _) = open_file(&captures.join(file)).expect("open");
        let mut found = None;
        while let Some(f) = reader.next_frame().expect("read") {
            // Ethernet, possibly with one 802.1Q tag (the masscan captures have one).
            let off = if f.data.get(12..14) == Some(&[0x81, 0][..]) { 18 } else { 14 };
            let Some(ip) = f.data.get(off..).filter(|ip| ip.len() >= 28 && ip[0] == 0x45) else { continue };
            if f.data[off - 2..off] == [8, 0] && pick(ip) {
                found = Some(ip[..ip.len().min(82)].to_vec());
                break;
            }
        }
        std::fs::write(out.join(name), found.unwrap_or_else(|| panic!("no {name} in {file}"))).expect("write");
    }
}
