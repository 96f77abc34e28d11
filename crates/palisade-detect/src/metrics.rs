//! Detection metrics over scores (higher = more abnormal) and labels (non-zero = abnormal):
//! the ROC curve and its area, average precision (the area under the precision-recall curve
//! as a step function, like scikit-learn's `average_precision_score`), TPR at a fixed FPR,
//! the F1-best threshold and the confusion matrix at a threshold. Equal scores form one
//! point of the curves (ties are never broken by order).

use std::collections::BTreeMap;

/// One point of the ROC curve: everything scoring `>= threshold` is flagged.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RocPoint {
    /// False-positive rate.
    pub fpr: f64,
    /// True-positive rate.
    pub tpr: f64,
    /// The score threshold.
    pub threshold: f64,
}

/// Cumulative `(threshold, tp, fp)` per distinct score, highest first, and the class sizes.
fn sweep(scores: &[f64], labels: &[u8]) -> (Vec<(f64, u64, u64)>, u64, u64) {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut out: Vec<(f64, u64, u64)> = Vec::new();
    for (k, &i) in idx.iter().enumerate() {
        if labels[i] != 0 {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_group = idx.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
        if last_of_group {
            out.push((scores[i], tp, fp));
        }
    }
    (out, tp, fp)
}

/// The ROC curve from (0, 0) to (1, 1); empty when a class is missing.
pub fn roc_curve(scores: &[f64], labels: &[u8]) -> Vec<RocPoint> {
    let (pts, p, n) = sweep(scores, labels);
    if p == 0 || n == 0 {
        return Vec::new();
    }
    let mut out = vec![RocPoint { fpr: 0.0, tpr: 0.0, threshold: f64::INFINITY }];
    out.extend(pts.iter().map(|&(t, tp, fp)| RocPoint {
        fpr: fp as f64 / n as f64,
        tpr: tp as f64 / p as f64,
        threshold: t,
    }));
    out
}

/// Area under the ROC curve (trapezoids, so ties count one half); None when a class is missing.
pub fn roc_auc(scores: &[f64], labels: &[u8]) -> Option<f64> {
    let c = roc_curve(scores, labels);
    if c.is_empty() {
        return None;
    }
    Some(c.windows(2).map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0).sum())
}

/// Average precision: `Σ (Rₖ − Rₖ₋₁) Pₖ` over distinct thresholds; None without positives.
pub fn pr_auc(scores: &[f64], labels: &[u8]) -> Option<f64> {
    let (pts, p, _) = sweep(scores, labels);
    if p == 0 {
        return None;
    }
    let mut prev_recall = 0.0;
    let mut ap = 0.0;
    for &(_, tp, fp) in &pts {
        let recall = tp as f64 / p as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    Some(ap)
}

/// The highest TPR among thresholds whose FPR is at most `max_fpr`; None when a class is missing.
pub fn tpr_at_fpr(scores: &[f64], labels: &[u8], max_fpr: f64) -> Option<f64> {
    let c = roc_curve(scores, labels);
    c.iter().filter(|pt| pt.fpr <= max_fpr + 1e-12).map(|pt| pt.tpr).reduce(f64::max)
}

/// Counts at a threshold (`score >= threshold` is flagged abnormal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Confusion {
    /// Abnormal, flagged.
    pub tp: u64,
    /// Normal, flagged.
    pub fp: u64,
    /// Normal, not flagged.
    pub tn: u64,
    /// Abnormal, not flagged (`fn` in JSON).
    #[serde(rename = "fn")]
    pub fn_: u64,
}

impl Confusion {
    /// Counts `scores` against `labels` at `threshold`.
    pub fn at(scores: &[f64], labels: &[u8], threshold: f64) -> Self {
        let mut c = Confusion::default();
        for (&s, &y) in scores.iter().zip(labels) {
            match (y != 0, s >= threshold) {
                (true, true) => c.tp += 1,
                (true, false) => c.fn_ += 1,
                (false, true) => c.fp += 1,
                (false, false) => c.tn += 1,
            }
        }
        c
    }

    /// Precision (0 when nothing is flagged).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// Recall / TPR (0 without positives).
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// False-positive rate (0 without negatives).
    pub fn fpr(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }

    /// F1 score.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The threshold with the best F1 on these scores (ties: the higher threshold). Without
/// abnormal windows, the lowest threshold that flags at most 1% of the normal ones.
pub fn best_f1_threshold(scores: &[f64], labels: &[u8]) -> Option<f64> {
    let (pts, p, n) = sweep(scores, labels);
    if pts.is_empty() {
        return None;
    }
    if p == 0 {
        let allowed = n / 100;
        // None flagged at all: just above the highest score (finite, so it survives JSON).
        let above_all = pts.first().map(|&(t, _, _)| t.next_up());
        return pts.iter().rev().find(|&&(_, _, fp)| fp <= allowed).map(|&(t, _, _)| t).or(above_all);
    }
    let mut best = (f64::NEG_INFINITY, f64::INFINITY);
    for &(t, tp, fp) in &pts {
        let f1 = ratio(2 * tp, tp + fp + p);
        if f1 > best.0 {
            best = (f1, t);
        }
    }
    Some(best.1)
}

/// Per attack kind: windows of that kind and how many were flagged at `threshold`.
pub fn per_attack(scores: &[f64], attacks: &[Option<&str>], threshold: f64) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (&s, a) in scores.iter().zip(attacks) {
        if let Some(a) = a {
            let e = out.entry((*a).to_owned()).or_default();
            e.0 += 1;
            e.1 += u64::from(s >= threshold);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Scores with labels (1 = abnormal), highest first:
    // 0.9:1  0.8:1  0.7:0  0.6:1  0.5:0  0.4:0  (P = 3, N = 3)
    const S: [f64; 6] = [0.5, 0.9, 0.7, 0.4, 0.8, 0.6];
    const Y: [u8; 6] = [0, 1, 0, 0, 1, 1];

    #[test]
    fn roc_auc_by_hand() {
        // Pairs (pos, neg) ranked right: 0.9 and 0.8 beat all 3 negatives (6), 0.6 beats 2: 8/9.
        assert!((roc_auc(&S, &Y).unwrap() - 8.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn ties_count_one_half() {
        // One positive and one negative with the same score: AUC 0.5.
        assert_eq!(roc_auc(&[0.3, 0.3], &[1, 0]), Some(0.5));
        // Positive above two tied negatives, plus a positive tied with one negative.
        let auc = roc_auc(&[0.9, 0.5, 0.5, 0.2], &[1, 1, 0, 0]).unwrap();
        assert!((auc - (2.0 + 1.5) / 4.0).abs() < 1e-12, "{auc}");
    }

    #[test]
    fn average_precision_by_hand() {
        // Recall steps at ranks 1, 2, 4 with precision 1, 1, 3/4: (1 + 1 + 0.75) / 3.
        assert!((pr_auc(&S, &Y).unwrap() - 2.75 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn tpr_at_fpr_by_hand() {
        // Up to FPR 0 the top two positives are found: TPR 2/3; at FPR 1/3, all three.
        assert!((tpr_at_fpr(&S, &Y, 0.01).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(tpr_at_fpr(&S, &Y, 0.34), Some(1.0));
    }

    #[test]
    fn confusion_and_rates_by_hand() {
        let c = Confusion::at(&S, &Y, 0.6);
        assert_eq!(c, Confusion { tp: 3, fp: 1, tn: 2, fn_: 0 });
        assert!((c.precision() - 0.75).abs() < 1e-12);
        assert!((c.f1() - 6.0 / 7.0).abs() < 1e-12);
        assert!((c.fpr() - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn best_f1_threshold_by_hand() {
        // t=0.9: F1 2/4; t=0.8: 4/5; t=0.7: 4/6; t=0.6: 6/7 (best); t=0.5: 6/8.
        assert_eq!(best_f1_threshold(&S, &Y), Some(0.6));
        // Only normals: flag at most 1% -> of 3 normals none, so the threshold is just above the top.
        assert_eq!(best_f1_threshold(&[0.1, 0.2, 0.3], &[0, 0, 0]), Some(0.3f64.next_up()));
        // Of 200 normals, 2 may be flagged.
        let s: Vec<f64> = (0..200).map(f64::from).collect();
        assert_eq!(best_f1_threshold(&s, &[0; 200]), Some(198.0));
    }

    #[test]
    fn missing_class_gives_none() {
        assert_eq!(roc_auc(&[0.1, 0.2], &[0, 0]), None);
        assert_eq!(pr_auc(&[0.1, 0.2], &[0, 0]), None);
        assert_eq!(tpr_at_fpr(&[0.1], &[1], 0.01), None);
    }

    #[test]
    fn per_attack_counts_flagged_windows_by_kind() {
        let attacks = [None, Some("syn_flood"), None, None, Some("port_scan"), Some("syn_flood")];
        let m = per_attack(&S, &attacks, 0.85);
        assert_eq!(m["syn_flood"], (2, 1));
        assert_eq!(m["port_scan"], (1, 0));
    }
}
