//! `palisade nad train`, `eval` and `detect`. The `palisade` binary hands every
//! `palisade nad ...` to [`run_nad`], which parses with `palisade-nad`'s command plus these
//! subcommands (so `palisade nad --help` lists all of them) and passes the others on.

use std::ffi::OsString;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, FromArgMatches, Subcommand};
use palisade_nad::cli::{NadCli, NadCommand};
use palisade_nad::{RunError, Seconds};

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use palisade_nad::live::LiveOptions;
use palisade_nad::Config;

use crate::data::{self, DataError, Series};
use crate::detect::Scorer;
use crate::detector::{self, DetectError, Evaluation, Model, TrainOptions};
use crate::nn::NetConfig;
use crate::plot::{roc_svg, Curve};
use crate::store::{self, StoreError};
use crate::train::{EpochReport, TrainConfig};

/// The detector's subcommands of `palisade nad`.
#[derive(Debug, Subcommand)]
pub enum DetectCmd {
    /// Train LSTM-NAD (and the two baselines) on the windows before --train-until.
    ///
    /// Example:
    ///   palisade nad train --pcap cap.pcap --labels labels.csv --vm 10.0.0.5 --window 60 \
    ///       --train-until 1701000000 --model model/
    ///
    /// The windows before --train-until are split in time: the first 80% train, the last 20%
    /// pick the best epoch (validation ROC AUC) and each detector's threshold (best F1).
    /// Progress goes to stderr, one line per epoch. The model directory gets
    /// model.safetensors, model.json and baselines.json.
    #[command(verbatim_doc_comment)]
    Train(TrainArgs),
    /// Score the windows from --from on with LSTM-NAD and the baselines, and report metrics.
    ///
    /// Example:
    ///   palisade nad eval --model model/ --pcap cap.pcap --labels labels.csv --vm 10.0.0.5 \
    ///       --from 1701000000 -o json --roc roc.svg
    ///
    /// Reports ROC AUC, PR AUC (average precision), TPR at 1% FPR, the confusion matrix at
    /// the threshold chosen on validation and detection per attack kind, for LSTM-NAD and
    /// for `stability_2018` (a reconstruction of Yin et al. 2018) and `isolation_forest`.
    #[command(verbatim_doc_comment)]
    Eval(EvalArgs),
    /// Score each window as it closes, from a capture file or live, and print alerts.
    ///
    /// Examples:
    ///   palisade nad detect --model model/ --vm 10.0.0.5 --pcap cap.pcap
    ///   palisade nad detect --model model/ --vm 198.18.1.10 --iface pa-web1
    ///
    /// Each window at or above the model's threshold prints one JSON line (vm, window_start,
    /// score, threshold, alert, top_features: the three features furthest from their
    /// training mean, in standard deviations); --every prints every scored window. The first
    /// T-1 windows only fill the sequence. Windows have the model's length.
    #[command(verbatim_doc_comment)]
    Detect(DetectArgs),
    /// Show the alerts the controller's live detectors raised (`anomaly` policies).
    ///
    /// Examples:
    ///   palisade nad alerts
    ///   palisade nad alerts --vm web1 --follow
    ///   palisade nad alerts --vm alpha/web1 -o json
    ///
    /// Asks palisaded (--url, --token or PALISADE_URL, PALISADE_TOKEN): a tenant token sees
    /// its own tenant's alerts only. Each line: alert id, window start (UTC), VM, score and
    /// threshold, and the three features furthest from their training mean (in standard
    /// deviations). -o json prints JSON lines. --follow keeps printing new alerts.
    /// The detectors themselves: `palisade nad alerts --detectors`.
    #[command(verbatim_doc_comment)]
    Alerts(AlertsArgs),
}

/// Arguments of `palisade nad alerts` (run by the `palisade` binary, which talks to the API).
#[derive(Debug, Clone, Args)]
pub struct AlertsArgs {
    /// Only this VM's alerts: `name` (a tenant token's VM) or `tenant/name`.
    #[arg(long, value_name = "VM")]
    pub vm: Option<String>,
    /// Only this tenant's alerts (the admin token; a tenant token sees only its own anyway).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Keep printing new alerts as they are raised (until Ctrl-C).
    #[arg(long)]
    pub follow: bool,
    /// Only alerts with an id above this.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// List the live detectors (phase, model, port, windows scored, alerts) instead.
    #[arg(long, conflicts_with_all = ["follow", "after"])]
    pub detectors: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// The controller's URL.
    #[arg(long, env = "PALISADE_URL", default_value = "http://127.0.0.1:7683")]
    pub url: String,
    /// Bearer token.
    #[arg(long, env = "PALISADE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// The arguments of `palisade nad alerts`, if that is the command (`None` for the others,
/// which [`run_nad`] runs).
pub fn alerts_args(cmd: &NadCommand) -> Option<AlertsArgs> {
    let argv = std::iter::once(OsString::from("palisade nad")).chain(cmd.args.iter().cloned());
    let matches = nad_command().try_get_matches_from(argv).unwrap_or_else(|e| e.exit());
    match DetectCmd::from_arg_matches(&matches) {
        Ok(DetectCmd::Alerts(a)) => Some(a),
        _ => None,
    }
}

/// Arguments of `palisade nad detect`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["pcap", "iface"])))]
pub struct DetectArgs {
    /// Model directory written by `palisade nad train`.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The monitored VM's IP address.
    #[arg(long, value_name = "IP")]
    pub vm: IpAddr,
    /// Capture file (pcap or pcapng).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Capture live on this interface (needs root); windows are scored as they close.
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// Live: stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_name = "SECONDS", requires = "iface")]
    pub duration: Option<Seconds>,
    /// Print every scored window, not only alerts.
    #[arg(long)]
    pub every: bool,
}

/// A capture with its labels, and the VM whose windows they label (`train` and `eval`).
#[derive(Debug, Args)]
pub struct LabelledCapture {
    /// Capture file (pcap or pcapng).
    #[arg(long, value_name = "FILE")]
    pub pcap: PathBuf,
    /// Ground truth: CSV with header window_start,label,attack.
    #[arg(long, value_name = "FILE")]
    pub labels: PathBuf,
    /// The monitored VM's IP address.
    #[arg(long, value_name = "IP")]
    pub vm: IpAddr,
}

/// Arguments of `palisade nad train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The labelled capture.
    #[command(flatten)]
    pub data: LabelledCapture,
    /// Window length in seconds (the labels' window starts are multiples of it).
    #[arg(long, value_name = "SECONDS")]
    pub window: Seconds,
    /// Windows starting before this Unix time (seconds) train and validate.
    #[arg(long, value_name = "UNIX_TIME")]
    pub train_until: Seconds,
    /// Directory to write the model to.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Training epochs (the best by validation AUC is kept).
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    /// Steps T per input sequence (windows; the label is the last one's).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Seed of everything random (initialisation, shuffling, oversampling, dropout, forest).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Dropout after each dense layer.
    #[arg(long, default_value_t = 0.2)]
    pub dropout: f32,
    /// Share of the training windows (the latest) used for validation.
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
    /// Stability baseline: length of the traffic cycle in seconds (a day; the lab compresses it).
    #[arg(long, value_name = "SECONDS", default_value = "86400")]
    pub period: Seconds,
    /// Stability baseline: time-of-day slots per cycle.
    #[arg(long, default_value_t = 96)]
    pub slots: usize,
    /// Isolation forest: number of trees.
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// Threads (results do not depend on it).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// Output format of `eval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table.
    Human,
    /// One JSON document.
    Json,
}

/// Arguments of `palisade nad eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model directory written by `palisade nad train`.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The labelled capture.
    #[command(flatten)]
    pub data: LabelledCapture,
    /// Score windows starting at or after this Unix time (seconds).
    #[arg(long, value_name = "UNIX_TIME")]
    pub from: Seconds,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// Also write the ROC curves of all detectors to this SVG file.
    #[arg(long, value_name = "FILE")]
    pub roc: Option<PathBuf>,
    /// Also write every scored window's scores to this CSV file
    /// (window_start,label,attack,lstm_nad,stability_2018,isolation_forest).
    #[arg(long, value_name = "FILE")]
    pub scores: Option<PathBuf>,
    /// Threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// `train` or `eval` failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Another `palisade nad` command failed.
    #[error(transparent)]
    Nad(#[from] RunError),
    /// Loading the data failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Training or evaluation failed.
    #[error(transparent)]
    Detect(#[from] DetectError),
    /// The model directory.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bad argument.
    #[error("{0}")]
    Arg(String),
    /// Writing output.
    #[error("cannot write {path}")]
    Write {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `palisade nad` as a whole: `palisade-nad`'s command (its about text and subcommands) plus
/// `train`, `eval`, `detect` and `alerts`.
pub fn nad_command() -> clap::Command {
    let base = NadCli::command();
    let (about, long_about) = (base.get_about().cloned(), base.get_long_about().cloned());
    // Adding subcommands takes the enum's doc as the command's; keep palisade-nad's.
    let mut command = DetectCmd::augment_subcommands(base);
    if let Some(about) = about {
        command = command.about(about);
    }
    if let Some(long_about) = long_about {
        command = command.long_about(long_about);
    }
    command
}

/// Runs `palisade nad ...`: `train`, `eval` and `detect` here, everything else in `palisade-nad`.
pub fn run_nad(cmd: &NadCommand) -> Result<(), CliError> {
    let argv = std::iter::once(OsString::from("palisade nad")).chain(cmd.args.iter().cloned());
    let matches = nad_command().try_get_matches_from(argv).unwrap_or_else(|e| e.exit());
    match matches.subcommand_name() {
        Some("train" | "eval" | "detect" | "alerts") => {
            match DetectCmd::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()) {
                DetectCmd::Train(a) => train(&a),
                DetectCmd::Eval(a) => eval(&a),
                DetectCmd::Detect(a) => detect(&a, std::io::stdout().lock()).map(|_| ()),
                DetectCmd::Alerts(_) => {
                    Err(CliError::Arg("`nad alerts` asks the controller; run it as `palisade nad alerts`".into()))
                }
            }
        }
        _ => Ok(palisade_nad::cli::run(cmd)?),
    }
}

fn load(pcap: &Path, labels: &Path, vm: IpAddr, window: Seconds) -> Result<Series, CliError> {
    let (series, report) = data::load(pcap, labels, vm, window)?;
    for w in report.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(series)
}

/// `palisade nad train`.
pub fn train(a: &TrainArgs) -> Result<(), CliError> {
    if !(0.0..1.0).contains(&a.val_fraction) || a.val_fraction == 0.0 {
        return Err(CliError::Arg(format!("--val-fraction {} is not between 0 and 1", a.val_fraction)));
    }
    if !(0.0..1.0).contains(&a.dropout) {
        return Err(CliError::Arg(format!("--dropout {} is not in [0, 1)", a.dropout)));
    }
    if a.steps == 0 || a.trees == 0 || a.slots == 0 || a.period.as_nanos() == 0 {
        return Err(CliError::Arg("--steps, --trees, --slots and --period must be positive".into()));
    }
    let series = load(&a.data.pcap, &a.data.labels, a.data.vm, a.window)?;
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
pub fn eval(a: &EvalArgs) -> Result<(), CliError> {
    let model = store::load(&a.model)?;
    let window: Seconds = model.meta.window.parse().map_err(|_| {
        CliError::Arg(format!("the model's window length `{}` is not a number of seconds", model.meta.window))
    })?;
    let series = load(&a.data.pcap, &a.data.labels, a.data.vm, window)?;
    let ev = detector::evaluate(&model, &series, a.from.as_nanos(), a.threads.max(1))?;
    if let Some(path) = &a.roc {
        let title = format!(
            "ROC, VM {}, {} windows from {} s",
            a.data.vm,
            ev.windows,
            window.format_instant(a.from.as_nanos())
        );
        let svg = roc_svg(&title, &curves(&ev));
        std::fs::write(path, svg).map_err(|source| CliError::Write { path: path.clone(), source })?;
    }
    if let Some(path) = &a.scores {
        std::fs::write(path, ev.scores_csv(window)).map_err(|source| CliError::Write { path: path.clone(), source })?;
    }
    let mut out = std::io::stdout().lock();
    let text = match a.output {
        Output::Json => serde_json::to_string_pretty(&ev).expect("evaluation serialises") + "\n",
        Output::Human => table(&ev, &model),
    };
    out.write_all(text.as_bytes()).map_err(|source| CliError::Write { path: "stdout".into(), source })?;
    Ok(())
}

/// `palisade nad detect`, alerts to `out`; returns (windows scored, alerts).
pub fn detect<W: Write>(a: &DetectArgs, out: W) -> Result<(u64, u64), CliError> {
    let model = store::load(&a.model)?;
    let window: Seconds = model.meta.window.parse().map_err(|_| {
        CliError::Arg(format!("the model's window length `{}` is not a number of seconds", model.meta.window))
    })?;
    let mut scorer = Scorer::new(&model, window, out, a.every);
    let report = match (&a.pcap, &a.iface) {
        (Some(path), _) => {
            let cfg = Config {
                vms: vec![a.vm],
                window,
                reorder: Seconds::from_secs(1),
                series: palisade_nad::Series::Bounded,
            };
            palisade_nad::extract_file(path, &cfg, &mut scorer)?
        }
        (None, Some(iface)) => {
            let cfg = Config {
                vms: vec![a.vm],
                window,
                reorder: Seconds::from_nanos(250_000_000),
                series: palisade_nad::Series::Open,
            };
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, Arc::clone(&stop))
                    .map_err(|source| CliError::Write { path: "signal handler".into(), source })?;
            }
            let mut opts = LiveOptions::new(iface);
            opts.duration = a.duration.map(|d| Duration::from_nanos(d.as_nanos()));
            palisade_nad::live::capture(&opts, &cfg, &mut scorer, &stop)?
        }
        (None, None) => return Err(CliError::Arg("give --pcap FILE or --iface IFACE".into())),
    };
    for w in report.warnings() {
        eprintln!("warning: {w}");
    }
    Ok((scorer.scored, scorer.alerts))
}

/// The ROC curves of an evaluation, LSTM-NAD first.
pub fn curves(ev: &Evaluation) -> Vec<Curve<'_>> {
    [
        ("LSTM-NAD", &ev.lstm_nad),
        ("stability_2018 (reconstructed)", &ev.stability_2018),
        ("isolation_forest", &ev.isolation_forest),
    ]
    .into_iter()
    .map(|(name, r)| Curve { name, points: &r.roc, auc: r.roc_auc })
    .collect()
}

/// The human-readable report.
pub fn table(ev: &Evaluation, model: &Model) -> String {
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
            let pct = |r: &detector::DetectorResult| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nad_lists_the_detector_commands_beside_palisade_nads_own() {
        let cmd = nad_command();
        let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
        for n in ["features", "train", "eval", "detect"] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        assert_eq!(cmd.get_about().map(ToString::to_string), NadCli::command().get_about().map(ToString::to_string));
    }

    #[test]
    fn train_without_its_required_arguments_names_them() {
        let e = nad_command().try_get_matches_from(["palisade nad", "train", "--pcap", "x.pcap"]).unwrap_err();
        let text = e.to_string();
        for arg in ["--labels", "--vm", "--window", "--train-until", "--model"] {
            assert!(text.contains(arg), "{arg} not named in: {text}");
        }
        let e = nad_command()
            .try_get_matches_from([
                "palisade nad",
                "eval",
                "--model",
                "m",
                "--pcap",
                "p",
                "--labels",
                "l",
                "--vm",
                "10.0.0.1",
                "--from",
                "soon",
            ])
            .unwrap_err();
        assert!(e.to_string().contains("soon"), "{e}");
    }
}
