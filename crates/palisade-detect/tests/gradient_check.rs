//! The hand-written backward pass against central finite differences of the loss, for every
//! parameter of a small network (both LSTMs, the dense layers, with and without dropout).

use palisade_detect::nn::{Net, NetConfig, Work};
use palisade_rng::Rng;

fn small() -> NetConfig {
    NetConfig { features: 3, steps: 4, lstm1: 5, lstm2: 4, dense1: 6, dense2: 3, dropout: 0.3 }
}

fn batch(cfg: &NetConfig, b: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let x = (0..cfg.steps * b * cfg.features).map(|_| rng.normal() as f32).collect();
    let y = (0..b).map(|i| (i % 2) as f32).collect();
    (x, y)
}

fn loss(net: &Net, b: usize, x: &[f32], y: &[f32], dropout: bool) -> f64 {
    let mut grad = vec![0.0; net.params.len()];
    let mut rng = Rng::new(99);
    let mut w = Work::default();
    f64::from(net.loss_grad(b, x, y, dropout.then_some(&mut rng), 1.0, &mut w, &mut grad))
}

fn check(dropout: bool) {
    let cfg = small();
    // Larger weights than the default init, so gates leave their linear region.
    let mut net = Net::new(cfg, 5);
    for v in &mut net.params {
        *v *= 2.0;
    }
    let b = 5;
    let (x, y) = batch(&cfg, b, 11);
    let mut grad = vec![0.0; net.params.len()];
    let mut rng = Rng::new(99);
    net.loss_grad(b, &x, &y, dropout.then_some(&mut rng), 1.0, &mut Work::default(), &mut grad);
    let eps = 1e-2f32;
    let mut worst = 0.0f64;
    let mut kinks = 0;
    let central = |net: &mut Net, i: usize, e: f32| {
        let orig = net.params[i];
        net.params[i] = orig + e;
        let up = loss(net, b, &x, &y, dropout);
        net.params[i] = orig - e;
        let down = loss(net, b, &x, &y, dropout);
        net.params[i] = orig;
        (up - down) / (2.0 * f64::from(e))
    };
    for (i, &g) in grad.iter().enumerate() {
        // A ReLU that switches within ±e bends the difference quotient, so a parameter passes
        // when one of three step sizes agrees; a wrong gradient disagrees at all of them.
        // f32 forward passes leave about 3e-6/e of noise in a quotient; allow that plus 2%.
        let mut best = f64::INFINITY;
        for e in [eps, eps / 2.0, eps / 5.0] {
            let num = central(&mut net, i, e);
            let allowed = 2e-2 * num.abs().max(f64::from(g).abs()) + 3e-6 / f64::from(e);
            best = best.min((num - f64::from(g)).abs() / allowed);
            if best < 1.0 {
                break;
            }
            kinks += 1;
        }
        worst = worst.max(best);
        assert!(best < 1.0, "parameter {i}: analytic {g} disagrees with finite differences");
    }
    assert!(kinks * 10 < grad.len(), "{kinks} retries for {} parameters", grad.len());
    // Along a random direction per tensor the signal is larger and the check tighter.
    let lay = cfg.layout();
    let mut dir_rng = Rng::new(17);
    for (name, range, _) in lay.tensors(&cfg) {
        let d: Vec<f32> = range.clone().map(|_| dir_rng.normal() as f32).collect();
        let analytic: f64 = range.clone().zip(&d).map(|(i, &dv)| f64::from(grad[i] * dv)).sum();
        let orig = net.params.clone();
        let mut ok = false;
        let mut last = 0.0;
        for e in [eps, eps / 5.0, eps / 20.0] {
            let at = |sign: f32, net: &mut Net| {
                for (i, &dv) in range.clone().zip(&d) {
                    net.params[i] = orig[i] + sign * e * dv;
                }
                loss(net, b, &x, &y, dropout)
            };
            let (up, down) = (at(1.0, &mut net), at(-1.0, &mut net));
            last = (up - down) / (2.0 * f64::from(e));
            if (last - analytic).abs() < 1e-2 * last.abs().max(analytic.abs()) + 3e-6 / f64::from(e) {
                ok = true;
                break;
            }
        }
        net.params = orig;
        assert!(ok, "{name}: analytic directional derivative {analytic}, numeric {last}");
    }
    eprintln!("worst error / allowed {worst:.3}; {kinks} retries with a smaller step");
}

#[test]
fn backward_matches_finite_differences() {
    check(false);
}

#[test]
fn backward_matches_finite_differences_with_dropout() {
    check(true);
}

#[test]
fn gradient_is_independent_of_how_the_batch_is_split() {
    // Two shards of a batch add up to the whole batch's gradient (what the trainer relies on).
    let cfg = small();
    let net = Net::new(cfg, 2);
    let b = 6;
    let (x, y) = batch(&cfg, b, 3);
    let mut whole = vec![0.0; net.params.len()];
    let l_whole = net.loss_grad(b, &x, &y, None, 1.0, &mut Work::default(), &mut whole);
    // Split time-major x into rows 0..2 and 2..6.
    let f = cfg.features;
    let take = |r: std::ops::Range<usize>| -> Vec<f32> {
        (0..cfg.steps).flat_map(|s| x[(s * b + r.start) * f..(s * b + r.end) * f].to_vec()).collect()
    };
    let mut parts = vec![0.0; net.params.len()];
    let l1 = net.loss_grad(2, &take(0..2), &y[0..2], None, 1.0, &mut Work::default(), &mut parts);
    let l2 = net.loss_grad(4, &take(2..6), &y[2..6], None, 1.0, &mut Work::default(), &mut parts);
    assert!((l_whole - l1 - l2).abs() < 1e-4);
    for (a, b) in whole.iter().zip(&parts) {
        assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
    }
}
