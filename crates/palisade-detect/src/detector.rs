//! The whole detector as trained and saved: the normaliser, LSTM-NAD with its threshold, and
//! both baselines with theirs; how it is trained from a labelled series and how it is
//! evaluated on the windows after a point in time.
//!
//! ```text
//!  Series (rows + labels) ─► before --train-until: train part ─┬─ first 80%: fit normaliser,
//!                                                               │  LSTM-NAD, stability profile,
//!                                                               │  isolation forest
//!                                                               └─ last 20%: pick the epoch and
//!                                                                  every detector's threshold
//!  Series ─► windows from --from ─► scores of all three ─► metrics per detector
//! ```

use std::collections::BTreeMap;

use palisade_nad::{BadSeconds, Seconds};

use crate::baseline::{IsolationForest, Stability};
use crate::data::{Series, F, FEATURE_NAMES};
use crate::metrics::{self, Confusion, RocPoint};
use crate::nn::{Net, NetConfig};
use crate::norm::Normalizer;
use crate::plot::Curve;
use crate::train::{self, EpochReport, TrainConfig, TrainError};
use crate::windows::Windows;

/// Model file format version.
pub const VERSION: u32 = 1;

/// Options of training beyond the network's.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainOptions {
    /// Windows starting before this (ns since the epoch) train and validate.
    pub train_until_ns: u64,
    /// Share of the training windows (the latest) kept for validation.
    pub val_fraction: f64,
    /// The network.
    pub net: NetConfig,
    /// The optimisation.
    pub train: TrainConfig,
    /// Stability baseline: cycle length (ns) and slots per cycle.
    pub period_ns: u64,
    /// Stability baseline: slots per cycle.
    pub slots: usize,
    /// Isolation forest: trees.
    pub trees: usize,
}

/// What the model file says besides the weights.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    /// [`VERSION`].
    pub version: u32,
    /// Feature names in input order.
    pub features: Vec<String>,
    /// The monitored VM it was trained for.
    pub vm: String,
    /// Window length, seconds.
    pub window: String,
    /// How it was trained.
    pub options: TrainOptions,
    /// Normalisation fitted on the training part.
    pub norm: Normalizer,
    /// LSTM-NAD flags windows scoring at or above this.
    pub threshold: f64,
    /// Training windows (normal, abnormal) and validation windows (normal, abnormal).
    pub windows: [[usize; 2]; 2],
    /// Every epoch.
    pub epochs: Vec<EpochReport>,
    /// The epoch kept.
    pub best_epoch: usize,
}

/// A trained detector.
#[derive(Debug, Clone)]
pub struct Model {
    /// Metadata.
    pub meta: Meta,
    /// The network of the best epoch.
    pub net: Net,
    /// The 2018 baseline (reconstruction).
    pub stability: Stability,
    /// The isolation-forest baseline.
    pub iforest: IsolationForest,
}

impl Model {
    /// The window length it was trained on (the length its input windows must have).
    pub fn window(&self) -> Result<Seconds, DetectError> {
        self.meta.window.parse().map_err(DetectError::ModelWindow)
    }
}

/// Why a detector could not be trained or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// `T` is zero.
    #[error("--steps must be at least 1")]
    NoSteps,
    /// Too few windows before `--train-until`.
    #[error("only {rows} windows start before --train-until; need at least {need} (T = {steps} steps, then training and validation windows)")]
    TooFewBeforeSplit {
        /// Windows before the split.
        rows: usize,
        /// Windows needed.
        need: usize,
        /// `T`.
        steps: usize,
    },
    /// Too few training windows to keep some for validation.
    #[error("{windows} training windows are too few to split into training and validation ({percent}% validation, T = {steps})")]
    TooFewToValidate {
        /// Training windows.
        windows: usize,
        /// Validation share in percent.
        percent: f64,
        /// `T`.
        steps: usize,
    },
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The model's metadata names a window length that is not one.
    #[error("the model's window length is not a number of seconds")]
    ModelWindow(#[source] BadSeconds),
    /// Nothing to evaluate.
    #[error("no window to score at or after {from} s (the series ends at {last} s, and a window needs {steps} steps)")]
    NothingToScore {
        /// `--from`.
        from: String,
        /// Start of the last window.
        last: String,
        /// `T`.
        steps: usize,
    },
}

/// Trains LSTM-NAD and both baselines on `series`. `vm` is recorded in the metadata.
pub fn train_model(
    series: &Series,
    vm: &str,
    opts: &TrainOptions,
    progress: impl FnMut(&EpochReport),
) -> Result<Model, DetectError> {
    let t = opts.net.steps;
    if t == 0 {
        return Err(DetectError::NoSteps);
    }
    let n_rows = series.starts.iter().take_while(|&&s| s < opts.train_until_ns).count();
    if n_rows < t + 1 {
        return Err(DetectError::TooFewBeforeSplit { rows: n_rows, need: t + 1, steps: t });
    }
    let ends: Vec<usize> = (t - 1..n_rows).collect();
    let n_val = ((ends.len() as f64) * opts.val_fraction).round() as usize;
    let n_fit = ends.len() - n_val;
    // Validation windows do not share rows with training windows.
    let val_ends: Vec<usize> = ends[n_fit..].iter().copied().skip(t - 1).collect();
    let fit_ends = &ends[..n_fit];
    if fit_ends.is_empty() || val_ends.is_empty() {
        return Err(DetectError::TooFewToValidate {
            windows: ends.len(),
            percent: (opts.val_fraction * 100.0).round(),
            steps: t,
        });
    }
    let fit_rows = fit_ends.last().map_or(0, |&e| e + 1);
    let norm = Normalizer::fit(&series.features[..fit_rows]);
    let x = norm.apply_all(&series.features);
    let mk = |ends: &[usize]| Windows {
        series: &x,
        features: F,
        steps: t,
        ends: ends.to_vec(),
        labels: ends.iter().map(|&i| series.labels[i]).collect(),
    };
    let (tr, va) = (mk(fit_ends), mk(&val_ends));
    let count = |w: &Windows<'_>| {
        let ab = w.labels.iter().filter(|&&l| l != 0).count();
        [w.len() - ab, ab]
    };
    let windows = [count(&tr), count(&va)];
    let trained = train::train(opts.net, &opts.train, &tr, &va, progress)?;
    let val_scores: Vec<f64> =
        train::score(&trained.net, &va, opts.train.threads).iter().map(|&s| f64::from(s)).collect();
    let threshold = metrics::best_f1_threshold(&val_scores, &va.labels).unwrap_or(0.5);

    // Stability: profile from the normal training rows, threshold on validation, then the
    // validation windows judged normal join the profile.
    let rows = |ends: &[usize]| -> (Vec<u64>, Vec<[f64; F]>) {
        (ends.iter().map(|&i| series.starts[i]).collect(), ends.iter().map(|&i| series.features[i]).collect())
    };
    let (fit_starts, fit_feats) = rows(fit_ends);
    let (val_starts, val_feats) = rows(&val_ends);
    let mut stability = Stability::fit(opts.period_ns, opts.slots, &fit_starts, &fit_feats, &tr.labels);
    stability.threshold = metrics::best_f1_threshold(&stability.score_frozen(&val_starts, &val_feats), &va.labels)
        .unwrap_or(f64::INFINITY);
    stability.score_online(&val_starts, &val_feats);

    // Isolation forest on the normal training windows' normalised rows.
    let normal_rows: Vec<[f32; F]> =
        fit_ends.iter().filter(|&&i| series.labels[i] == 0).map(|&i| norm.apply(&series.features[i])).collect();
    let mut iforest = IsolationForest::fit(&normal_rows, opts.trees, 256, opts.train.seed);
    let if_val: Vec<f64> = val_ends.iter().map(|&i| iforest.score(&norm.apply(&series.features[i]))).collect();
    iforest.threshold = metrics::best_f1_threshold(&if_val, &va.labels).unwrap_or(f64::MAX);

    let meta = Meta {
        version: VERSION,
        features: FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect(),
        vm: vm.to_owned(),
        window: series.window.format_instant(series.window.as_nanos()),
        options: opts.clone(),
        norm,
        threshold,
        windows,
        epochs: trained.epochs,
        best_epoch: trained.best_epoch,
    };
    Ok(Model { meta, net: trained.net, stability, iforest })
}

/// One detector's results on the evaluated windows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DetectorResult {
    /// ROC AUC (null without both classes).
    pub roc_auc: Option<f64>,
    /// Average precision (null without abnormal windows).
    pub pr_auc: Option<f64>,
    /// Highest TPR at FPR <= 1% (null without both classes).
    pub tpr_at_1pct_fpr: Option<f64>,
    /// The threshold chosen on validation.
    pub threshold: f64,
    /// Counts at that threshold.
    pub confusion: Confusion,
    /// Per attack kind: windows and how many were flagged.
    pub per_attack: BTreeMap<String, AttackResult>,
    /// The ROC curve (for the plot; not in the JSON).
    #[serde(skip)]
    pub roc: Vec<RocPoint>,
    /// Every window's score, in window order (for `--scores`; not in the JSON).
    #[serde(skip)]
    pub scores: Vec<f64>,
}

/// Detection of one attack kind.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct AttackResult {
    /// Abnormal windows of this kind.
    pub windows: u64,
    /// Flagged at the threshold.
    pub detected: u64,
    /// `detected / windows`.
    pub rate: f64,
}

/// The evaluation of all three detectors.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evaluation {
    /// Windows scored.
    pub windows: usize,
    /// Of which abnormal.
    pub abnormal_windows: usize,
    /// LSTM-NAD.
    #[serde(flatten)]
    pub lstm_nad: DetectorResult,
    /// The 2018 reconstruction.
    pub stability_2018: DetectorResult,
    /// The isolation forest.
    pub isolation_forest: DetectorResult,
    /// Start of each scored window, ns (not in the JSON).
    #[serde(skip)]
    pub starts: Vec<u64>,
    /// Label of each scored window (not in the JSON).
    #[serde(skip)]
    pub labels: Vec<u8>,
    /// Attack kind of each scored window (not in the JSON).
    #[serde(skip)]
    pub attacks: Vec<Option<String>>,
}

impl Evaluation {
    /// Every scored window as CSV: `window_start,label,attack,lstm_nad,stability_2018,isolation_forest`.
    pub fn scores_csv(&self, window: Seconds) -> String {
        let mut s = String::from("window_start,label,attack,lstm_nad,stability_2018,isolation_forest\n");
        for i in 0..self.starts.len() {
            s += &format!(
                "{},{},{},{},{},{}\n",
                window.format_instant(self.starts[i]),
                self.labels[i],
                self.attacks[i].as_deref().unwrap_or(""),
                self.lstm_nad.scores[i],
                self.stability_2018.scores[i],
                self.isolation_forest.scores[i]
            );
        }
        s
    }

    /// The ROC curves of all three detectors, LSTM-NAD first, for [`crate::plot::roc_svg`].
    pub fn curves(&self) -> Vec<Curve<'_>> {
        [
            ("LSTM-NAD", &self.lstm_nad),
            ("stability_2018 (reconstructed)", &self.stability_2018),
            ("isolation_forest", &self.isolation_forest),
        ]
        .into_iter()
        .map(|(name, r)| Curve { name, points: &r.roc, auc: r.roc_auc })
        .collect()
    }
}

fn result(scores: &[f64], labels: &[u8], attacks: &[Option<&str>], threshold: f64) -> DetectorResult {
    let per_attack = metrics::per_attack(scores, attacks, threshold)
        .into_iter()
        .map(|(k, (w, d))| {
            (k, AttackResult { windows: w, detected: d, rate: if w == 0 { 0.0 } else { d as f64 / w as f64 } })
        })
        .collect();
    DetectorResult {
        roc_auc: metrics::roc_auc(scores, labels),
        pr_auc: metrics::pr_auc(scores, labels),
        tpr_at_1pct_fpr: metrics::tpr_at_fpr(scores, labels, 0.01),
        threshold,
        confusion: Confusion::at(scores, labels, threshold),
        per_attack,
        roc: metrics::roc_curve(scores, labels),
        scores: scores.to_vec(),
    }
}

/// Scores every window whose last step starts at or after `from_ns` with all three detectors.
pub fn evaluate(model: &Model, series: &Series, from_ns: u64, threads: usize) -> Result<Evaluation, DetectError> {
    let t = model.net.cfg.steps;
    let ends: Vec<usize> =
        (t.saturating_sub(1)..series.starts.len()).filter(|&i| series.starts[i] >= from_ns).collect();
    if ends.is_empty() {
        let w = series.window;
        return Err(DetectError::NothingToScore {
            from: w.format_instant(from_ns),
            last: series.starts.last().map_or_else(|| "-".to_owned(), |&s| w.format_instant(s)),
            steps: t,
        });
    }
    let x = model.meta.norm.apply_all(&series.features);
    let labels: Vec<u8> = ends.iter().map(|&i| series.labels[i]).collect();
    let attacks: Vec<Option<&str>> = ends.iter().map(|&i| series.attacks[i].as_deref()).collect();
    let w = Windows { series: &x, features: F, steps: t, ends: ends.clone(), labels: labels.clone() };
    let lstm: Vec<f64> = train::score(&model.net, &w, threads).iter().map(|&s| f64::from(s)).collect();
    let starts: Vec<u64> = ends.iter().map(|&i| series.starts[i]).collect();
    let feats: Vec<[f64; F]> = ends.iter().map(|&i| series.features[i]).collect();
    let stab = model.stability.clone().score_online(&starts, &feats);
    let ifs: Vec<f64> =
        ends.iter().map(|&i| model.iforest.score(&model.meta.norm.apply(&series.features[i]))).collect();
    Ok(Evaluation {
        windows: ends.len(),
        abnormal_windows: labels.iter().filter(|&&l| l != 0).count(),
        lstm_nad: result(&lstm, &labels, &attacks, model.meta.threshold),
        stability_2018: result(&stab, &labels, &attacks, model.stability.threshold),
        isolation_forest: result(&ifs, &labels, &attacks, model.iforest.threshold),
        attacks: attacks.iter().map(|a| a.map(str::to_owned)).collect(),
        starts,
        labels,
    })
}
