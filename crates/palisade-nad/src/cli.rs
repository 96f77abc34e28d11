//! `palisade nad ...`: the arguments and what runs them. The `palisade` binary hands over the
//! words after `nad` untouched ([`NadCommand`]) because `-o` here means csv|jsonl, while the
//! rest of `palisade` uses a global `-o human|json`.

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::error::RunError;
use crate::features::{Config, Extractor, Format, RowWriter, Seconds, Series};
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

/// Parses the words after `palisade nad` (printing help or a usage error and exiting, as clap
/// does) and runs the command.
pub fn run(cmd: &NadCommand) -> Result<(), RunError> {
    let argv = std::iter::once(OsString::from("palisade nad")).chain(cmd.args.iter().cloned());
    let cli = NadCli::try_parse_from(argv).unwrap_or_else(|e| e.exit());
    match cli.command {
        NadCmd::Features(a) => features(&a),
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
