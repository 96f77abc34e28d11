//! `palisade nad features`: its arguments, the progress bar of a pass over a capture file
//! (also shown while `train`, `eval` and `detect` read theirs), and the report's lines.

use std::io::{self, IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::ProgressBar;
use palisade_nad::live::{self, LiveOptions};
use palisade_nad::{
    extract, open_file, Config, Extractor, Format, Position, Report, RowWriter, RunError, Seconds, Series,
};

/// Output format of `palisade nad features`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum FormatArg {
    /// Comma-separated values with a header line.
    #[default]
    Csv,
    /// One JSON object per line, same field names.
    Jsonl,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Csv => Format::Csv,
            FormatArg::Jsonl => Format::Jsonl,
        }
    }
}

/// Arguments of `palisade nad features`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["pcap", "iface"])))]
pub(crate) struct FeaturesArgs {
    /// Capture file: pcap (µs or ns, either byte order) or pcapng.
    #[arg(long, value_name = "FILE")]
    pub(crate) pcap: Option<PathBuf>,
    /// Capture live on this interface (needs root); rows appear as each window closes.
    #[arg(long, value_name = "IFACE")]
    pub(crate) iface: Option<String>,
    /// A monitored VM's IP address (IPv4 or IPv6); repeat for several VMs.
    #[arg(long = "vm", value_name = "IP", required = true)]
    pub(crate) vms: Vec<IpAddr>,
    /// Window length in seconds (e.g. 60, 1, 0.5); windows are aligned to multiples of it.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) window: Seconds,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = FormatArg::Csv)]
    pub(crate) output: FormatArg,
    /// Keep a window open this long past its end for out-of-order packets
    /// [default: 1 for files, 0.25 live]. Later packets are counted as late and reported.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) reorder: Option<Seconds>,
    /// Live: stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_name = "SECONDS", requires = "iface")]
    pub(crate) duration: Option<Seconds>,
}

/// Runs `palisade nad features`, rows to stdout (a closed pipe, as with `| head`, ends it
/// quietly), the report to stderr.
pub(crate) fn run(a: &FeaturesArgs) -> anyhow::Result<()> {
    let out = io::BufWriter::with_capacity(1 << 20, io::stdout().lock());
    match features_to(a, out) {
        Ok(report) => {
            print_report(&report, true);
            Ok(())
        }
        Err(RunError::Write { source }) if source.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs `palisade nad features` with rows written to `out`; returns what the run saw.
pub(crate) fn features_to<W: Write>(a: &FeaturesArgs, out: W) -> Result<Report, RunError> {
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
    let format = Format::from(a.output);
    match (&a.pcap, &a.iface) {
        (Some(path), _) => {
            // Open before writing anything, so a bad path prints no header.
            let (mut reader, _) = open_file(path)?;
            let mut writer = RowWriter::new(out, format, a.window, &a.vms).map_err(write)?;
            let bar = FileProgress::new();
            let result = extract(&mut reader, &cfg, &mut writer, &mut |p| bar.update(p));
            bar.finish();
            let report = result.map_err(|e| e.at(path))?;
            writer.finish().map_err(write)?;
            Ok(report)
        }
        (None, Some(iface)) => {
            let mut writer = RowWriter::new(out, format, a.window, &a.vms).map_err(write)?.flush_each_row(true);
            let stop = stop_on_signals().map_err(write)?;
            let mut opts = LiveOptions::new(iface);
            opts.duration = a.duration.map(|d| Duration::from_nanos(d.as_nanos()));
            let report = live::capture(&opts, &cfg, &mut writer, &stop)?;
            writer.finish().map_err(write)?;
            Ok(report)
        }
        (None, None) => unreachable!("clap requires --pcap or --iface"),
    }
}

/// A flag that Ctrl-C (SIGINT) and SIGTERM raise: a live capture stops cleanly on it.
pub(crate) fn stop_on_signals() -> io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// Warnings always (they change how rows must be read); the summary line, when `summary`, on
/// a terminal only.
pub(crate) fn print_report(report: &Report, summary: bool) {
    let mut err = io::stderr().lock();
    if summary && err.is_terminal() {
        let _ = writeln!(err, "{report}");
    }
    for w in report.warnings() {
        let _ = writeln!(err, "warning: {w}");
    }
}

/// Progress of a pass over a capture file on a terminal (bytes, packets, rate, ETA by bytes)
/// to stderr; nothing at all when stderr is not a terminal.
pub(crate) struct FileProgress {
    bar: ProgressBar,
}

impl FileProgress {
    pub(crate) fn new() -> Self {
        let template = "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}";
        FileProgress { bar: super::nad::progress_bar(template) }
    }

    /// Shows `p`: input consumed, packets so far, packets per second.
    pub(crate) fn update(&self, p: Position) {
        if self.bar.is_hidden() {
            return;
        }
        if let Some(total) = p.total_bytes {
            self.bar.set_length(total);
        }
        self.bar.set_position(p.bytes);
        let secs = self.bar.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { p.packets as f64 / secs } else { 0.0 };
        self.bar.set_message(format!("{} packets, {:.2} Mpkt/s", p.packets, rate / 1e6));
    }

    /// Removes the display.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::nad::{NadCli, NadCmd};
    use super::*;

    fn args(words: &[&str]) -> FeaturesArgs {
        let argv = ["palisade nad", "features"].into_iter().chain(words.iter().copied());
        match NadCli::try_parse_from(argv).expect("arguments").command {
            NadCmd::Features(a) => a,
            other => panic!("not features: {other:?}"),
        }
    }

    #[test]
    fn a_bad_path_or_window_is_named_and_no_header_is_written() {
        let a = args(&["--pcap", "/nonexistent.pcap", "--vm", "10.0.0.1", "--window", "1"]);
        let mut out = Vec::new();
        let e = features_to(&a, &mut out).expect_err("no such file");
        assert_eq!(e.to_string(), "cannot open capture file /nonexistent.pcap");
        assert!(out.is_empty(), "no header before the file is known to open");
        let a = args(&["--pcap", "x", "--vm", "10.0.0.1", "--window", "0"]);
        assert!(features_to(&a, Vec::new()).expect_err("zero window").to_string().contains("window `0`"));
    }
}
