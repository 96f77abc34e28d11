//! `palisade nad ...`: the arguments and what runs them. The `palisade` binary hands over the
//! words after `nad` untouched ([`NadCommand`]) because `-o` here means csv|jsonl, while the
//! rest of `palisade` uses a global `-o human|json`.

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::dataset::{self, AttackKind, SynthConfig};
use crate::error::RunError;
use crate::features::{Config, Extractor, Format, RowWriter, Seconds, Series};
use crate::gen::{self, GenConfig};
use crate::live::{self, LiveOptions};
use crate::progress::Progress;
use crate::report::Report;
use crate::run::{extract, open_file, PassError};

/// Everything after `palisade nad`, parsed by [`NadCli`].
#[derive(Debug, Clone, Args)]
#[command(disable_help_flag = true)]
pub struct NadCommand {
    /// `features ...`, `generate ...` or `dataset synth ...`; see `palisade nad --help`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., value_name = "ARGS")]
    pub args: Vec<OsString>,
}

/// Network anomaly detection: the 11 traffic features of VMs per time window, and labelled
/// datasets to train and test the detector on.
///
/// Features follow shared/specs/nad-features.md exactly: one row per VM per window, windows
/// aligned to multiples of the window length since the epoch, empty windows as zeros.
/// `dataset synth` writes a seeded synthetic month (capture + labels.csv + dataset.json) with
/// real attack captures spliced into a periodic benign background.
#[derive(Debug, Parser)]
#[command(name = "palisade nad")]
pub struct NadCli {
    /// What to do.
    #[command(subcommand)]
    pub command: NadCmd,
}

/// `palisade nad` subcommands.
#[derive(Debug, Subcommand)]
pub enum NadCmd {
    /// Compute the 11 features per VM and window from a capture file or a live interface.
    ///
    /// Examples:
    ///   palisade nad features --pcap web.pcap --vm 10.0.0.5 --window 60
    ///   palisade nad features --pcap x.pcapng --vm 10.0.0.5 --vm fd00::7 --window 1 -o jsonl
    ///   palisade nad features --iface pa-web1 --vm 198.18.1.10 --window 10
    ///
    /// Output (stdout): CSV with header
    /// vm,window_start,access_port,ip_entro,service_port_entro,syn_rate,bps,pps,packet_per_ip,
    /// ip_count,syn_per_ip,bytes_per_ip,syn_count — or JSON lines with the same fields.
    /// Warnings (truncated file, malformed packets by reason) go to stderr; so does progress,
    /// when stderr is a terminal.
    #[command(verbatim_doc_comment)]
    Features(FeaturesArgs),
    /// Write a seeded synthetic capture for benchmarks (TCP/UDP/ICMP, VMs 10.0.0.1.., many peers).
    ///
    /// Example: palisade nad generate --out /tmp/bench.pcap --packets 10000000 --peers 10000
    #[command(verbatim_doc_comment)]
    Generate(GenerateArgs),
    /// Make labelled datasets for the detector (see `palisade nad dataset synth --help`).
    #[command(subcommand)]
    Dataset(DatasetCmd),
}

/// `palisade nad dataset` subcommands.
#[derive(Debug, Subcommand)]
pub enum DatasetCmd {
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
    /// crates/palisade-nad/testdata/pcaps/README.md) with the victim rewritten to the VM, the
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
pub struct SynthArgs {
    /// Directory to write capture.pcap, labels.csv and dataset.json into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Days of traffic.
    #[arg(long, default_value_t = 30)]
    pub days: u64,
    /// Hours of traffic instead of days (for small test sets).
    #[arg(long, conflicts_with = "days")]
    pub hours: Option<u64>,
    /// Window length in whole seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub window: u64,
    /// PRNG seed: the same seed and settings give the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The monitored VM's IPv4 address.
    #[arg(long, value_name = "IP", default_value = "10.0.0.5")]
    pub vm: Ipv4Addr,
    /// Read the attack captures from DIR (same file names) instead of the copies built into
    /// the program [default: the built-in copies].
    #[arg(long, value_name = "DIR")]
    pub attack_pcaps: Option<PathBuf>,
    /// Wanted share of abnormal windows.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.03)]
    pub attack_share: f64,
    /// Attack kinds kept out of the training part (comma-separated).
    #[arg(long, value_name = "KINDS", value_delimiter = ',', default_value = "http_flood,masscan_udp")]
    pub held_back: Vec<String>,
    /// Benign surges (flash crowds: 2-4 times the sessions for 15-60 minutes, labelled 0) per
    /// day on average; 0 for none.
    #[arg(long, value_name = "N", default_value_t = 0.4)]
    pub surges_per_day: f64,
    /// First second of the capture, Unix time (the default is Monday 2026-01-05 00:00 UTC).
    #[arg(long, value_name = "UNIX_TIME", default_value_t = dataset::DEFAULT_START)]
    pub start: u64,
}

/// Arguments of `palisade nad features`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["pcap", "iface"])))]
pub struct FeaturesArgs {
    /// Capture file: pcap (µs or ns, either byte order) or pcapng.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Capture live on this interface (needs root); rows appear as each window closes.
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// A monitored VM's IP address (IPv4 or IPv6); repeat for several VMs.
    #[arg(long = "vm", value_name = "IP", required = true)]
    pub vms: Vec<IpAddr>,
    /// Window length in seconds (e.g. 60, 1, 0.5); windows are aligned to multiples of it.
    #[arg(long, value_name = "SECONDS")]
    pub window: Seconds,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Csv)]
    pub output: Format,
    /// Keep a window open this long past its end for out-of-order packets
    /// [default: 1 for files, 0.25 live]. Later packets are counted as late and reported.
    #[arg(long, value_name = "SECONDS")]
    pub reorder: Option<Seconds>,
    /// Live: stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_name = "SECONDS", requires = "iface")]
    pub duration: Option<Seconds>,
}

/// Arguments of `palisade nad generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Where to write the pcap file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Number of packets.
    #[arg(long, default_value_t = 10_000_000)]
    pub packets: u64,
    /// Peers per VM (about this many are seen per window).
    #[arg(long, default_value_t = 1000)]
    pub peers: u32,
    /// Number of VMs (10.0.0.1, 10.0.0.2, ...).
    #[arg(long, default_value_t = 4)]
    pub vms: u32,
    /// Packets per second of capture time.
    #[arg(long, default_value_t = 100_000)]
    pub rate: u64,
    /// PRNG seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Parses the words after `palisade nad` (printing help or a usage error and exiting, as clap
/// does) and runs the command.
pub fn run(cmd: &NadCommand) -> Result<(), RunError> {
    let argv = std::iter::once(OsString::from("palisade nad")).chain(cmd.args.iter().cloned());
    let cli = NadCli::try_parse_from(argv).unwrap_or_else(|e| e.exit());
    match cli.command {
        NadCmd::Features(a) => features(&a),
        NadCmd::Generate(a) => generate(&a),
        NadCmd::Dataset(DatasetCmd::Synth(a)) => synth(&a),
    }
}

fn features(a: &FeaturesArgs) -> Result<(), RunError> {
    let out = io::BufWriter::with_capacity(1 << 20, io::stdout().lock());
    match features_to(a, out) {
        Ok(report) => {
            print_report(&report);
            Ok(())
        }
        Err(RunError::Write { source }) if source.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs `palisade nad features` with rows written to `out`; returns what the run saw.
pub fn features_to<W: Write>(a: &FeaturesArgs, out: W) -> Result<Report, RunError> {
    let live_mode = a.iface.is_some();
    let default_reorder = if live_mode { Seconds::from_nanos(250_000_000) } else { Seconds::from_secs(1) };
    let cfg = Config {
        vms: a.vms.clone(),
        window: a.window,
        reorder: a.reorder.unwrap_or(default_reorder),
        series: if live_mode { Series::Open } else { Series::Bounded },
    };
    Extractor::new(&cfg)?;
    let write = |source| RunError::Write { source };
    let report = match (&a.pcap, &a.iface) {
        (Some(path), _) => {
            // Open before writing anything, so a bad path prints no header.
            let (mut reader, size) = open_file(path)?;
            let mut writer = RowWriter::new(out, a.output, a.window, &a.vms).map_err(write)?;
            let progress = Progress::for_file(size);
            let result = extract(&mut reader, &cfg, &mut writer, &progress);
            progress.finish();
            let report = match result {
                Ok(r) => r,
                Err(PassError::Read(source)) => return Err(RunError::Read { path: path.clone(), source }),
                Err(PassError::Sink(source)) => return Err(write(source)),
                Err(PassError::Config(e)) => return Err(e.into()),
            };
            writer.finish().map_err(write)?;
            report
        }
        (None, Some(iface)) => {
            let mut writer = RowWriter::new(out, a.output, a.window, &a.vms).map_err(write)?.flush_each_row(true);
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(write)?;
            }
            let mut opts = LiveOptions::new(iface);
            opts.duration = a.duration.map(|d| Duration::from_nanos(d.as_nanos()));
            let report = live::capture(&opts, &cfg, &mut writer, &stop)?;
            writer.finish().map_err(write)?;
            report
        }
        (None, None) => unreachable!("clap requires --pcap or --iface"),
    };
    Ok(report)
}

/// Warnings always (they change how rows must be read); the summary line on a terminal only.
fn print_report(report: &Report) {
    let mut err = io::stderr().lock();
    if err.is_terminal() {
        let _ = writeln!(err, "{report}");
    }
    for w in report.warnings() {
        let _ = writeln!(err, "warning: {w}");
    }
}

fn generate(a: &GenerateArgs) -> Result<(), RunError> {
    let cfg = GenConfig { packets: a.packets, vms: a.vms, peers: a.peers, rate: a.rate, seed: a.seed, snaplen: 96 };
    let failed = |source| RunError::Generate { path: a.out.clone(), source };
    let file = std::fs::File::create(&a.out).map_err(failed)?;
    let bytes = gen::generate(file, &cfg).map_err(failed)?;
    let vms: Vec<String> = gen::vm_addrs(a.vms).iter().map(|v| format!("--vm {v}")).collect();
    eprintln!("wrote {} ({} packets, {bytes} bytes); VMs: {}", a.out.display(), a.packets, vms.join(" "));
    Ok(())
}

/// The library configuration `palisade nad dataset synth` asks for.
pub fn synth_config(a: &SynthArgs) -> Result<SynthConfig, RunError> {
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

fn synth(a: &SynthArgs) -> Result<(), RunError> {
    let cfg = synth_config(a)?;
    let started = std::time::Instant::now();
    let s = dataset::synthesize(&cfg)?;
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
