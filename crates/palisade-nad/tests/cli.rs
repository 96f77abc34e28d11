//! `palisade nad features`: the spec's worked example end to end as CSV and JSON lines, the
//! hand-over of raw words from a parent CLI that has its own global `-o`, and errors that name
//! the bad input.

use std::net::IpAddr;

use clap::{Parser, Subcommand};
use palisade_nad::build::{ethernet, ip_packet, PcapWriter, L4};
use palisade_nad::cli::{features_to, NadCli, NadCmd, NadCommand};
use palisade_nad::decode::tcp_flags::{ACK, SYN};
use palisade_nad::LinkType;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// The worked example of shared/specs/nad-features.md as a pcap file.
fn worked_example(dir: &std::path::Path) -> std::path::PathBuf {
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

fn run(args: &[&str]) -> String {
    let argv = std::iter::once("palisade nad").chain(args.iter().copied());
    let NadCmd::Features(a) = NadCli::try_parse_from(argv).expect("arguments").command;
    let mut out = Vec::new();
    features_to(&a, &mut out).expect("run");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn worked_example_csv_and_jsonl_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = worked_example(dir.path());
    let p = path.to_str().expect("path");
    let csv = run(&["features", "--pcap", p, "--vm", "10.0.0.5", "--window", "1"]);
    assert_eq!(
        csv,
        "vm,window_start,access_port,ip_entro,service_port_entro,syn_rate,bps,pps,packet_per_ip,ip_count,syn_per_ip,bytes_per_ip,syn_count\n\
         10.0.0.5,1700000000,1,0.9182958340544896,1,0.3333333333333333,220,3,1.5,2,0.5,110,1\n"
    );
    let jsonl = run(&["features", "--pcap", p, "--vm", "10.0.0.5", "--window", "1", "-o", "jsonl"]);
    assert_eq!(
        jsonl,
        "{\"vm\":\"10.0.0.5\",\"window_start\":1700000000,\"access_port\":1,\"ip_entro\":0.9182958340544896,\
         \"service_port_entro\":1,\"syn_rate\":0.3333333333333333,\"bps\":220,\"pps\":3,\"packet_per_ip\":1.5,\
         \"ip_count\":2,\"syn_per_ip\":0.5,\"bytes_per_ip\":110,\"syn_count\":1}\n"
    );
}

/// The shape of the `palisade` binary: a global `-o human|json` and `nad` taking raw words.
#[derive(Debug, Parser)]
struct Parent {
    #[arg(short, long, global = true, default_value = "human")]
    output: String,
    #[command(subcommand)]
    cmd: ParentCmd,
}

#[derive(Debug, Subcommand)]
enum ParentCmd {
    Nad(NadCommand),
}

#[test]
fn the_parent_cli_hands_over_its_words_untouched() {
    let parent = Parent::try_parse_from([
        "palisade", "nad", "features", "--pcap", "f.pcap", "--vm", "fd00::1", "--window", "0.5", "-o", "jsonl",
    ])
    .expect("parent parses");
    assert_eq!(parent.output, "human", "the parent's -o is not consumed");
    let ParentCmd::Nad(raw) = parent.cmd;
    let argv = std::iter::once("palisade nad".into()).chain(raw.args);
    let NadCmd::Features(a) = NadCli::try_parse_from(argv).expect("nad parses").command;
    assert_eq!(a.output, palisade_nad::Format::Jsonl);
    assert_eq!(a.vms, vec![ip("fd00::1")]);
    assert_eq!(a.window.as_nanos(), 500_000_000);
    // `palisade nad --help` reaches nad's own help.
    let help = Parent::try_parse_from(["palisade", "nad", "--help"]).expect("parent");
    let ParentCmd::Nad(raw) = help.cmd;
    assert_eq!(raw.args, vec![std::ffi::OsString::from("--help")]);
}

#[test]
fn bad_inputs_are_named() {
    let err = |args: &[&str]| {
        let argv = std::iter::once("palisade nad").chain(args.iter().copied());
        NadCli::try_parse_from(argv).expect_err("rejected").to_string()
    };
    assert!(err(&["features", "--pcap", "x", "--vm", "10.0.0.300", "--window", "1"]).contains("10.0.0.300"));
    assert!(err(&["features", "--pcap", "x", "--vm", "10.0.0.1", "--window", "-2"]).contains("-2"));
    assert!(err(&["features", "--vm", "10.0.0.1", "--window", "1"]).contains("--pcap"));
    let NadCmd::Features(a) = NadCli::try_parse_from([
        "palisade nad",
        "features",
        "--pcap",
        "/nonexistent.pcap",
        "--vm",
        "10.0.0.1",
        "--window",
        "1",
    ])
    .expect("parses")
    .command;
    let mut out = Vec::new();
    let e = features_to(&a, &mut out).expect_err("no such file");
    assert_eq!(e.to_string(), "cannot open capture file /nonexistent.pcap");
    assert!(out.is_empty(), "no header before the file is known to open");
    let zero = NadCli::try_parse_from(["palisade nad", "features", "--pcap", "x", "--vm", "10.0.0.1", "--window", "0"])
        .expect("parses");
    let NadCmd::Features(a) = zero.command;
    assert!(features_to(&a, Vec::new()).expect_err("zero window").to_string().contains("window `0`"));
}
