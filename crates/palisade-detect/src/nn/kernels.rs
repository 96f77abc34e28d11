//! The numeric kernels everything else is built from: a row-major matrix product that adds
//! into its output, a transpose, and vectorisable sigmoid/tanh. Each public kernel runs inside
//! `pulp::Arch::dispatch`, so the plain loops below are compiled a second time with AVX2+FMA
//! and that copy is chosen at run time where the CPU has it (no `unsafe` here; the dispatch's
//! lives in `pulp`).

use std::sync::OnceLock;

fn arch() -> pulp::Arch {
    static ARCH: OnceLock<pulp::Arch> = OnceLock::new();
    *ARCH.get_or_init(pulp::Arch::new)
}

/// `out[m×n] += a[m×k] · b[k×n]`, all row-major.
pub fn matmul_acc(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && out.len() >= m * n, "matmul_acc: slices too short");
    arch().dispatch(MatMul { m, k, n, a: &a[..m * k], b: &b[..k * n], out: &mut out[..m * n] });
}

// Kernels are `WithSimd` structs whose `with_simd` is `#[inline(always)]` down to the loops:
// a closure handed to `dispatch` may be left out of line and so compiled without the
// features (seen in profiles as calls to libm's `floorf`).
struct MatMul<'a> {
    m: usize,
    k: usize,
    n: usize,
    a: &'a [f32],
    b: &'a [f32],
    out: &'a mut [f32],
}

impl pulp::WithSimd for MatMul<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        matmul_inner(self.m, self.k, self.n, self.a, self.b, self.out);
    }
}

#[inline(always)]
fn matmul_inner(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
    let mut i = 0;
    while i + 6 <= m {
        rows::<6>(i, k, n, a, b, out);
        i += 6;
    }
    while i + 2 <= m {
        rows::<2>(i, k, n, a, b, out);
        i += 2;
    }
    if i < m {
        rows::<1>(i, k, n, a, b, out);
    }
}

/// Rows `i..i+R` of the output: `R × 16` (then `R × 8`) blocks, the rest column by column.
#[inline(always)]
fn rows<const R: usize>(i: usize, k: usize, n: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
    let ar: [&[f32]; R] = std::array::from_fn(|r| &a[(i + r) * k..(i + r + 1) * k]);
    let o = &mut out[i * n..(i + R) * n];
    let mut j = 0;
    while j + 16 <= n {
        block::<R, 16>(k, n, j, ar, b, o);
        j += 16;
    }
    while j + 8 <= n {
        block::<R, 8>(k, n, j, ar, b, o);
        j += 8;
    }
    for jj in j..n {
        for (r, row) in ar.iter().enumerate() {
            o[r * n + jj] += (0..k).map(|p| row[p] * b[p * n + jj]).sum::<f32>();
        }
    }
}

/// `R` output rows × `W` columns kept in registers while `p` runs over `k`: each `b` row
/// loaded once feeds `R` rows of FMAs (6 × 16 is 12 AVX2 accumulators).
#[inline(always)]
fn block<const R: usize, const W: usize>(k: usize, n: usize, j: usize, a: [&[f32]; R], b: &[f32], o: &mut [f32]) {
    let mut acc = [[0.0f32; W]; R];
    for (r, acc) in acc.iter_mut().enumerate() {
        acc.copy_from_slice(&o[r * n + j..r * n + j + W]);
    }
    let a: [&[f32]; R] = std::array::from_fn(|r| &a[r][..k]);
    for p in 0..k {
        let br: &[f32; W] = b[p * n + j..p * n + j + W].try_into().expect("block width");
        for r in 0..R {
            let x = a[r][p];
            for l in 0..W {
                // FMA where the dispatched instruction set has it (AVX2+FMA here).
                acc[r][l] = x.mul_add(br[l], acc[r][l]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        o[r * n + j..r * n + j + W].copy_from_slice(acc);
    }
}

/// `dst[c×r] = src[r×c]ᵀ`.
pub fn transpose(r: usize, c: usize, src: &[f32], dst: &mut [f32]) {
    assert!(src.len() >= r * c && dst.len() >= r * c, "transpose: slices too short");
    for i in 0..r {
        for j in 0..c {
            dst[j * r + i] = src[i * c + j];
        }
    }
}

/// `e^x` for `f32`, branch-free so loops over it vectorise (Cephes' `expf` polynomial; relative
/// error about 2e-7 over the clamped range `[-87, 88]`). Rounding and `2^n` use the
/// `1.5·2²³` trick rather than `floor` and a float-to-int cast, which do not vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC; // x·log2(e) rounded to the nearest integer
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r2
        * r
        + 0.5 * r2
        + r
        + 1.0;
    // The low bits of t's representation hold n (two's complement, offset by MAGIC's bits).
    let pow2n = f32::from_bits(t.to_bits().wrapping_sub(0x4b40_0000).wrapping_add(127) << 23);
    p * pow2n
}

/// The logistic function.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh`, as `2σ(2x) − 1`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + exp(-2.0 * x)) - 1.0
}

/// A loop body to compile for the best instruction set available: implement [`Kernel::run`]
/// with `#[inline(always)]` and call [`vectorized`].
pub trait Kernel {
    /// The work.
    fn run(self);
}

struct Dispatch<K>(K);

impl<K: Kernel> pulp::WithSimd for Dispatch<K> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        self.0.run();
    }
}

/// Runs `k` compiled for the best instruction set available.
pub fn vectorized<K: Kernel>(k: K) {
    arch().dispatch(Dispatch(k));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn matmul_matches_the_definition_for_odd_shapes() {
        let mut rng = palisade_rng::Rng::new(3);
        for &(m, k, n) in &[(1, 1, 1), (3, 5, 7), (2, 75, 256), (5, 256, 75), (33, 64, 41), (4, 640, 9)] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
            let mut out = vec![1.0; m * n];
            matmul_acc(m, k, n, &a, &b, &mut out);
            let want = naive(m, k, n, &a, &b);
            for (o, w) in out.iter().zip(&want) {
                assert!((o - 1.0 - w).abs() < 1e-3 * (1.0 + w.abs()), "{m}x{k}x{n}: {o} vs {w}+1");
            }
        }
    }

    #[test]
    fn exp_sigmoid_tanh_are_accurate() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            let e = f64::from(x).exp();
            assert!(((f64::from(exp(x)) - e) / e).abs() < 1e-6, "exp({x})");
            assert!((f64::from(sigmoid(x)) - 1.0 / (1.0 + (-f64::from(x)).exp())).abs() < 1e-6, "sigmoid({x})");
            assert!((f64::from(tanh(x)) - f64::from(x).tanh()).abs() < 1e-6, "tanh({x})");
        }
        assert!(sigmoid(-200.0) < 1e-30);
        assert_eq!(sigmoid(200.0), 1.0);
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn transpose_swaps_indices() {
        let src: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let mut dst = vec![0.0; 6];
        transpose(2, 3, &src, &mut dst);
        assert_eq!(dst, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
}
