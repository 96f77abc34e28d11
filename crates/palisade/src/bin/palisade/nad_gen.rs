//! `palisade nad generate` and `palisade nad dataset synth`: the arguments of the capture and
//! dataset generators (`palisade-traffic`), and what they print.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use palisade_traffic::benchmark::{self, GenConfig};
use palisade_traffic::synth::{self, AttackKind, SynthConfig};

/// `palisade nad dataset` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DatasetCmd {
    /// A seeded synthetic month: periodic benign background plus real attacks spliced in.
    ///
    /// Writes DIR/capture.pcap (Ethernet, 96-byte snap length), DIR/labels.csv
    /// (window_start,label,attack: one row per window, label 1 when attack packets fall in it,
    /// attack = syn_flood | http_flood | masscan_tcp | masscan_udp | nmap) and DIR/dataset.json
    /// (seed, span, train_until = end of the first half, kinds held back for the test part,
    /// counts, every episode).
    ///
    /// The background is a web/UDP service VM: many clients (Zipf popularity) making HTTP(S)
    /// connections, UDP requests and pings at a rate with a daily and weekly cycle, plus the
    /// VM's own NTP/HTTPS fetches, a health check every 30 s and now and then a benign surge
    /// (flash crowd, labelled 0). Attacks are real captures built into the program
    /// (CIC-DDoS2019 SYN and HTTP floods, ESnet masscan TCP/UDP and nmap; their origins are in
    /// crates/palisade-traffic/testdata/pcaps/README.md) with the victim rewritten to the VM, the
    /// attackers to generated addresses, times mapped into the episode and checksums updated.
    /// Held-back kinds (default http_flood and masscan_udp) appear only after train_until:
    /// unseen attacks, as in the paper.
    ///
    /// Examples:
    ///   palisade nad dataset synth --out data/synth
    ///   palisade nad dataset synth --out /tmp/small --days 2 --seed 7 --vm 10.0.0.9
    #[command(verbatim_doc_comment)]
    Synth(SynthArgs),
}

/// Arguments of `palisade nad dataset synth`.
#[derive(Debug, Args)]
pub(crate) struct SynthArgs {
    /// Directory to write capture.pcap, labels.csv and dataset.json into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Days of traffic.
    #[arg(long, default_value_t = 30)]
    pub(crate) days: u64,
    /// Hours of traffic instead of days (for small test sets).
    #[arg(long, conflicts_with = "days")]
    pub(crate) hours: Option<u64>,
    /// Window length in whole seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub(crate) window: u64,
    /// PRNG seed: the same seed and settings give the same bytes.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// The monitored VM's IPv4 address.
    #[arg(long, value_name = "IP", default_value = "10.0.0.5")]
    pub(crate) vm: Ipv4Addr,
    /// Read the attack captures from DIR (same file names) instead of the copies built into
    /// the program [default: the built-in copies].
    #[arg(long, value_name = "DIR")]
    pub(crate) attack_pcaps: Option<PathBuf>,
    /// Wanted share of abnormal windows.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.03)]
    pub(crate) attack_share: f64,
    /// Attack kinds kept out of the training part (comma-separated).
    #[arg(long, value_name = "KINDS", value_delimiter = ',', default_value = "http_flood,masscan_udp")]
    pub(crate) held_back: Vec<String>,
    /// Benign surges (flash crowds: 2-4 times the sessions for 15-60 minutes, labelled 0) per
    /// day on average; 0 for none.
    #[arg(long, value_name = "N", default_value_t = 0.4)]
    pub(crate) surges_per_day: f64,
    /// First second of the capture, Unix time (the default is Monday 2026-01-05 00:00 UTC).
    #[arg(long, value_name = "UNIX_TIME", default_value_t = synth::DEFAULT_START)]
    pub(crate) start: u64,
}

/// Arguments of `palisade nad generate`.
#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Where to write the pcap file.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
    /// Number of packets.
    #[arg(long, default_value_t = 10_000_000)]
    pub(crate) packets: u64,
    /// Peers per VM (about this many are seen per window).
    #[arg(long, default_value_t = 1000)]
    pub(crate) peers: u32,
    /// Number of VMs (10.0.0.1, 10.0.0.2, ...).
    #[arg(long, default_value_t = 4)]
    pub(crate) vms: u32,
    /// Packets per second of capture time.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) rate: u64,
    /// PRNG seed.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

/// Runs `palisade nad dataset ...`.
pub(crate) fn dataset(cmd: &DatasetCmd) -> anyhow::Result<()> {
    match cmd {
        DatasetCmd::Synth(a) => synthesize(a),
    }
}

/// Runs `palisade nad generate`.
pub(crate) fn generate(a: &GenerateArgs) -> anyhow::Result<()> {
    let cfg = GenConfig { packets: a.packets, vms: a.vms, peers: a.peers, rate: a.rate, seed: a.seed, snaplen: 96 };
    let failed = || format!("cannot write generated capture {}", a.out.display());
    let file = std::fs::File::create(&a.out).with_context(failed)?;
    let bytes = benchmark::generate(file, &cfg).with_context(failed)?;
    let vms: Vec<String> = benchmark::vm_addrs(a.vms).iter().map(|v| format!("--vm {v}")).collect();
    eprintln!("wrote {} ({} packets, {bytes} bytes); VMs: {}", a.out.display(), a.packets, vms.join(" "));
    Ok(())
}

/// The library configuration `palisade nad dataset synth` asks for.
pub(crate) fn synth_config(a: &SynthArgs) -> Result<SynthConfig, synth::DatasetError> {
    let mut cfg = SynthConfig::new(a.out.clone());
    cfg.seed = a.seed;
    cfg.vm = a.vm;
    cfg.window_s = a.window;
    cfg.span_s = a.hours.map_or(a.days * 86_400, |h| h * 3600);
    cfg.start_s = a.start;
    cfg.share = a.attack_share;
    cfg.surges_per_day = a.surges_per_day;
    cfg.held_back = a.held_back.iter().map(|k| AttackKind::parse(k)).collect::<Result<_, _>>()?;
    cfg.attack_pcaps = a.attack_pcaps.clone();
    Ok(cfg)
}

fn synthesize(a: &SynthArgs) -> anyhow::Result<()> {
    let cfg = synth_config(a)?;
    let started = std::time::Instant::now();
    let bar = super::nad::progress_bar("{spinner} [{elapsed_precise}] {wide_bar} {msg} ETA {eta}");
    let s = synth::synthesize(&cfg, &mut |p| {
        bar.set_length(p.span_s);
        bar.set_position(p.at_s);
        bar.set_message(format!("{} background packets, day {}", p.background_packets, p.at_s / 86_400 + 1));
    });
    bar.finish_and_clear();
    let s = s?;
    let c = &s.counts;
    let dir = a.out.display();
    eprintln!(
        "wrote {dir}/capture.pcap ({} packets: {} background, {} attack; {:.1} MB) in {:.1} s",
        c.packets,
        c.background_packets,
        c.attack_packets,
        c.capture_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "wrote {dir}/labels.csv ({} windows of {} s; abnormal: {} in training, {} in test) and {dir}/dataset.json",
        s.header.windows, s.header.window, c.train.abnormal_windows, c.test.abnormal_windows
    );
    let names = |ks: &[AttackKind]| ks.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ");
    eprintln!(
        "train_until {} (kinds {}); held back for the test part: {}",
        s.header.train_until,
        names(&s.header.train_kinds),
        names(&s.header.held_back_kinds)
    );
    eprintln!(
        "next: palisade nad train --pcap {dir}/capture.pcap --labels {dir}/labels.csv --vm {} --window {} \
         --train-until {} --model {dir}/model",
        s.header.vm, s.header.window, s.header.train_until
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::nad::{NadCli, NadCmd};
    use super::*;

    #[test]
    fn synth_arguments_build_the_configuration_and_name_a_bad_kind() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("d");
        let parse = |extra: &[&str]| {
            let mut argv = vec!["palisade nad", "dataset", "synth", "--out", out.to_str().unwrap()];
            argv.extend_from_slice(extra);
            let NadCmd::Dataset(DatasetCmd::Synth(a)) = NadCli::try_parse_from(argv).expect("arguments").command else {
                panic!("not dataset synth")
            };
            synth_config(&a)
        };
        let cfg = parse(&["--hours", "36", "--seed", "5", "--vm", "10.9.0.7", "--held-back", "nmap"]).expect("config");
        assert_eq!((cfg.span_s, cfg.seed, cfg.vm), (36 * 3600, 5, Ipv4Addr::new(10, 9, 0, 7)));
        assert_eq!(cfg.held_back, vec![AttackKind::Nmap]);
        let d = parse(&[]).expect("defaults");
        assert_eq!((d.span_s, d.window_s), (30 * 86_400, 60));
        assert_eq!(d.held_back, vec![AttackKind::HttpFlood, AttackKind::MasscanUdp]);
        let err = parse(&["--held-back", "slowloris"]).expect_err("unknown kind").to_string();
        assert!(err.contains("slowloris") && err.contains("syn_flood"), "{err}");
    }
}
