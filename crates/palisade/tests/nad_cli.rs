//! `palisade nad` through the built binary (no root, no lab): the spec's worked example end to
//! end as CSV and JSON lines though `palisade` has a global `-o` of its own, a bad capture
//! path named with nothing on stdout, and one help listing every subcommand, features first
//! (issue #14 §3: the command line lives in the binary; this was palisade-nad's tests/cli.rs).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use palisade_nad::build::{ethernet, ip_packet, PcapWriter, L4};
use palisade_nad::decode::tcp_flags::{ACK, SYN};
use palisade_nad::LinkType;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// `palisade nad ARGS`, in an empty environment as far as palisade's own variables go.
fn nad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("nad")
        .args(args)
        .env_remove("PALISADE_URL")
        .env_remove("PALISADE_TOKEN")
        .output()
        .expect("run palisade")
}

fn stdout_of(args: &[&str]) -> String {
    let out = nad(args);
    assert!(out.status.success(), "palisade nad {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The worked example of shared/specs/nad-features.md as a pcap file.
fn worked_example(dir: &Path) -> PathBuf {
    let t0 = 1_700_000_000_000_000_000u64;
    let v = ip("10.0.0.5");
    let pkts = [
        (ip("10.0.0.9"), v, L4::Tcp(40000, 80, SYN), 60u32),
        (v, ip("10.0.0.9"), L4::Tcp(80, 40000, SYN | ACK), 60),
        (ip("10.0.0.7"), v, L4::Udp(5000, 53), 100),
    ];
    let path = dir.join("worked.pcap");
    let file = std::fs::File::create(&path).expect("create");
    let mut w = PcapWriter::new(file, LinkType::ETHERNET, 65535, false, false).expect("write");
    for (i, (s, d, l4, wire)) in pkts.into_iter().enumerate() {
        let frame = ethernet(&ip_packet(s, d, l4, wire as usize - 14, &[]), &[]);
        assert_eq!(frame.len(), wire as usize);
        w.packet(t0 + i as u64 * 1000, wire, &frame).expect("write");
    }
    w.into_inner().expect("flush");
    path
}

#[test]
fn worked_example_csv_and_jsonl_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = worked_example(dir.path());
    let p = path.to_str().expect("path");
    let csv = stdout_of(&["features", "--pcap", p, "--vm", "10.0.0.5", "--window", "1"]);
    assert_eq!(
        csv,
        "vm,window_start,access_port,ip_entro,service_port_entro,syn_rate,bps,pps,packet_per_ip,ip_count,syn_per_ip,bytes_per_ip,syn_count\n\
         10.0.0.5,1700000000,1,0.9182958340544896,1,0.3333333333333333,220,3,1.5,2,0.5,110,1\n"
    );
    // `-o jsonl` is nad's, not `palisade`'s global `-o human|json`.
    let jsonl = stdout_of(&["features", "--pcap", p, "--vm", "10.0.0.5", "--window", "1", "-o", "jsonl"]);
    assert_eq!(
        jsonl,
        "{\"vm\":\"10.0.0.5\",\"window_start\":1700000000,\"access_port\":1,\"ip_entro\":0.9182958340544896,\
         \"service_port_entro\":1,\"syn_rate\":0.3333333333333333,\"bps\":220,\"pps\":3,\"packet_per_ip\":1.5,\
         \"ip_count\":2,\"syn_per_ip\":0.5,\"bytes_per_ip\":110,\"syn_count\":1}\n"
    );
}

#[test]
fn a_missing_capture_is_named_and_no_header_is_printed() {
    let out = nad(&["features", "--pcap", "/nonexistent.pcap", "--vm", "10.0.0.1", "--window", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "stdout: {}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: cannot open capture file /nonexistent.pcap: "), "{err}");
    // A usage error is clap's: exit code 2, the bad value named.
    let out = nad(&["features", "--pcap", "x", "--vm", "10.0.0.300", "--window", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("10.0.0.300"));
}

#[test]
fn one_help_lists_every_subcommand_features_first() {
    let help = stdout_of(&["--help"]);
    let at =
        |name: &str| help.find(&format!("\n  {name} ")).unwrap_or_else(|| panic!("`{name}` not listed in:\n{help}"));
    let order = ["features", "dataset", "train", "eval", "detect", "alerts", "generate"].map(at);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "not in order: {help}");
    // Each subcommand's own help still teaches its flags.
    let train = stdout_of(&["train", "--help"]);
    for flag in ["--train-until", "--epochs", "--period", "--slots", "--model"] {
        assert!(train.contains(flag), "{flag} missing from:\n{train}");
    }
    let alerts = stdout_of(&["alerts", "--help"]);
    for flag in ["--detectors", "--follow", "--after", "--tenant", "[env: PALISADE_URL"] {
        assert!(alerts.contains(flag), "{flag} missing from:\n{alerts}");
    }
    assert!(stdout_of(&["dataset", "synth", "--help"]).contains("--attack-pcaps"));
}
