//! `palisade nad train`, `eval` and `detect`: their arguments, and what they print while
//! `palisade-detect` trains, evaluates and scores.

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use palisade_detect::data::{self, Series};
use palisade_detect::detect::Scorer;
use palisade_detect::detector::{self, DetectorResult, Evaluation, Model, TrainOptions};
use palisade_detect::nn::NetConfig;
use palisade_detect::plot::roc_svg;
use palisade_detect::store;
use palisade_detect::train::{EpochReport, TrainConfig};
use palisade_nad::live::{self, LiveOptions};
use palisade_nad::{extract_file, Config, Seconds};

use super::alerts::Output;
use super::nad_features::{print_report, stop_on_signals, FileProgress};

/// Arguments of `palisade nad detect`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["pcap", "iface"])))]
pub(crate) struct DetectArgs {
    /// Model directory written by `palisade nad train`.
    #[arg(long, value_name = "DIR")]
    pub(crate) model: PathBuf,
    /// The monitored VM's IP address.
    #[arg(long, value_name = "IP")]
    pub(crate) vm: IpAddr,
    /// Capture file (pcap or pcapng).
    #[arg(long, value_name = "FILE")]
    pub(crate) pcap: Option<PathBuf>,
    /// Capture live on this interface (needs root); windows are scored as they close.
    #[arg(long, value_name = "IFACE")]
    pub(crate) iface: Option<String>,
    /// Live: stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_name = "SECONDS", requires = "iface")]
    pub(crate) duration: Option<Seconds>,
    /// Print every scored window, not only alerts.
    #[arg(long)]
    pub(crate) every: bool,
}

/// A capture with its labels, and the VM whose windows they label (`train` and `eval`).
#[derive(Debug, Args)]
pub(crate) struct LabelledCapture {
    /// Capture file (pcap or pcapng).
    #[arg(long, value_name = "FILE")]
    pub(crate) pcap: PathBuf,
    /// Ground truth: CSV with header window_start,label,attack.
    #[arg(long, value_name = "FILE")]
    pub(crate) labels: PathBuf,
    /// The monitored VM's IP address.
    #[arg(long, value_name = "IP")]
    pub(crate) vm: IpAddr,
}

/// Arguments of `palisade nad train`.
#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// The labelled capture.
    #[command(flatten)]
    pub(crate) data: LabelledCapture,
    /// Window length in seconds (the labels' window starts are multiples of it).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) window: Seconds,
    /// Windows starting before this Unix time (seconds) train and validate.
    #[arg(long, value_name = "UNIX_TIME")]
    pub(crate) train_until: Seconds,
    /// Directory to write the model to.
    #[arg(long, value_name = "DIR")]
    pub(crate) model: PathBuf,
    /// Training epochs (the best by validation AUC is kept).
    #[arg(long, default_value_t = 50)]
    pub(crate) epochs: usize,
    /// Steps T per input sequence (windows; the label is the last one's).
    #[arg(long, default_value_t = 10)]
    pub(crate) steps: usize,
    /// Seed of everything random (initialisation, shuffling, oversampling, dropout, forest).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    pub(crate) batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub(crate) lr: f32,
    /// Dropout after each dense layer.
    #[arg(long, default_value_t = 0.2)]
    pub(crate) dropout: f32,
    /// Share of the training windows (the latest) used for validation.
    #[arg(long, default_value_t = 0.2)]
    pub(crate) val_fraction: f64,
    /// Stability baseline: length of the traffic cycle in seconds (a day; the lab compresses it).
    #[arg(long, value_name = "SECONDS", default_value = "86400")]
    pub(crate) period: Seconds,
    /// Stability baseline: time-of-day slots per cycle.
    #[arg(long, default_value_t = 96)]
    pub(crate) slots: usize,
    /// Isolation forest: number of trees.
    #[arg(long, default_value_t = 100)]
    pub(crate) trees: usize,
    /// Threads (results do not depend on it).
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
}

/// Arguments of `palisade nad eval`.
#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// Model directory written by `palisade nad train`.
    #[arg(long, value_name = "DIR")]
    pub(crate) model: PathBuf,
    /// The labelled capture.
    #[command(flatten)]
    pub(crate) data: LabelledCapture,
    /// Score windows starting at or after this Unix time (seconds).
    #[arg(long, value_name = "UNIX_TIME")]
    pub(crate) from: Seconds,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Human)]
    pub(crate) output: Output,
    /// Also write the ROC curves of all detectors to this SVG file.
    #[arg(long, value_name = "FILE")]
    pub(crate) roc: Option<PathBuf>,
    /// Also write every scored window's scores to this CSV file
    /// (window_start,label,attack,lstm_nad,stability_2018,isolation_forest).
    #[arg(long, value_name = "FILE")]
    pub(crate) scores: Option<PathBuf>,
    /// Threads.
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
}

/// The labelled series, with a progress bar while the capture is read and the extractor's
/// warnings on stderr.
fn load(data: &LabelledCapture, window: Seconds) -> anyhow::Result<Series> {
    let bar = FileProgress::new();
    let loaded = data::load(&data.pcap, &data.labels, data.vm, window, &mut |p| bar.update(p));
    bar.finish();
    let (series, report) = loaded?;
    print_report(&report, false);
    Ok(series)
}

/// The model in `dir` and its window length.
fn load_model(dir: &Path) -> anyhow::Result<(Model, Seconds)> {
    let model = store::load(dir)?;
    let window = model.window().with_context(|| format!("model {}", dir.display()))?;
    Ok((model, window))
}

/// `palisade nad train`.
pub(crate) fn train(a: &TrainArgs) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&a.val_fraction) || a.val_fraction == 0.0 {
        bail!("--val-fraction {} is not between 0 and 1", a.val_fraction);
    }
    if !(0.0..1.0).contains(&a.dropout) {
        bail!("--dropout {} is not in [0, 1)", a.dropout);
    }
    if a.steps == 0 || a.trees == 0 || a.slots == 0 || a.period.as_nanos() == 0 {
        bail!("--steps, --trees, --slots and --period must be positive");
    }
    let series = load(&a.data, a.window)?;
    let opts = TrainOptions {
        train_until_ns: a.train_until.as_nanos(),
        val_fraction: a.val_fraction,
        net: NetConfig { dropout: a.dropout, ..NetConfig::paper(a.steps) },
        train: TrainConfig {
            epochs: a.epochs,
            batch: a.batch,
            lr: a.lr,
            seed: a.seed,
            threads: a.threads.max(1),
            ..TrainConfig::default()
        },
        period_ns: a.period.as_nanos(),
        slots: a.slots,
        trees: a.trees,
    };
    let epochs = a.epochs;
    let model = detector::train_model(&series, &a.data.vm.to_string(), &opts, |e: &EpochReport| {
        let auc = e.val_auc.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.4}"));
        eprintln!(
            "epoch {:>3}/{epochs}  loss {:.4}  val loss {:.4}  val AUC {auc}  {:.1} s",
            e.epoch, e.loss, e.val_loss, e.seconds
        );
    })?;
    store::save(&model, &a.model)?;
    let [[tn, ta], [vn, va]] = model.meta.windows;
    eprintln!(
        "trained on {} windows ({ta} abnormal), validated on {} ({va} abnormal); kept epoch {}; threshold {:.4}; model in {}",
        tn + ta,
        vn + va,
        model.meta.best_epoch,
        model.meta.threshold,
        a.model.display()
    );
    Ok(())
}

/// `palisade nad eval`.
pub(crate) fn eval(a: &EvalArgs) -> anyhow::Result<()> {
    let (model, window) = load_model(&a.model)?;
    let series = load(&a.data, window)?;
    let ev = detector::evaluate(&model, &series, a.from.as_nanos(), a.threads.max(1))?;
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    if let Some(path) = &a.roc {
        let title = format!(
            "ROC, VM {}, {} windows from {} s",
            a.data.vm,
            ev.windows,
            window.format_instant(a.from.as_nanos())
        );
        write(path, roc_svg(&title, &ev.curves()))?;
    }
    if let Some(path) = &a.scores {
        write(path, ev.scores_csv(window))?;
    }
    let text = match a.output {
        Output::Json => serde_json::to_string_pretty(&ev)? + "\n",
        Output::Human => table(&ev, &model),
    };
    io::stdout().lock().write_all(text.as_bytes()).context("cannot write stdout")?;
    Ok(())
}

/// `palisade nad detect`: alerts to stdout as JSON lines, warnings to stderr.
pub(crate) fn detect(a: &DetectArgs) -> anyhow::Result<()> {
    let (model, window) = load_model(&a.model)?;
    let mut scorer = Scorer::new(&model, window, io::stdout().lock(), a.every);
    let report = match (&a.pcap, &a.iface) {
        (Some(path), _) => {
            let cfg = Config {
                vms: vec![a.vm],
                window,
                reorder: Seconds::from_secs(1),
                series: palisade_nad::Series::Bounded,
            };
            let bar = FileProgress::new();
            let report = extract_file(path, &cfg, &mut scorer, &mut |p| bar.update(p));
            bar.finish();
            report?
        }
        (None, Some(iface)) => {
            let cfg = Config {
                vms: vec![a.vm],
                window,
                reorder: Seconds::from_nanos(250_000_000),
                series: palisade_nad::Series::Open,
            };
            let stop = stop_on_signals().context("could not install the Ctrl-C handler")?;
            let mut opts = LiveOptions::new(iface);
            opts.duration = a.duration.map(|d| Duration::from_nanos(d.as_nanos()));
            live::capture(&opts, &cfg, &mut scorer, &stop)?
        }
        (None, None) => unreachable!("clap requires --pcap or --iface"),
    };
    print_report(&report, false);
    Ok(())
}

/// The human-readable report of `eval`.
pub(crate) fn table(ev: &Evaluation, model: &Model) -> String {
    let f = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.4}"));
    let rows = [
        ("LSTM-NAD", &ev.lstm_nad),
        ("stability_2018", &ev.stability_2018),
        ("isolation_forest", &ev.isolation_forest),
    ];
    let mut s = format!(
        "{} windows scored ({} abnormal); model kept epoch {} of {}\n\n",
        ev.windows,
        ev.abnormal_windows,
        model.meta.best_epoch,
        model.meta.epochs.len()
    );
    s += &format!(
        "{:<18} {:>8} {:>8} {:>10} {:>10} {:>7} {:>7} {:>7} {:>7}\n",
        "DETECTOR", "ROC AUC", "PR AUC", "TPR@1%FPR", "THRESHOLD", "TP", "FP", "TN", "FN"
    );
    for (name, r) in rows {
        let c = r.confusion;
        s += &format!(
            "{name:<18} {:>8} {:>8} {:>10} {:>10.4} {:>7} {:>7} {:>7} {:>7}\n",
            f(r.roc_auc),
            f(r.pr_auc),
            f(r.tpr_at_1pct_fpr),
            r.threshold,
            c.tp,
            c.fp,
            c.tn,
            c.fn_
        );
    }
    let kinds: std::collections::BTreeSet<&String> = rows.iter().flat_map(|(_, r)| r.per_attack.keys()).collect();
    if !kinds.is_empty() {
        s += &format!(
            "\n{:<20} {:>8} {:>10} {:>15} {:>17}\n",
            "ATTACK", "WINDOWS", "LSTM-NAD", "stability_2018", "isolation_forest"
        );
        for k in kinds {
            let pct = |r: &DetectorResult| {
                r.per_attack.get(k).map_or_else(|| "-".into(), |a| format!("{:.1}%", a.rate * 100.0))
            };
            let n = rows[0].1.per_attack.get(k).map_or(0, |a| a.windows);
            s += &format!(
                "{k:<20} {n:>8} {:>10} {:>15} {:>17}\n",
                pct(&ev.lstm_nad),
                pct(&ev.stability_2018),
                pct(&ev.isolation_forest)
            );
        }
    }
    s
}
