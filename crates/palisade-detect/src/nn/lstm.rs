//! One LSTM layer over a batch of sequences, forward with the caches backprop needs, and the
//! exact backward pass (backpropagation through time).
//!
//! Weights are one `(I+H) × 4H` matrix over `z_t = [x_t, h_{t-1}]`, gate blocks in the order
//! input, forget, cell, output; `c_t = f·c_{t-1} + i·g`, `h_t = o·tanh(c_t)`. Tensors are
//! time-major: `[T][B][·]`.

use super::kernels::{matmul_acc, sigmoid, tanh, transpose, vectorized, Kernel};

/// Sizes of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LstmDims {
    /// Inputs per step.
    pub input: usize,
    /// Hidden units.
    pub hidden: usize,
}

impl LstmDims {
    /// Number of parameters: weights then biases.
    pub fn params(self) -> usize {
        (self.input + self.hidden) * 4 * self.hidden + 4 * self.hidden
    }

    fn zw(self) -> usize {
        self.input + self.hidden
    }
}

/// What the forward pass keeps for the backward pass.
#[derive(Debug, Default)]
pub struct LstmCache {
    /// `[T][B][I+H]`.
    z: Vec<f32>,
    /// Activated gates `[T][B][4H]`.
    gates: Vec<f32>,
    /// Cell states `[T+1][B][H]`, `c[0] = 0`.
    c: Vec<f32>,
    /// `tanh(c_t)`, `[T][B][H]`.
    tc: Vec<f32>,
    /// Outputs `[T][B][H]`.
    pub h: Vec<f32>,
    // Backward scratch.
    da: Vec<f32>,
    dz: Vec<f32>,
    zt: Vec<f32>,
    wt: Vec<f32>,
    dc: Vec<f32>,
    dh: Vec<f32>,
}

/// Sizes a buffer to `n` without clearing it: every caller overwrites what it reads, or
/// zeroes it explicitly (zero-filling every buffer on every batch cost ~6% of inference).
fn fit(v: &mut Vec<f32>, n: usize) {
    if v.len() != n {
        v.clear();
        v.resize(n, 0.0);
    }
}

/// Forward over `t` steps of a batch of `b`; `x` is `[T][B][I]`. Outputs land in `cache.h`.
pub fn forward(d: LstmDims, p: &[f32], t: usize, b: usize, x: &[f32], cache: &mut LstmCache) {
    let (i_n, h_n, zw, g4) = (d.input, d.hidden, d.zw(), 4 * d.hidden);
    let (w, bias) = p.split_at(zw * g4);
    fit(&mut cache.z, t * b * zw);
    fit(&mut cache.gates, t * b * g4);
    fit(&mut cache.c, (t + 1) * b * h_n);
    fit(&mut cache.tc, t * b * h_n);
    fit(&mut cache.h, t * b * h_n);
    cache.c[..b * h_n].fill(0.0); // c_0
    for s in 0..t {
        let z = &mut cache.z[s * b * zw..(s + 1) * b * zw];
        for r in 0..b {
            z[r * zw..r * zw + i_n].copy_from_slice(&x[(s * b + r) * i_n..(s * b + r + 1) * i_n]);
            if s > 0 {
                let hp = &cache.h[((s - 1) * b + r) * h_n..((s - 1) * b + r + 1) * h_n];
                z[r * zw + i_n..(r + 1) * zw].copy_from_slice(hp);
            } else {
                z[r * zw + i_n..(r + 1) * zw].fill(0.0); // h_0
            }
        }
        let a = &mut cache.gates[s * b * g4..(s + 1) * b * g4];
        for row in a.chunks_exact_mut(g4) {
            row.copy_from_slice(bias);
        }
        matmul_acc(b, zw, g4, z, w, a);
        let (c_prev, c_rest) = cache.c[s * b * h_n..].split_at_mut(b * h_n);
        let c_new = &mut c_rest[..b * h_n];
        let tc = &mut cache.tc[s * b * h_n..(s + 1) * b * h_n];
        let h = &mut cache.h[s * b * h_n..(s + 1) * b * h_n];
        vectorized(CellForward { b, h_n, a, c_prev, c_new, tc, h });
    }
}

/// Backward: `dh` holds the loss gradient on every output `h_t` (`[T][B][H]`; it is used as
/// scratch). Adds the parameter gradient into `grad` and, when given, writes the input
/// gradient to `dx` (`[T][B][I]`).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    d: LstmDims,
    p: &[f32],
    grad: &mut [f32],
    t: usize,
    b: usize,
    cache: &mut LstmCache,
    dh: &[f32],
    mut dx: Option<&mut [f32]>,
) {
    let (i_n, h_n, zw, g4) = (d.input, d.hidden, d.zw(), 4 * d.hidden);
    let w = &p[..zw * g4];
    let (gw, gb) = grad.split_at_mut(zw * g4);
    fit(&mut cache.wt, zw * g4);
    transpose(zw, g4, w, &mut cache.wt);
    fit(&mut cache.da, t * b * g4);
    fit(&mut cache.dz, b * zw);
    fit(&mut cache.dc, b * h_n);
    fit(&mut cache.dh, b * h_n);
    for s in (0..t).rev() {
        // dh for this step: from above plus the recurrent part of the next step's dz.
        let dh_s = &mut cache.dh;
        for r in 0..b {
            let above = &dh[(s * b + r) * h_n..(s * b + r + 1) * h_n];
            let rec = &cache.dz[r * zw + i_n..(r + 1) * zw];
            let out = &mut dh_s[r * h_n..(r + 1) * h_n];
            for u in 0..h_n {
                out[u] = above[u] + if s + 1 < t { rec[u] } else { 0.0 };
            }
        }
        let gates = &cache.gates[s * b * g4..(s + 1) * b * g4];
        let c_prev = &cache.c[s * b * h_n..(s + 1) * b * h_n];
        let tc = &cache.tc[s * b * h_n..(s + 1) * b * h_n];
        let da = &mut cache.da[s * b * g4..(s + 1) * b * g4];
        let dc = &mut cache.dc;
        vectorized(CellBackward { b, h_n, last: s + 1 == t, gates, c_prev, tc, dh: dh_s, dc, da });
        cache.dz.fill(0.0);
        matmul_acc(b, g4, zw, da, &cache.wt, &mut cache.dz);
        if let Some(dx) = dx.as_deref_mut() {
            for r in 0..b {
                dx[(s * b + r) * i_n..(s * b + r + 1) * i_n].copy_from_slice(&cache.dz[r * zw..r * zw + i_n]);
            }
        }
    }
    // Weight and bias gradients over all steps at once: dW += Zᵀ · dA.
    let rows = t * b;
    fit(&mut cache.zt, rows * zw);
    transpose(rows, zw, &cache.z, &mut cache.zt);
    matmul_acc(zw, rows, g4, &cache.zt, &cache.da, gw);
    for row in cache.da.chunks_exact(g4) {
        for (g, &v) in gb.iter_mut().zip(row) {
            *g += v;
        }
    }
}

/// Gate activations and the new cell and hidden state of one step.
struct CellForward<'a> {
    b: usize,
    h_n: usize,
    a: &'a mut [f32],
    c_prev: &'a [f32],
    c_new: &'a mut [f32],
    tc: &'a mut [f32],
    h: &'a mut [f32],
}

impl Kernel for CellForward<'_> {
    #[inline(always)]
    fn run(self) {
        let (b, h_n) = (self.b, self.h_n);
        let g4 = 4 * h_n;
        for r in 0..b {
            let g = &mut self.a[r * g4..(r + 1) * g4];
            let (gi, rest) = g.split_at_mut(h_n);
            let (gf, rest) = rest.split_at_mut(h_n);
            let (gg, go) = rest.split_at_mut(h_n);
            let rr = r * h_n..(r + 1) * h_n;
            let (cp, cn) = (&self.c_prev[rr.clone()], &mut self.c_new[rr.clone()]);
            let (tcr, hr) = (&mut self.tc[rr.clone()], &mut self.h[rr]);
            cell_forward_row(gi, gf, gg, go, cp, cn, tcr, hr);
        }
    }
}

/// One row of [`CellForward`]. The slices are parameters so that LLVM knows they do not
/// alias (it keeps `noalias` through inlining), and are cut to one length so that no bounds
/// check remains: the loop vectorises.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell_forward_row(
    gi: &mut [f32],
    gf: &mut [f32],
    gg: &mut [f32],
    go: &mut [f32],
    cp: &[f32],
    cn: &mut [f32],
    tc: &mut [f32],
    h: &mut [f32],
) {
    let n = gi.len();
    let (gf, gg, go, cp, cn, tc, h) =
        (&mut gf[..n], &mut gg[..n], &mut go[..n], &cp[..n], &mut cn[..n], &mut tc[..n], &mut h[..n]);
    for u in 0..n {
        let (ig, fg, gv, og) = (sigmoid(gi[u]), sigmoid(gf[u]), tanh(gg[u]), sigmoid(go[u]));
        gi[u] = ig;
        gf[u] = fg;
        gg[u] = gv;
        go[u] = og;
        let c = fg * cp[u] + ig * gv;
        cn[u] = c;
        let th = tanh(c);
        tc[u] = th;
        h[u] = og * th;
    }
}

/// Gradients on the gate pre-activations of one step, and the cell-state carry.
struct CellBackward<'a> {
    b: usize,
    h_n: usize,
    /// The last step: nothing carried from a later one.
    last: bool,
    gates: &'a [f32],
    c_prev: &'a [f32],
    tc: &'a [f32],
    dh: &'a [f32],
    dc: &'a mut [f32],
    da: &'a mut [f32],
}

impl Kernel for CellBackward<'_> {
    #[inline(always)]
    fn run(self) {
        let (b, h_n) = (self.b, self.h_n);
        let g4 = 4 * h_n;
        for r in 0..b {
            let g = &self.gates[r * g4..(r + 1) * g4];
            let dar = &mut self.da[r * g4..(r + 1) * g4];
            let rr = r * h_n..(r + 1) * h_n;
            let (dhr, dcr) = (&self.dh[rr.clone()], &mut self.dc[rr.clone()]);
            let (cpr, tcr) = (&self.c_prev[rr.clone()], &self.tc[rr]);
            let (gi, rest) = g.split_at(h_n);
            let (gf, rest) = rest.split_at(h_n);
            let (gg, go) = rest.split_at(h_n);
            let (dai, rest) = dar.split_at_mut(h_n);
            let (daf, rest) = rest.split_at_mut(h_n);
            let (dag, dao) = rest.split_at_mut(h_n);
            cell_backward_row(gi, gf, gg, go, dai, daf, dag, dao, dhr, dcr, cpr, tcr, self.last);
        }
    }
}

/// One row of [`CellBackward`] (parameters for `noalias`, one length for no bounds checks).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell_backward_row(
    gi: &[f32],
    gf: &[f32],
    gg: &[f32],
    go: &[f32],
    dai: &mut [f32],
    daf: &mut [f32],
    dag: &mut [f32],
    dao: &mut [f32],
    dh: &[f32],
    dc: &mut [f32],
    cp: &[f32],
    tc: &[f32],
    last: bool,
) {
    let n = gi.len();
    let (gf, gg, go, dh, dc, cp, tc) = (&gf[..n], &gg[..n], &go[..n], &dh[..n], &mut dc[..n], &cp[..n], &tc[..n]);
    let (dai, daf, dag, dao) = (&mut dai[..n], &mut daf[..n], &mut dag[..n], &mut dao[..n]);
    let keep = if last { 0.0 } else { 1.0 };
    for u in 0..n {
        let (ig, fg, gv, og) = (gi[u], gf[u], gg[u], go[u]);
        let th = tc[u];
        let dcv = keep * dc[u] + dh[u] * og * (1.0 - th * th);
        dai[u] = dcv * gv * ig * (1.0 - ig);
        daf[u] = dcv * cp[u] * fg * (1.0 - fg);
        dag[u] = dcv * ig * (1.0 - gv * gv);
        dao[u] = dh[u] * th * og * (1.0 - og);
        dc[u] = dcv * fg;
    }
}
