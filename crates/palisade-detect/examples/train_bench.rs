//! Training and inference speed of LSTM-NAD at paper scale (21,600 training windows of
//! 1-minute rows: 15 days), on seeded synthetic rows, with the isolation-forest baseline and a
//! batch-of-one LSTM (what a straightforward per-window implementation does) side by side.
//!
//! Run: cargo run --release -p palisade-detect --example train_bench [-- --epochs N --steps T]

use std::time::Instant;

use palisade_detect::baseline::IsolationForest;
use palisade_detect::nn::{Net, NetConfig, Work};
use palisade_detect::train::{score, train, TrainConfig};
use palisade_detect::windows::Windows;
use palisade_rng::Rng;

const F: usize = 11;

/// A daily cycle with noise; 5% of rows abnormal (a burst on a few features).
fn series(rows: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let mut x = Vec::with_capacity(rows * F);
    let mut y = Vec::with_capacity(rows);
    for r in 0..rows {
        let day = (r % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
        let abnormal = rng.unit() < 0.05;
        for f in 0..F {
            let mut v = (day + f as f64).sin() + 0.3 * rng.normal();
            if abnormal && f % 3 == 0 {
                v += 2.5;
            }
            x.push(v as f32);
        }
        y.push(u8::from(abnormal));
    }
    (x, y)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let epochs = arg("--epochs", 50);
    let steps = arg("--steps", 10);
    let threads = arg("--threads", 2);
    let n_train = 21_600;
    let n_val = 2_400;
    let (xs, ys) = series(n_train + n_val + steps, 7);
    let mk = |range: std::ops::Range<usize>| Windows {
        series: &xs,
        features: F,
        steps,
        ends: range.clone().collect(),
        labels: range.map(|i| ys[i]).collect(),
    };
    let tr = mk(steps - 1..steps - 1 + n_train);
    let va = mk(steps - 1 + n_train..steps - 1 + n_train + n_val);
    let cfg = TrainConfig { epochs, threads, ..TrainConfig::default() };
    let t0 = Instant::now();
    let trained = train(NetConfig::paper(steps), &cfg, &tr, &va, |e| {
        eprintln!(
            "epoch {:>3}/{epochs}  loss {:.4}  val AUC {:.4}  {:.1}s",
            e.epoch,
            e.loss,
            e.val_auc.unwrap_or(f64::NAN),
            e.seconds
        );
    })
    .expect("training");
    let train_s = t0.elapsed().as_secs_f64();
    println!(
        "LSTM-NAD training: {epochs} epochs x {n_train} windows (T={steps}, balanced to {} per epoch), {threads} threads: {train_s:.1} s",
        tr.labels.iter().filter(|&&l| l == 0).count() * 2
    );
    // Inference over every window, batched and threaded.
    let all = mk(steps - 1..steps - 1 + n_train + n_val);
    let t1 = Instant::now();
    let mut reps = 0;
    while t1.elapsed().as_secs_f64() < 3.0 {
        std::hint::black_box(score(&trained.net, &all, threads));
        reps += 1;
    }
    let rate = (reps * all.len()) as f64 / t1.elapsed().as_secs_f64();
    println!("LSTM-NAD inference: {rate:.0} windows/s (batches of 256, {threads} threads)");
    // Batch of one, one thread.
    let net: &Net = &trained.net;
    let mut work = Work::default();
    let mut x = Vec::new();
    let mut out = [0.0f32];
    let t2 = Instant::now();
    let n1 = 5_000.min(all.len());
    for i in 0..n1 {
        all.gather(&[i], None, &mut x);
        net.scores(1, &x, &mut work, &mut out);
    }
    let rate1 = n1 as f64 / t2.elapsed().as_secs_f64();
    println!("LSTM-NAD inference, one window at a time, 1 thread: {rate1:.0} windows/s");
    // The isolation-forest baseline on the same rows (last row of each window).
    let rows: Vec<[f32; F]> = (steps - 1..steps - 1 + n_train)
        .filter(|&i| ys[i] == 0)
        .map(|i| std::array::from_fn(|f| xs[i * F + f]))
        .collect();
    let t3 = Instant::now();
    let forest = IsolationForest::fit(&rows, 100, 256, 1);
    let fit_s = t3.elapsed().as_secs_f64();
    let t4 = Instant::now();
    let mut sink = 0.0;
    for i in all.ends.iter() {
        let r: [f32; F] = std::array::from_fn(|f| xs[i * F + f]);
        sink += forest.score(&r);
    }
    std::hint::black_box(sink);
    let rate_if = all.len() as f64 / t4.elapsed().as_secs_f64();
    println!("isolation forest (100 trees): fit {:.1} ms, scoring {rate_if:.0} windows/s (1 thread)", fit_s * 1e3);
    // A straightforward trainer: one window per forward/backward pass, one thread (same
    // kernels), timed on 2,000 windows and extrapolated to the run above.
    let per_epoch = tr.labels.iter().filter(|&&l| l == 0).count() * 2;
    let mut grad = vec![0.0f32; net.params.len()];
    let t5 = Instant::now();
    let n5 = 2_000;
    for i in 0..n5 {
        tr.gather(&[i], None, &mut x);
        let y = [f32::from(tr.labels[i])];
        grad.fill(0.0);
        std::hint::black_box(net.loss_grad(1, &x, &y, None, 1.0, &mut work, &mut grad));
    }
    let per_window = t5.elapsed().as_secs_f64() / n5 as f64;
    println!(
        "straightforward training (batch of one, 1 thread): {:.0} windows/s, so {epochs} epochs x {per_epoch} windows would take {:.0} s",
        1.0 / per_window,
        per_window * (per_epoch * epochs) as f64
    );
}
