//! Feature normalisation, fitted on the training part only and saved with the model.
//!
//! The rate and count features (`bps` .. `syn_count`, columns 5–11) are heavy-tailed: a
//! flood moves `pps` by orders of magnitude. They go through `ln(1 + x)` first, so a z-score
//! measures relative change and one flood does not squash every normal window into a sliver
//! of the input range. Entropies and `syn_rate` (columns 1–4) are bounded and used as they
//! are. Then each column is centred and scaled by the training mean and standard deviation
//! (a constant column is only centred), and clamped to ±20.

use crate::data::F;

/// Which columns take `ln(1 + x)`.
pub const LOG1P: [bool; F] = [false, false, false, false, true, true, true, true, true, true, true];

/// Fitted statistics.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalizer {
    /// Per column: `ln(1 + x)` before standardising.
    pub log1p: [bool; F],
    /// Mean after the log.
    pub mean: [f64; F],
    /// Standard deviation after the log (1 for a constant column).
    pub std: [f64; F],
}

impl Normalizer {
    /// Fits on `rows` (the training part).
    pub fn fit(rows: &[[f64; F]]) -> Self {
        let mut mean = [0.0; F];
        let mut std = [1.0; F];
        let n = rows.len().max(1) as f64;
        for c in 0..F {
            let t = |x: f64| if LOG1P[c] { x.max(0.0).ln_1p() } else { x };
            let m = rows.iter().map(|r| t(r[c])).sum::<f64>() / n;
            let v = rows.iter().map(|r| (t(r[c]) - m).powi(2)).sum::<f64>() / n;
            mean[c] = m;
            std[c] = if v.sqrt() > 1e-9 { v.sqrt() } else { 1.0 };
        }
        Normalizer { log1p: LOG1P, mean, std }
    }

    /// One row, normalised.
    pub fn apply(&self, row: &[f64; F]) -> [f32; F] {
        std::array::from_fn(|c| {
            let x = if self.log1p[c] { row[c].max(0.0).ln_1p() } else { row[c] };
            (((x - self.mean[c]) / self.std[c]).clamp(-20.0, 20.0)) as f32
        })
    }

    /// Every row, flattened row-major.
    pub fn apply_all(&self, rows: &[[f64; F]]) -> Vec<f32> {
        rows.iter().flat_map(|r| self.apply(r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardises_with_training_statistics_after_log1p() {
        let mut a = [0.0; F];
        let mut b = [0.0; F];
        a[0] = 1.0;
        b[0] = 3.0;
        a[5] = 0.0;
        b[5] = std::f64::consts::E - 1.0; // ln(1 + x) = 1
        let n = Normalizer::fit(&[a, b]);
        assert!((n.mean[0] - 2.0).abs() < 1e-12 && (n.std[0] - 1.0).abs() < 1e-12);
        assert!((n.mean[5] - 0.5).abs() < 1e-12 && (n.std[5] - 0.5).abs() < 1e-12);
        let out = n.apply(&b);
        assert!((out[0] - 1.0).abs() < 1e-6 && (out[5] - 1.0).abs() < 1e-6);
        // A constant column is centred only.
        assert_eq!(n.std[1], 1.0);
        // A flood far outside training is clamped.
        let mut flood = b;
        flood[0] = 1e9;
        assert_eq!(n.apply(&flood)[0], 20.0);
    }
}
