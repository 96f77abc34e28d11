//! `palisade nad ...`: one command tree (features, dataset, train, eval, detect, alerts,
//! generate) over `palisade-nad`, `palisade-detect` and `palisade-traffic`.
//!
//! `palisade` hands over the words after `nad` untouched ([`NadArgs`]) and they are parsed
//! here, once, by [`NadCli`]: `-o` under `nad` means csv|jsonl (`features`) or human|json of
//! that command, while the rest of `palisade` has a global `-o human|json`, and clap
//! propagates a global argument into every subcommand, where a second `-o` would clash.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::alerts::{self, AlertsArgs};
use super::nad_detect::{self, DetectArgs, EvalArgs, TrainArgs};
use super::nad_features::{self, FeaturesArgs};
use super::nad_gen::{self, DatasetCmd, GenerateArgs};
use super::Cli;

/// Everything after `palisade nad`, parsed by [`NadCli`].
#[derive(Debug, Clone, Args)]
#[command(disable_help_flag = true)]
pub(crate) struct NadArgs {
    /// `features ...`, `train ...`, `dataset synth ...` and the others; see `palisade nad --help`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., value_name = "ARGS")]
    pub(crate) args: Vec<OsString>,
}

/// Network anomaly detection: the 11 traffic features of VMs per time window, labelled
/// datasets to train and test the detector on, and the LSTM-NAD detector itself.
///
/// Features follow shared/specs/nad-features.md exactly: one row per VM per window, windows
/// aligned to multiples of the window length since the epoch, empty windows as zeros.
/// `dataset synth` writes a seeded synthetic month (capture + labels.csv + dataset.json) with
/// real attack captures spliced into a periodic benign background; `train` and `eval` learn
/// and measure LSTM-NAD (and two baselines) on such a dataset; `detect` scores a capture or
/// an interface; `alerts` shows what the controller's live detectors raised.
#[derive(Debug, Parser)]
#[command(name = "palisade nad")]
pub(crate) struct NadCli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: NadCmd,
}

/// `palisade nad` subcommands, in the order of the work: features, datasets, the detector,
/// its alerts, then the benchmark generator.
#[derive(Debug, Subcommand)]
pub(crate) enum NadCmd {
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
    /// Make labelled datasets for the detector (see `palisade nad dataset synth --help`).
    #[command(subcommand)]
    Dataset(DatasetCmd),
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
    /// Write a seeded synthetic capture for benchmarks (TCP/UDP/ICMP, VMs 10.0.0.1.., many peers).
    ///
    /// Example: palisade nad generate --out /tmp/bench.pcap --packets 10000000 --peers 10000
    #[command(verbatim_doc_comment)]
    Generate(GenerateArgs),
}

/// Parses the words after `palisade nad` (a usage error or `--help` prints and exits, as
/// clap does) and runs the command.
pub(crate) fn run(cli: &Cli, words: &NadArgs) -> anyhow::Result<()> {
    let argv = std::iter::once(OsString::from("palisade nad")).chain(words.args.iter().cloned());
    let nad = NadCli::try_parse_from(argv).unwrap_or_else(|e| e.exit());
    match &nad.command {
        NadCmd::Features(a) => nad_features::run(a),
        NadCmd::Dataset(cmd) => nad_gen::dataset(cmd),
        NadCmd::Train(a) => nad_detect::train(a),
        NadCmd::Eval(a) => nad_detect::eval(a),
        NadCmd::Detect(a) => nad_detect::detect(a),
        NadCmd::Alerts(a) => alerts::run(cli, a),
        NadCmd::Generate(a) => nad_gen::generate(a),
    }
}

/// A bar on stderr drawn with `template` when stderr is a terminal, else one that draws
/// nothing.
pub(crate) fn progress_bar(template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<NadCli, clap::Error> {
        NadCli::try_parse_from(std::iter::once("palisade nad").chain(args.iter().copied()))
    }

    #[test]
    fn nad_lists_every_subcommand_features_first() {
        let cmd = NadCli::command();
        let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
        assert_eq!(names, ["features", "dataset", "train", "eval", "detect", "alerts", "generate"]);
        let about = cmd.get_about().map(ToString::to_string).unwrap_or_default();
        assert!(about.starts_with("Network anomaly detection"), "{about}");
    }

    /// The words after `palisade nad` reach [`NadCli`] untouched, though `palisade` has a
    /// global `-o` of its own (formerly palisade-nad's tests/cli.rs).
    #[test]
    fn the_parent_cli_hands_over_its_words_untouched() {
        let parent = Cli::try_parse_from([
            "palisade", "nad", "features", "--pcap", "f.pcap", "--vm", "fd00::1", "--window", "0.5", "-o", "jsonl",
        ])
        .expect("parent parses");
        assert_eq!(parent.output, super::super::Output::Human, "the parent's -o is not consumed");
        let super::super::Cmd::Nad(words) = parent.command else { panic!("not nad") };
        let argv = std::iter::once("palisade nad".into()).chain(words.args);
        let NadCmd::Features(a) = NadCli::try_parse_from(argv).expect("nad parses").command else {
            panic!("not features")
        };
        assert_eq!(a.output, nad_features::FormatArg::Jsonl);
        assert_eq!(a.vms, vec!["fd00::1".parse::<std::net::IpAddr>().unwrap()]);
        assert_eq!(a.window.as_nanos(), 500_000_000);
        // `palisade nad --help` reaches nad's own help.
        let help = Cli::try_parse_from(["palisade", "nad", "--help"]).expect("parent");
        let super::super::Cmd::Nad(words) = help.command else { panic!("not nad") };
        assert_eq!(words.args, vec![OsString::from("--help")]);
    }

    #[test]
    fn bad_feature_arguments_are_named() {
        let err = |args: &[&str]| parse(args).expect_err("rejected").to_string();
        assert!(err(&["features", "--pcap", "x", "--vm", "10.0.0.300", "--window", "1"]).contains("10.0.0.300"));
        assert!(err(&["features", "--pcap", "x", "--vm", "10.0.0.1", "--window", "-2"]).contains("-2"));
        assert!(err(&["features", "--vm", "10.0.0.1", "--window", "1"]).contains("--pcap"));
    }

    #[test]
    fn train_without_its_required_arguments_names_them() {
        let text = parse(&["train", "--pcap", "x.pcap"]).expect_err("incomplete").to_string();
        for arg in ["--labels", "--vm", "--window", "--train-until", "--model"] {
            assert!(text.contains(arg), "{arg} not named in: {text}");
        }
        let e = parse(&["eval", "--model", "m", "--pcap", "p", "--labels", "l", "--vm", "10.0.0.1", "--from", "soon"])
            .expect_err("bad --from");
        assert!(e.to_string().contains("soon"), "{e}");
    }

    #[test]
    fn alerts_and_eval_take_their_own_output_format() {
        let NadCmd::Alerts(a) = parse(&["alerts", "--vm", "alpha/web1", "-o", "json", "--after", "7"]).unwrap().command
        else {
            panic!("not alerts")
        };
        assert_eq!((a.output, a.after, a.vm.as_deref()), (alerts::Output::Json, 7, Some("alpha/web1")));
        assert!(parse(&["alerts", "--detectors", "--follow"]).is_err(), "--detectors lists, it does not follow");
    }
}
