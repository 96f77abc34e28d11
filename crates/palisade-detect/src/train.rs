//! Training LSTM-NAD: balanced, shuffled epochs (the rare abnormal class oversampled with
//! jittered copies), mini-batches split across threads, Adam, the best epoch by validation
//! ROC AUC kept; and batched, threaded scoring.

use std::time::Instant;

use crate::metrics::roc_auc;
use crate::nn::{Adam, Net, NetConfig, Work};
use crate::windows::Windows;
use palisade_rng::Rng;

/// How to train.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Passes over the (balanced) training set.
    pub epochs: usize,
    /// Windows per mini-batch.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Seed of initialisation, shuffling, oversampling, augmentation and dropout.
    pub seed: u64,
    /// Abnormal windows per normal window after oversampling (1.0: balanced).
    pub balance: f32,
    /// Standard deviation of the noise added to oversampled copies (normalised units).
    pub jitter: f32,
    /// Clip the gradient to this global norm.
    pub clip: f32,
    /// Threads a mini-batch is split over (the result does not depend on it: the batch is
    /// always cut into the same shards).
    pub threads: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig { epochs: 50, batch: 64, lr: 1e-3, seed: 1, balance: 1.0, jitter: 0.05, clip: 5.0, threads: 2 }
    }
}

/// Shards a mini-batch is cut into, whatever the thread count.
const SHARDS: usize = 2;

/// What one epoch did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Validation ROC AUC (None: the validation part lacks one of the classes).
    pub val_auc: Option<f64>,
    /// Mean validation loss.
    pub val_loss: f64,
    /// Seconds this epoch took.
    pub seconds: f64,
}

/// The outcome of training.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The network of the best epoch.
    pub net: Net,
    /// Every epoch.
    pub epochs: Vec<EpochReport>,
    /// The epoch kept (1-based).
    pub best_epoch: usize,
}

/// Training cannot start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrainError {
    /// No training window.
    #[error("there is no training window (need at least one window of T steps before the split)")]
    NoTraining,
    /// LSTM-NAD is supervised: it needs both classes.
    #[error("the training part has no {0} window; LSTM-NAD learns from both classes")]
    OneClass(&'static str),
    /// A useless configuration.
    #[error("bad training configuration: {0}")]
    Config(&'static str),
}

/// Trains a network of `net_cfg` on `train`, choosing the epoch by `val`. `progress` sees
/// each epoch as it ends.
pub fn train(
    net_cfg: NetConfig,
    cfg: &TrainConfig,
    train: &Windows<'_>,
    val: &Windows<'_>,
    mut progress: impl FnMut(&EpochReport),
) -> Result<Trained, TrainError> {
    if cfg.epochs == 0 || cfg.batch < SHARDS || cfg.threads == 0 {
        return Err(TrainError::Config("epochs and threads must be positive, batch at least 2"));
    }
    if !(cfg.lr > 0.0 && cfg.balance >= 0.0 && cfg.jitter >= 0.0 && cfg.clip > 0.0) {
        return Err(TrainError::Config("lr and clip must be positive, balance and jitter non-negative"));
    }
    if train.is_empty() {
        return Err(TrainError::NoTraining);
    }
    let normal: Vec<usize> = (0..train.len()).filter(|&i| train.labels[i] == 0).collect();
    let abnormal: Vec<usize> = (0..train.len()).filter(|&i| train.labels[i] != 0).collect();
    if normal.is_empty() {
        return Err(TrainError::OneClass("normal"));
    }
    if abnormal.is_empty() {
        return Err(TrainError::OneClass("abnormal"));
    }
    let mut net = Net::new(net_cfg, cfg.seed);
    let n_params = net.params.len();
    let mut adam = Adam::new(n_params, cfg.lr);
    let mut best: Option<(f64, f64, Vec<f32>, usize)> = None;
    let mut reports = Vec::with_capacity(cfg.epochs);
    let mut works: Vec<Work> = (0..SHARDS).map(|_| Work::default()).collect();
    let mut grads: Vec<Vec<f32>> = vec![vec![0.0; n_params]; SHARDS];
    let mut xbuf: Vec<Vec<f32>> = vec![Vec::new(); SHARDS];
    let target = ((normal.len() as f64 * f64::from(cfg.balance)).round() as usize).max(abnormal.len());
    for epoch in 1..=cfg.epochs {
        let started = Instant::now();
        let mut rng = Rng::derive(cfg.seed, &[1, epoch as u64]);
        // (window, is an oversampled copy)
        let mut order: Vec<(usize, bool)> = normal.iter().chain(&abnormal).map(|&i| (i, false)).collect();
        for _ in abnormal.len()..target {
            order.push((abnormal[rng.below(abnormal.len())], true));
        }
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0f64;
        for (bi, batch) in order.chunks(cfg.batch).enumerate() {
            let scale = 1.0 / batch.len() as f32;
            let per = batch.len().div_ceil(SHARDS);
            let shards: Vec<&[(usize, bool)]> = batch.chunks(per).collect();
            let run = |k: usize, shard: &[(usize, bool)], work: &mut Work, grad: &mut Vec<f32>, x: &mut Vec<f32>| {
                let mut rng = Rng::derive(cfg.seed, &[2, epoch as u64, bi as u64, k as u64]);
                let picks: Vec<usize> = shard.iter().map(|p| p.0).collect();
                let noisy: Vec<bool> = shard.iter().map(|p| p.1).collect();
                train.gather(&picks, Some((&noisy, cfg.jitter, &mut rng)), x);
                let y: Vec<f32> = picks.iter().map(|&i| f32::from(train.labels[i].min(1))).collect();
                grad.fill(0.0);
                net.loss_grad(shard.len(), x, &y, Some(&mut rng), scale, work, grad)
            };
            let losses: Vec<f32> = if cfg.threads > 1 && shards.len() > 1 {
                std::thread::scope(|s| {
                    let handles: Vec<_> = shards
                        .iter()
                        .zip(works.iter_mut().zip(grads.iter_mut().zip(xbuf.iter_mut())))
                        .enumerate()
                        .map(|(k, (shard, (w, (g, x))))| s.spawn(move || run(k, shard, w, g, x)))
                        .collect();
                    handles.into_iter().map(|h| h.join().expect("training thread panicked")).collect()
                })
            } else {
                shards
                    .iter()
                    .zip(works.iter_mut().zip(grads.iter_mut().zip(xbuf.iter_mut())))
                    .enumerate()
                    .map(|(k, (shard, (w, (g, x))))| run(k, shard, w, g, x))
                    .collect()
            };
            loss_sum += losses.iter().map(|&l| f64::from(l)).sum::<f64>();
            let (first, rest) = grads.split_at_mut(1);
            let total = &mut first[0];
            for other in rest.iter().take(shards.len() - 1) {
                for (a, b) in total.iter_mut().zip(other) {
                    *a += b;
                }
            }
            let norm = total.iter().map(|g| g * g).sum::<f32>().sqrt();
            if norm > cfg.clip {
                let k = cfg.clip / norm;
                total.iter_mut().for_each(|g| *g *= k);
            }
            adam.step(&mut net.params, total);
        }
        let val_scores = score(&net, val, cfg.threads);
        let val_auc = roc_auc(&val_scores.iter().map(|&s| f64::from(s)).collect::<Vec<_>>(), &val.labels);
        let val_loss = mean_bce(&val_scores, &val.labels);
        let report = EpochReport {
            epoch,
            loss: loss_sum / order.len() as f64,
            val_auc,
            val_loss,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress(&report);
        // Higher validation AUC wins; ties (and a validation part without both classes)
        // go to the lower validation loss.
        let key = (val_auc.unwrap_or(0.0), -val_loss);
        if best.as_ref().is_none_or(|b| key.0 > b.0 || (key.0 == b.0 && key.1 > b.1)) {
            best = Some((key.0, key.1, net.params.clone(), epoch));
        }
        reports.push(report);
    }
    let (_, _, params, best_epoch) = best.expect("at least one epoch ran");
    net.params = params;
    Ok(Trained { net, epochs: reports, best_epoch })
}

fn mean_bce(scores: &[f32], labels: &[u8]) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    let eps = 1e-7f64;
    let sum: f64 = scores
        .iter()
        .zip(labels)
        .map(|(&s, &y)| {
            let s = f64::from(s).clamp(eps, 1.0 - eps);
            if y != 0 {
                -s.ln()
            } else {
                -(1.0 - s).ln()
            }
        })
        .sum();
    sum / scores.len() as f64
}

/// Windows per forward pass when scoring.
const SCORE_BATCH: usize = 256;

/// Scores (probability of abnormal) of every window, in order, over `threads` threads.
pub fn score(net: &Net, w: &Windows<'_>, threads: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; w.len()];
    if w.is_empty() {
        return out;
    }
    let per = w.len().div_ceil(threads.max(1)).max(SCORE_BATCH);
    let run = |start: usize, out: &mut [f32]| {
        let mut work = Work::default();
        let mut x = Vec::new();
        let idx: Vec<usize> = (start..start + out.len()).collect();
        for (chunk, o) in idx.chunks(SCORE_BATCH).zip(out.chunks_mut(SCORE_BATCH)) {
            w.gather(chunk, None, &mut x);
            net.scores(chunk.len(), &x, &mut work, o);
        }
    };
    std::thread::scope(|s| {
        for (k, part) in out.chunks_mut(per).enumerate() {
            let run = &run;
            s.spawn(move || run(k * per, part));
        }
    });
    out
}
