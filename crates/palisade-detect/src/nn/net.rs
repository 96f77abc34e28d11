//! LSTM-NAD's network (paper §3.2.2): input `<B, T, F>` -> LSTM 64 (every step) -> LSTM 32
//! (last step) -> dense 64 (ReLU, dropout) -> dense 32 (ReLU, dropout) -> dense 1 (the logit;
//! sigmoid gives the score). All parameters live in one flat vector in [`Layout`] order, so
//! the optimiser, gradient sums across threads and the gradient check see one slice.

use std::ops::Range;

use super::kernels::{matmul_acc, sigmoid, transpose};
use super::lstm::{self, LstmCache, LstmDims};
use palisade_rng::Rng;

/// Sizes and dropout of the network.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NetConfig {
    /// Features per step (11).
    pub features: usize,
    /// Steps per input window `T`.
    pub steps: usize,
    /// Units of the first LSTM.
    pub lstm1: usize,
    /// Units of the second LSTM.
    pub lstm2: usize,
    /// Units of the first dense layer.
    pub dense1: usize,
    /// Units of the second dense layer.
    pub dense2: usize,
    /// Dropout probability after each dense layer while training.
    pub dropout: f32,
}

impl NetConfig {
    /// The paper's sizes for `steps` steps of 11 features.
    pub fn paper(steps: usize) -> Self {
        NetConfig { features: 11, steps, lstm1: 64, lstm2: 32, dense1: 64, dense2: 32, dropout: 0.2 }
    }

    fn l1(&self) -> LstmDims {
        LstmDims { input: self.features, hidden: self.lstm1 }
    }

    fn l2(&self) -> LstmDims {
        LstmDims { input: self.lstm1, hidden: self.lstm2 }
    }

    /// Where each tensor sits in the flat parameter vector.
    pub fn layout(&self) -> Layout {
        let mut at = 0;
        let mut take = |n: usize| {
            let r = at..at + n;
            at += n;
            r
        };
        let (l1, l2) = (self.l1(), self.l2());
        let l1_w = take((l1.input + l1.hidden) * 4 * l1.hidden);
        let l1_b = take(4 * l1.hidden);
        let l2_w = take((l2.input + l2.hidden) * 4 * l2.hidden);
        let l2_b = take(4 * l2.hidden);
        let d1_w = take(self.lstm2 * self.dense1);
        let d1_b = take(self.dense1);
        let d2_w = take(self.dense1 * self.dense2);
        let d2_b = take(self.dense2);
        let out_w = take(self.dense2);
        let out_b = take(1);
        Layout { l1_w, l1_b, l2_w, l2_b, d1_w, d1_b, d2_w, d2_b, out_w, out_b, total: at }
    }
}

/// Ranges of the tensors in the flat parameter vector.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Layout {
    pub l1_w: Range<usize>,
    pub l1_b: Range<usize>,
    pub l2_w: Range<usize>,
    pub l2_b: Range<usize>,
    pub d1_w: Range<usize>,
    pub d1_b: Range<usize>,
    pub d2_w: Range<usize>,
    pub d2_b: Range<usize>,
    pub out_w: Range<usize>,
    pub out_b: Range<usize>,
    /// Number of parameters.
    pub total: usize,
}

impl Layout {
    /// `(name, range, shape)` of every tensor, in order (names as saved in the model file).
    pub fn tensors(&self, cfg: &NetConfig) -> Vec<(&'static str, Range<usize>, Vec<usize>)> {
        let (f, h1, h2, d1, d2) = (cfg.features, cfg.lstm1, cfg.lstm2, cfg.dense1, cfg.dense2);
        vec![
            ("lstm1.weight", self.l1_w.clone(), vec![f + h1, 4 * h1]),
            ("lstm1.bias", self.l1_b.clone(), vec![4 * h1]),
            ("lstm2.weight", self.l2_w.clone(), vec![h1 + h2, 4 * h2]),
            ("lstm2.bias", self.l2_b.clone(), vec![4 * h2]),
            ("dense1.weight", self.d1_w.clone(), vec![h2, d1]),
            ("dense1.bias", self.d1_b.clone(), vec![d1]),
            ("dense2.weight", self.d2_w.clone(), vec![d1, d2]),
            ("dense2.bias", self.d2_b.clone(), vec![d2]),
            ("out.weight", self.out_w.clone(), vec![d2, 1]),
            ("out.bias", self.out_b.clone(), vec![1]),
        ]
    }
}

/// The network: its configuration and parameters.
#[derive(Debug, Clone)]
pub struct Net {
    /// Sizes.
    pub cfg: NetConfig,
    /// Parameters in [`Layout`] order.
    pub params: Vec<f32>,
}

/// Per-thread buffers of one forward/backward pass (reused across batches).
#[derive(Debug, Default)]
pub struct Work {
    l1: LstmCache,
    l2: LstmCache,
    h2: Vec<f32>,
    a1: Vec<f32>,
    m1: Vec<f32>,
    a2: Vec<f32>,
    m2: Vec<f32>,
    logit: Vec<f32>,
    g_a2: Vec<f32>,
    g_a1: Vec<f32>,
    g_h2: Vec<f32>,
    dh2: Vec<f32>,
    dh1: Vec<f32>,
    tmp: Vec<f32>,
    wt: Vec<f32>,
}

/// Sizes a buffer to `n`, all zeros.
fn fit(v: &mut Vec<f32>, n: usize) {
    v.clear();
    v.resize(n, 0.0);
}

/// Numerically stable binary cross-entropy of a logit `z` against `y` in {0, 1}:
/// `max(z, 0) − z·y + ln(1 + e^{−|z|})`.
pub fn bce_with_logits(z: f32, y: f32) -> f32 {
    z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()
}

impl Net {
    /// A freshly initialised network: LSTM weights uniform in ±1/√H with forget-gate bias 1,
    /// dense layers He-uniform, the output layer Glorot-uniform, other biases 0.
    pub fn new(cfg: NetConfig, seed: u64) -> Self {
        let lay = cfg.layout();
        let mut p = vec![0.0f32; lay.total];
        let mut rng = Rng::derive(seed, &[0x1417]);
        let mut fill = |r: Range<usize>, bound: f64, p: &mut [f32]| {
            for v in &mut p[r] {
                *v = ((rng.unit() * 2.0 - 1.0) * bound) as f32;
            }
        };
        fill(lay.l1_w.clone(), 1.0 / (cfg.lstm1 as f64).sqrt(), &mut p);
        fill(lay.l2_w.clone(), 1.0 / (cfg.lstm2 as f64).sqrt(), &mut p);
        fill(lay.d1_w.clone(), (6.0 / cfg.lstm2 as f64).sqrt(), &mut p);
        fill(lay.d2_w.clone(), (6.0 / cfg.dense1 as f64).sqrt(), &mut p);
        fill(lay.out_w.clone(), (6.0 / (cfg.dense2 as f64 + 1.0)).sqrt(), &mut p);
        p[lay.l1_b.start + cfg.lstm1..lay.l1_b.start + 2 * cfg.lstm1].fill(1.0);
        p[lay.l2_b.start + cfg.lstm2..lay.l2_b.start + 2 * cfg.lstm2].fill(1.0);
        Net { cfg, params: p }
    }

    /// Logits of `b` windows `x` (`[T][B][F]`, time-major) into `out`, without dropout.
    pub fn logits(&self, b: usize, x: &[f32], work: &mut Work, out: &mut [f32]) {
        self.forward(b, x, None, work);
        out[..b].copy_from_slice(&work.logit[..b]);
    }

    /// Scores (sigmoid of the logits) of `b` windows.
    pub fn scores(&self, b: usize, x: &[f32], work: &mut Work, out: &mut [f32]) {
        self.logits(b, x, work, out);
        for v in &mut out[..b] {
            *v = sigmoid(*v);
        }
    }

    fn forward(&self, b: usize, x: &[f32], mut dropout: Option<&mut Rng>, w: &mut Work) {
        let (c, lay, t) = (&self.cfg, self.cfg.layout(), self.cfg.steps);
        let p = &self.params;
        lstm::forward(c.l1(), &p[lay.l1_w.start..lay.l1_b.end], t, b, x, &mut w.l1);
        lstm::forward(c.l2(), &p[lay.l2_w.start..lay.l2_b.end], t, b, &w.l1.h, &mut w.l2);
        let last = &w.l2.h[(t - 1) * b * c.lstm2..t * b * c.lstm2];
        fit(&mut w.h2, b * c.lstm2);
        w.h2.copy_from_slice(last);
        dense_relu(&p[lay.d1_w.clone()], &p[lay.d1_b.clone()], b, c.lstm2, c.dense1, &w.h2, &mut w.a1);
        mask(c.dropout, dropout.as_deref_mut(), &mut w.a1, &mut w.m1);
        dense_relu(&p[lay.d2_w.clone()], &p[lay.d2_b.clone()], b, c.dense1, c.dense2, &w.a1, &mut w.a2);
        mask(c.dropout, dropout, &mut w.a2, &mut w.m2);
        fit(&mut w.logit, b);
        w.logit.fill(p[lay.out_b.start]);
        matmul_acc(b, c.dense2, 1, &w.a2, &p[lay.out_w.clone()], &mut w.logit);
    }

    /// One forward and backward pass over `b` windows with labels `y`: adds `scale ×` the
    /// gradient of the summed loss to `grad` and returns the summed loss. Dropout masks come
    /// from `dropout` (none: no dropout).
    #[allow(clippy::too_many_arguments)]
    pub fn loss_grad(
        &self,
        b: usize,
        x: &[f32],
        y: &[f32],
        dropout: Option<&mut Rng>,
        scale: f32,
        w: &mut Work,
        grad: &mut [f32],
    ) -> f32 {
        let (c, lay, t) = (&self.cfg, self.cfg.layout(), self.cfg.steps);
        let p = &self.params;
        let use_dropout = dropout.is_some();
        self.forward(b, x, dropout, w);
        let mut loss = 0.0;
        fit(&mut w.tmp, b);
        for ((g, &z), &yv) in w.tmp.iter_mut().zip(&w.logit).zip(&y[..b]) {
            loss += bce_with_logits(z, yv);
            *g = (sigmoid(z) - yv) * scale;
        }
        grad[lay.out_b.start] += w.tmp.iter().sum::<f32>();
        // Output layer.
        dense_backward(
            &p[lay.out_w.clone()],
            b,
            c.dense2,
            1,
            &w.a2,
            &w.tmp,
            &mut grad[lay.out_w.clone()],
            &mut w.g_a2,
            &mut w.wt,
        );
        relu_dropout_backward(&w.a2, use_dropout.then_some(&w.m2[..]), &mut w.g_a2);
        col_sums(&w.g_a2, c.dense2, &mut grad[lay.d2_b.clone()]);
        dense_backward(
            &p[lay.d2_w.clone()],
            b,
            c.dense1,
            c.dense2,
            &w.a1,
            &w.g_a2,
            &mut grad[lay.d2_w.clone()],
            &mut w.g_a1,
            &mut w.wt,
        );
        relu_dropout_backward(&w.a1, use_dropout.then_some(&w.m1[..]), &mut w.g_a1);
        col_sums(&w.g_a1, c.dense1, &mut grad[lay.d1_b.clone()]);
        dense_backward(
            &p[lay.d1_w.clone()],
            b,
            c.lstm2,
            c.dense1,
            &w.h2,
            &w.g_a1,
            &mut grad[lay.d1_w.clone()],
            &mut w.g_h2,
            &mut w.wt,
        );
        // LSTM 2 gets a gradient on its last step only.
        fit(&mut w.dh2, t * b * c.lstm2);
        w.dh2[(t - 1) * b * c.lstm2..].copy_from_slice(&w.g_h2);
        fit(&mut w.dh1, t * b * c.lstm1);
        lstm::backward(
            c.l2(),
            &p[lay.l2_w.start..lay.l2_b.end],
            &mut grad[lay.l2_w.start..lay.l2_b.end],
            t,
            b,
            &mut w.l2,
            &w.dh2,
            Some(&mut w.dh1),
        );
        lstm::backward(
            c.l1(),
            &p[lay.l1_w.start..lay.l1_b.end],
            &mut grad[lay.l1_w.start..lay.l1_b.end],
            t,
            b,
            &mut w.l1,
            &w.dh1,
            None,
        );
        loss
    }
}

fn dense_relu(wm: &[f32], bias: &[f32], b: usize, n_in: usize, n_out: usize, x: &[f32], out: &mut Vec<f32>) {
    fit(out, b * n_out);
    for row in out.chunks_exact_mut(n_out) {
        row.copy_from_slice(bias);
    }
    matmul_acc(b, n_in, n_out, x, wm, out);
    for v in out.iter_mut() {
        *v = v.max(0.0);
    }
}

/// Inverted dropout: zero with probability `p`, scale survivors by `1/(1−p)`; the mask
/// (0 or the scale) is kept for the backward pass.
fn mask(p: f32, rng: Option<&mut Rng>, a: &mut [f32], m: &mut Vec<f32>) {
    let Some(rng) = rng else { return };
    fit(m, a.len());
    let keep = 1.0 / (1.0 - p);
    for (v, mv) in a.iter_mut().zip(m.iter_mut()) {
        *mv = if rng.unit() < f64::from(p) { 0.0 } else { keep };
        *v *= *mv;
    }
}

/// `grad_w += xᵀ·dy`, `dx = dy·Wᵀ`.
#[allow(clippy::too_many_arguments)]
fn dense_backward(
    wm: &[f32],
    b: usize,
    n_in: usize,
    n_out: usize,
    x: &[f32],
    dy: &[f32],
    grad_w: &mut [f32],
    dx: &mut Vec<f32>,
    scratch: &mut Vec<f32>,
) {
    fit(scratch, b * n_in);
    transpose(b, n_in, x, scratch);
    matmul_acc(n_in, b, n_out, scratch, dy, grad_w);
    fit(scratch, n_in * n_out);
    transpose(n_in, n_out, wm, scratch);
    fit(dx, b * n_in);
    matmul_acc(b, n_out, n_in, dy, scratch, dx);
}

/// Through dropout (the mask) and ReLU (`a` is the post-activation output, so `a > 0` is
/// the active set).
fn relu_dropout_backward(a: &[f32], m: Option<&[f32]>, g: &mut [f32]) {
    for (i, gv) in g.iter_mut().enumerate() {
        if a[i] <= 0.0 {
            *gv = 0.0;
        } else if let Some(m) = m {
            *gv *= m[i];
        }
    }
}

fn col_sums(g: &[f32], n: usize, out: &mut [f32]) {
    for row in g.chunks_exact(n) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}
