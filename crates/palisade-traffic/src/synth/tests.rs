//! Unit tests of the pieces: the built-in captures are the checked-in ones, address rewriting
//! keeps every checksum right on them, replay maps times and addresses, the schedule respects
//! the split, and bad settings are refused with errors that say what was wrong.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use palisade_nad::decode::Ipv4Header;

use super::attack::{rewrite, AttackKind, Template};
use super::packet::{be16, ones_sum, pseudo_sum};
use super::schedule::{schedule, Plan};
use super::*;

/// The checked-in captures the built-in ones are made from.
fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pcaps")
}

/// The template of a built-in capture, as `synthesize` reads it by default.
fn built_in(source: Source) -> Template {
    Template::load(None, source).expect("built-in capture")
}

/// Whether every checksum of a whole IPv4 packet is right; `None` when part of it was not captured.
fn checksums_ok(ip: &[u8]) -> Option<bool> {
    let h = Ipv4Header::new_checked(ip).ok()?;
    let (hl, total) = (h.header_len(), h.total_len());
    if ip.len() < total || total < hl || h.frag_offset() != 0 {
        return None;
    }
    let l4 = &ip[hl..total];
    let (s, d) = (h.src().to_be_bytes(), h.dst().to_be_bytes());
    let l4_ok = match h.protocol() {
        6 => ones_sum(l4, pseudo_sum(s, d, 6, l4.len())) == 0xffff,
        17 if l4.len() >= 8 && be16(l4, 6) == 0 => true,
        17 => ones_sum(l4, pseudo_sum(s, d, 17, l4.len())) == 0xffff,
        1 => ones_sum(l4, 0) == 0xffff,
        _ => return None,
    };
    Some(ones_sum(&ip[..hl], 0) == 0xffff && l4_ok)
}

/// Issue #14: `dataset synth` needs no directory beside the repository. The captures built
/// into the program are byte for byte the checked-in files, and reading that directory instead
/// (`--attack-pcaps`) gives the same templates.
#[test]
fn the_built_in_captures_are_the_checked_in_files() {
    let dir = testdata();
    for kind in AttackKind::ALL {
        for &src in kind.sources() {
            let on_disk = std::fs::read(dir.join(src.file)).expect("checked-in capture");
            assert_eq!(src.built_in, &on_disk[..], "{}", src.file);
            let (a, b) = (built_in(src), Template::load(Some(&dir), src).expect("load from testdata"));
            assert_eq!((&a.sha256, a.records, a.skipped, &a.peers), (&b.sha256, b.records, b.skipped, &b.peers));
            assert_eq!(a.packets, b.packets, "{}", src.file);
        }
    }
}

#[test]
fn rewriting_addresses_keeps_checksums_right_on_the_real_captures() {
    let vm = u32::from(Ipv4Addr::new(10, 0, 0, 5));
    let mut incremental = 0;
    for kind in AttackKind::ALL {
        for &src in kind.sources() {
            let t = built_in(src);
            let victim = u32::from(src.victim);
            let map = |a: u32| if a == victim { vm } else { a ^ 0x5a5a_0f0f };
            let (mut whole, mut right_before, mut right_after, mut icmp_errors) = (0, 0, 0, 0);
            for (_, _, ip) in &t.packets {
                let Some(before) = checksums_ok(ip) else { continue };
                whole += 1;
                let mut out = ip.clone();
                rewrite(&mut out, &map);
                let h = Ipv4Header::new_checked(&out).expect("still IPv4");
                assert!(h.src() == vm || h.dst() == vm, "{}: the victim became the VM", src.file);
                assert!(h.src() != victim && h.dst() != victim);
                right_before += u32::from(before);
                if before && ip.len() > 38 {
                    // Cut before its end, the incremental update gives the same checksums.
                    let mut cut = ip[..ip.len() - 1].to_vec();
                    rewrite(&mut cut, &map);
                    assert_eq!(cut[..], out[..cut.len()], "{}: incremental = afresh", src.file);
                    incremental += 1;
                }
                right_after += u32::from(checksums_ok(&out) == Some(true));
                if h.protocol() == 1 && matches!(out.get(h.header_len()), Some(3 | 11)) {
                    icmp_errors += 1;
                    let inner = Ipv4Header::new_checked(&out[h.header_len() + 8..]).expect("quoted header");
                    assert!(inner.src() == vm || inner.dst() == vm, "the quoted header is rewritten too");
                    assert_eq!(ones_sum(&out[h.header_len() + 8..h.header_len() + 28], 0), 0xffff);
                }
            }
            assert!(whole > 0, "{}: some packets are captured whole", src.file);
            assert_eq!(right_after, whole, "{}: all whole packets right ({right_before} were before)", src.file);
            if src.file.contains("synflood") || src.file.contains("nmap") {
                assert!(right_before < whole, "{}: the source has wrong checksums to fix", src.file);
            }
            if src.file.contains("nmap_80_all") {
                assert!(icmp_errors > 0, "nmap -A draws ICMP errors from the target");
            }
        }
    }
    assert!(incremental > 10_000, "{incremental} packets checked cut short");
}

#[test]
fn templates_keep_only_the_victims_packets_and_say_what_they_skipped() {
    let syn = built_in(AttackKind::SynFlood.sources()[0]);
    // README: 26,316 packets between 172.16.0.5 and 192.168.50.4.
    assert_eq!(syn.records, 26_316);
    assert_eq!(syn.len(), 26_316);
    assert_eq!(syn.peers, vec![u32::from(Ipv4Addr::new(172, 16, 0, 5))]);
    assert!(syn.duration_ns() < 1_000_000_000);
    let nmap = built_in(AttackKind::Nmap.sources()[0]);
    assert_eq!(nmap.len() as u64 + nmap.skipped, nmap.records);
    assert_eq!(nmap.peers, vec![u32::from(Ipv4Addr::new(10, 87, 1, 10))]);
}

#[test]
fn a_replay_maps_times_into_the_episode_and_addresses_to_the_vm() {
    let t = built_in(AttackKind::MasscanTcp.sources()[0]);
    let vm = Ipv4Addr::new(10, 0, 0, 5);
    let e = Episode {
        kind: AttackKind::MasscanTcp,
        source: t.source.file,
        start_ns: 1_767_600_000_000_000_000,
        duration_ns: 90_000_000_000,
        keep: 1.0,
        passes: 1,
        attackers: vec![Ipv4Addr::new(5, 6, 7, 8)],
        packets: 0,
        template: 0,
        seed: 3,
    };
    let pkts = e.replay(&t, vm);
    assert_eq!(pkts.len(), t.len());
    assert_eq!(pkts[0].ts_ns, e.start_ns);
    assert_eq!(pkts.last().map(|p| p.ts_ns), Some(e.start_ns + e.duration_ns));
    assert!(pkts.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns), "time order");
    for p in &pkts {
        assert!(p.frame.len() <= SNAPLEN as usize);
        let ip = Ipv4Header::new_checked(&p.frame[14..]).expect("IPv4");
        assert_eq!((Ipv4Addr::from(ip.src()), Ipv4Addr::from(ip.dst())), (Ipv4Addr::new(5, 6, 7, 8), vm));
    }
    let half = Episode { keep: 0.5, passes: 2, ..e };
    let n = half.replay(&t, vm).len() as f64;
    assert!((n - t.len() as f64).abs() < t.len() as f64 * 0.1, "two passes at half keep: {n}");
}

fn templates() -> (Vec<Template>, Vec<(AttackKind, usize)>) {
    let (mut t, mut idx) = (Vec::new(), Vec::new());
    for k in AttackKind::ALL {
        for &s in k.sources() {
            idx.push((k, t.len()));
            t.push(built_in(s));
        }
    }
    (t, idx)
}

#[test]
fn the_schedule_keeps_held_back_kinds_out_of_training_and_episodes_apart() {
    let (tpls, idx) = templates();
    let train = [AttackKind::SynFlood, AttackKind::MasscanTcp, AttackKind::Nmap];
    let plan = Plan {
        seed: 11,
        start_s: DEFAULT_START,
        windows: 4 * 1440,
        window_s: 60,
        share: 0.03,
        train: &train,
        all: &AttackKind::ALL,
        templates: &idx,
    };
    let eps = schedule(&plan, &tpls).expect("schedule");
    let until = (DEFAULT_START + 2 * 1440 * 60) * 1_000_000_000;
    for e in &eps {
        if !train.contains(&e.kind) {
            assert!(e.start_ns >= until, "{} before train_until", e.kind);
        }
        let end = e.start_ns + e.duration_ns;
        assert!(e.start_ns >= until || end < until, "no episode straddles train_until");
    }
    for w in eps.windows(2) {
        assert!(w[0].start_ns + w[0].duration_ns + 60_000_000_000 <= w[1].start_ns, "a quiet window between episodes");
    }
    for k in AttackKind::ALL {
        assert!(eps.iter().any(|e| e.kind == k && e.start_ns >= until), "{k} in the test part");
    }
    assert_eq!(eps.iter().map(|e| e.start_ns).collect::<Vec<_>>(), {
        let mut s: Vec<u64> = eps.iter().map(|e| e.start_ns).collect();
        s.sort_unstable();
        s
    });
}

#[test]
fn bad_settings_are_refused_naming_what_was_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = SynthConfig::new(dir.path().join("out"));
    let err = |c: SynthConfig| synthesize(&c, &mut |_| {}).expect_err("refused").to_string();
    assert!(err(SynthConfig { window_s: 0, ..base.clone() }).contains("at least 1 second"));
    assert!(err(SynthConfig { span_s: 90, ..base.clone() }).contains("not a whole number of 60 s windows"));
    assert!(err(SynthConfig { span_s: 6 * 3600, ..base.clone() }).contains("too short"));
    assert!(err(SynthConfig { held_back: AttackKind::ALL.to_vec(), ..base.clone() }).contains("every attack kind"));
    assert!(err(SynthConfig { share: 0.7, ..base.clone() }).contains("0.7"));
    assert!(err(SynthConfig { surges_per_day: -1.0, ..base.clone() }).contains("surges per day -1"));
    let e = err(SynthConfig { share: 0.45, span_s: 86_400, window_s: 600, ..base.clone() });
    assert!(e.contains("smaller share"), "{e}");
    assert!(err(SynthConfig { start_s: u64::MAX / 1_000_000_000, ..base.clone() }).contains("64-bit"));
    assert!(err(SynthConfig { vm: Ipv4Addr::new(23, 1, 1, 1), ..base.clone() }).contains("23.1.1.1"));
    let missing = dir.path().join("nowhere");
    let e = err(SynthConfig { attack_pcaps: Some(missing.clone()), ..base.clone() });
    assert_eq!(e, format!("cannot read attack capture {}", missing.join("cicddos2019-synflood.pcap").display()));
    assert!(AttackKind::parse("slowloris").expect_err("unknown").to_string().contains("masscan_udp"));
    assert_eq!(AttackKind::parse("masscan-udp").expect("alias"), AttackKind::MasscanUdp);
    assert!(!dir.path().join("out").exists(), "nothing is written for refused settings");
}

#[test]
fn rewriting_mutated_and_cut_packets_never_panics() {
    let t = built_in(AttackKind::Nmap.sources()[0]);
    let mut rng = palisade_rng::Rng::stream(99, 0);
    let map = |a: u32| a.rotate_left(8);
    for i in 0..4000 {
        let (_, _, ip) = &t.packets[i % t.packets.len()];
        let mut b = ip.clone();
        for _ in 0..1 + rng.below_u64(4) {
            let at = rng.below(b.len());
            b[at] = rng.next_u64() as u8;
        }
        b.truncate(rng.below(b.len() + 1));
        rewrite(&mut b, &map);
    }
}
