//! A RECONSTRUCTION of the "traffic structure stability model" of Yin et al., IEEE Access 6
//! (2018), the predecessor the LSTM-NAD paper compares against. Only that paper's abstract is
//! public: it scores the deviation between a window's traffic structure and a historical
//! normal profile. Everything below beyond that sentence is our reading, not the authors':
//!
//! - the structure is features 1–4 (`access_port`, `ip_entro`, `service_port_entro`,
//!   `syn_rate`);
//! - the profile is per time of day: the period (a day, or the lab's compressed day) is cut
//!   into slots, and each slot keeps the mean and spread (Welford) of past normal windows;
//! - the deviation degree is the root mean square of the four z-scores against the window's
//!   slot (the spread floored at a tenth of the feature's overall spread, so a slot that was
//!   always identical does not turn noise into alarms); a slot with fewer than two windows
//!   uses the overall profile;
//! - the threshold comes from the training part (the F1-best on validation);
//! - while scoring, a window judged normal (deviation below the threshold) joins its slot's
//!   profile; one judged abnormal does not, so an attack does not become the norm.

use crate::data::F;

/// Features of the traffic structure (indices into the 11).
pub const STRUCTURE: [usize; 4] = [0, 1, 2, 3];

/// Running mean and spread.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Welford {
    /// Observations.
    pub n: f64,
    /// Mean.
    pub mean: f64,
    /// Sum of squared deviations.
    pub m2: f64,
}

impl Welford {
    /// Adds one observation.
    pub fn add(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    /// Population standard deviation (0 with fewer than two observations).
    pub fn std(&self) -> f64 {
        if self.n < 2.0 {
            0.0
        } else {
            (self.m2 / self.n).sqrt()
        }
    }
}

/// The model: profiles and threshold.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stability {
    /// Length of the cycle, ns (86,400 s for a real day).
    pub period_ns: u64,
    /// Slots per period.
    pub slots: usize,
    /// Per slot, per structure feature.
    pub profile: Vec<[Welford; 4]>,
    /// Over all normal training windows.
    pub overall: [Welford; 4],
    /// Windows scoring at or above this are abnormal.
    pub threshold: f64,
}

impl Stability {
    /// A profile from the normal windows among `rows` (window starts in `starts`).
    pub fn fit(period_ns: u64, slots: usize, starts: &[u64], rows: &[[f64; F]], labels: &[u8]) -> Self {
        let slots = slots.max(1);
        let mut s = Stability {
            period_ns: period_ns.max(1),
            slots,
            profile: vec![[Welford::default(); 4]; slots],
            overall: [Welford::default(); 4],
            threshold: f64::INFINITY,
        };
        for ((&t, r), &y) in starts.iter().zip(rows).zip(labels) {
            if y == 0 {
                s.learn(t, r);
            }
        }
        s
    }

    fn slot(&self, start_ns: u64) -> usize {
        ((u128::from(start_ns % self.period_ns) * self.slots as u128) / u128::from(self.period_ns)) as usize
    }

    /// Adds a normal window to its slot's profile and the overall one.
    pub fn learn(&mut self, start_ns: u64, row: &[f64; F]) {
        let k = self.slot(start_ns);
        for (j, &c) in STRUCTURE.iter().enumerate() {
            self.profile[k][j].add(row[c]);
            self.overall[j].add(row[c]);
        }
    }

    /// The deviation degree of a window from its slot's profile.
    pub fn deviation(&self, start_ns: u64, row: &[f64; F]) -> f64 {
        let slot = &self.profile[self.slot(start_ns)];
        let use_slot = slot.iter().all(|w| w.n >= 2.0);
        let mut sum = 0.0;
        for (j, &c) in STRUCTURE.iter().enumerate() {
            let p = if use_slot { slot[j] } else { self.overall[j] };
            let floor = 0.1 * self.overall[j].std() + 1e-6;
            let z = (row[c] - p.mean) / p.std().max(floor);
            sum += z * z;
        }
        (sum / STRUCTURE.len() as f64).sqrt()
    }

    /// Scores windows in time order without learning from them (validation).
    pub fn score_frozen(&self, starts: &[u64], rows: &[[f64; F]]) -> Vec<f64> {
        starts.iter().zip(rows).map(|(&t, r)| self.deviation(t, r)).collect()
    }

    /// Scores windows in time order, learning from each one judged normal (evaluation and
    /// live use). `self` keeps what it learnt.
    pub fn score_online(&mut self, starts: &[u64], rows: &[[f64; F]]) -> Vec<f64> {
        let mut out = Vec::with_capacity(rows.len());
        for (&t, r) in starts.iter().zip(rows) {
            let d = self.deviation(t, r);
            if d < self.threshold {
                self.learn(t, r);
            }
            out.push(d);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: f64) -> [f64; F] {
        let mut r = [0.0; F];
        r[1] = v;
        r
    }

    #[test]
    fn deviation_is_measured_against_the_slot_of_the_day() {
        // Period 100 s, 2 slots: slot 0 has ip_entro around 1, slot 1 around 5.
        let starts: Vec<u64> = (0..40).map(|i| (i * 25) % 100 * 1_000_000_000 + (i / 4) * 100_000_000_000).collect();
        let rows: Vec<[f64; F]> = starts
            .iter()
            .enumerate()
            .map(|(i, &t)| row(if (t / 1_000_000_000) % 100 < 50 { 1.0 } else { 5.0 } + (i % 2) as f64 * 0.2))
            .collect();
        let s = Stability::fit(100_000_000_000, 2, &starts, &rows, &[0; 40]);
        // 5.1 is normal in the afternoon slot and far off in the morning slot.
        let afternoon = s.deviation(60_000_000_000, &row(5.1));
        let morning = s.deviation(10_000_000_000, &row(5.1));
        assert!(afternoon < 1.0, "{afternoon}");
        // (5.1 − 1.1) / max(0.1, 0.1 · overall spread ≈ 0.2) = 20 on one of 4 features: RMS 10.
        assert!((morning - 10.0).abs() < 0.5, "{morning}");
    }

    #[test]
    fn abnormal_windows_do_not_join_the_profile() {
        let starts: Vec<u64> = (0..10).map(|i| i * 1_000_000_000).collect();
        let rows: Vec<[f64; F]> = (0..10).map(|i| row(1.0 + (i % 2) as f64 * 0.1)).collect();
        let mut s = Stability::fit(1_000_000_000_000, 1, &starts, &rows, &[0; 10]);
        s.threshold = 3.0;
        let before = s.profile[0];
        let scores = s.score_online(&[11_000_000_000, 12_000_000_000], &[row(50.0), row(1.05)]);
        assert!(scores[0] > 3.0 && scores[1] < 3.0, "{scores:?}");
        assert_eq!(s.profile[0][1].n, before[1].n + 1.0, "only the normal window was learnt");
        assert!(s.profile[0][1].mean < 1.1);
    }
}
