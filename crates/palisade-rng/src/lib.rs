//! Palisade's one seeded random number generator: [`Rng`] (xoshiro256** seeded through
//! SplitMix64) and the draws made from it ([`Zipf`] included), so that a seed reproduces a run.
//! Owns no choice of what to draw; no entropy source, nothing cryptographic.
//!
//! Every random choice of the detector's training and isolation forest, the synthetic dataset,
//! the benchmark capture and the lab traffic schedule comes from one of these, as do the seeded
//! mutations of the parsers' never-panic tests. The streams of [`Rng::new`] and [`Rng::derive`],
//! and what [`Rng::unit`], [`Rng::below`], [`Rng::normal`] and [`Rng::shuffle`] make of them, are
//! the ones trained models were made with: changing them changes every model (see the tests).

#![forbid(unsafe_code)]

mod zipf;

pub use zipf::Zipf;

/// The golden-ratio increment of SplitMix64, also used to spread `derive`'s parts.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// xoshiro256**, its state filled by SplitMix64 from a 64-bit seed.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator from a seed; different seeds give unrelated streams.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut splitmix = || {
            x = x.wrapping_add(GOLDEN);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng { s: [splitmix(), splitmix(), splitmix(), splitmix()] }
    }

    /// A generator for a sub-stream of `seed`, e.g. `(seed, epoch, shard)`: each list of parts
    /// gives a stream unrelated to the others and to `new(seed)`.
    pub fn derive(seed: u64, parts: &[u64]) -> Self {
        let mut h = seed ^ 0x6a09_e667_f3bc_c908;
        for &p in parts {
            h = Rng::new(h ^ p.wrapping_mul(GOLDEN)).next_u64();
        }
        Rng::new(h)
    }

    /// The generator of one purpose of a seeded run (`derive(seed, &[stream])`), so that, say,
    /// a background and a schedule drawn from one seed do not depend on each other.
    pub fn stream(seed: u64, stream: u64) -> Self {
        Rng::derive(seed, &[stream])
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` (53 random bits).
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    #[inline]
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `0..n` (0 when `n` is 0), by multiply-shift: from the top 32 random bits
    /// when `n` is at most 2^32, from all 64 above.
    #[inline]
    pub fn below_u64(&mut self, n: u64) -> u64 {
        let x = self.next_u64();
        if n <= 1 << 32 {
            ((x >> 32) * n) >> 32
        } else {
            ((u128::from(x) * u128::from(n)) >> 64) as u64
        }
    }

    /// Uniform in `0..n` (0 when `n` is 0): an index into something of length `n`.
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        self.below_u64(n as u64) as usize
    }

    /// Uniform in `lo..=hi` (`lo` when `hi < lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        match hi.saturating_sub(lo).checked_add(1) {
            Some(n) => lo + self.below_u64(n),
            None => self.next_u64(),
        }
    }

    /// True with probability `p`.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Exponential with mean `mean`.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Poisson with mean `mean` (0 when it is not positive): Knuth's product method up to a
    /// mean of 40, a rounded normal above.
    pub fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        if mean > 40.0 {
            return (mean + mean.sqrt() * self.normal()).round().max(0.0) as u64;
        }
        let limit = (-mean).exp();
        let mut k = 0;
        let mut p = self.unit();
        while p > limit {
            k += 1;
            p *= self.unit();
        }
        k
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests;
