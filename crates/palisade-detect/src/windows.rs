//! Sliding windows over one VM's normalised feature series: window `i` is the `T` rows ending
//! at row `i` and carries row `i`'s label (the paper labels a sequence by its last window).

use palisade_rng::Rng;

/// A normalised series and the windows to use from it.
#[derive(Debug, Clone)]
pub struct Windows<'a> {
    /// Rows × features, row-major.
    pub series: &'a [f32],
    /// Features per row.
    pub features: usize,
    /// Steps per window `T`.
    pub steps: usize,
    /// Index of each window's last row (each `>= steps - 1`).
    pub ends: Vec<usize>,
    /// Label of each window (0 normal, 1 abnormal).
    pub labels: Vec<u8>,
}

impl Windows<'_> {
    /// Number of windows.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Gathers windows `picks` (indices into `ends`) time-major into `out` (`[T][B][F]`),
    /// adding Gaussian noise of standard deviation `jitter` to those marked in `noisy`.
    pub fn gather(&self, picks: &[usize], noisy: Option<(&[bool], f32, &mut Rng)>, out: &mut Vec<f32>) {
        let (t, f, b) = (self.steps, self.features, picks.len());
        out.clear();
        out.resize(t * b * f, 0.0);
        for (r, &w) in picks.iter().enumerate() {
            let first = self.ends[w] + 1 - t;
            for s in 0..t {
                let src = &self.series[(first + s) * f..(first + s + 1) * f];
                out[(s * b + r) * f..(s * b + r + 1) * f].copy_from_slice(src);
            }
        }
        if let Some((flags, sd, rng)) = noisy {
            for (r, _) in flags.iter().enumerate().filter(|(_, &n)| n) {
                for s in 0..t {
                    for v in &mut out[(s * b + r) * f..(s * b + r + 1) * f] {
                        *v += sd * rng.normal() as f32;
                    }
                }
            }
        }
    }
}
