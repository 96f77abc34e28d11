//! An isolation forest (Liu, Ting & Zhou 2008) over the 11 normalised features of a window:
//! the strong general-purpose unsupervised baseline. 100 trees of 256-window subsamples
//! (height limit ⌈log₂ 256⌉), seeded; the score is `2^(−E[h(x)] / c(ψ))`, higher is more
//! anomalous. It is fitted on the normal training windows (as the other detectors only learn
//! normal behaviour from normal windows, apart from LSTM-NAD's supervised loss).

use crate::data::F;
use palisade_rng::Rng;

/// A node: a split, or a leaf holding how many training points reached it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Node {
    /// Go left when `x[feature] < value`.
    Split {
        /// Feature index.
        feature: u8,
        /// Split value.
        value: f32,
        /// Index of the left child.
        left: u32,
        /// Index of the right child.
        right: u32,
    },
    /// External node.
    Leaf {
        /// Training points that ended here.
        size: u32,
    },
}

/// The forest.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IsolationForest {
    /// Trees, each a node list rooted at 0.
    pub trees: Vec<Vec<Node>>,
    /// Subsample size ψ.
    pub sample: usize,
    /// Windows scoring at or above this are abnormal.
    pub threshold: f64,
}

/// Average path length of an unsuccessful search in a binary search tree of `n` points.
pub fn c(n: f64) -> f64 {
    if n <= 1.0 {
        0.0
    } else if n < 3.0 {
        1.0
    } else {
        2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
    }
}

impl IsolationForest {
    /// Fits `trees` trees on `points` (normalised rows).
    pub fn fit(points: &[[f32; F]], trees: usize, sample: usize, seed: u64) -> Self {
        let sample = sample.min(points.len()).max(1);
        let limit = (sample as f64).log2().ceil() as usize;
        let mut rng = Rng::derive(seed, &[0x1f]);
        let mut out = Vec::with_capacity(trees);
        for _ in 0..trees {
            let mut idx: Vec<usize> = (0..points.len()).collect();
            // Partial Fisher-Yates: the first `sample` are a uniform subsample.
            for i in 0..sample.min(idx.len()) {
                let j = i + rng.below(idx.len() - i);
                idx.swap(i, j);
            }
            idx.truncate(sample);
            let mut nodes = Vec::new();
            grow(points, &mut idx, 0, limit, &mut rng, &mut nodes);
            out.push(nodes);
        }
        IsolationForest { trees: out, sample, threshold: f64::INFINITY }
    }

    /// Anomaly score in (0, 1].
    pub fn score(&self, x: &[f32; F]) -> f64 {
        if self.trees.is_empty() {
            return 0.5;
        }
        let total: f64 = self.trees.iter().map(|t| path_length(t, x)).sum();
        let mean = total / self.trees.len() as f64;
        let cn = c(self.sample as f64).max(1e-12);
        2f64.powf(-mean / cn)
    }
}

fn grow(
    points: &[[f32; F]],
    idx: &mut [usize],
    depth: usize,
    limit: usize,
    rng: &mut Rng,
    nodes: &mut Vec<Node>,
) -> u32 {
    let me = nodes.len() as u32;
    nodes.push(Node::Leaf { size: idx.len() as u32 });
    if depth >= limit || idx.len() <= 1 {
        return me;
    }
    // A random feature that is not constant here (a few tries), split uniformly in its range.
    for _ in 0..2 * F {
        let f = rng.below(F);
        let (lo, hi) = idx
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &i| (lo.min(points[i][f]), hi.max(points[i][f])));
        if hi <= lo {
            continue;
        }
        let value = lo + (hi - lo) * rng.unit() as f32;
        let value = if value <= lo { hi } else { value };
        let mut mid = 0;
        for k in 0..idx.len() {
            if points[idx[k]][f] < value {
                idx.swap(k, mid);
                mid += 1;
            }
        }
        let (l, r) = idx.split_at_mut(mid);
        let left = grow(points, l, depth + 1, limit, rng, nodes);
        let right = grow(points, r, depth + 1, limit, rng, nodes);
        nodes[me as usize] = Node::Split { feature: f as u8, value, left, right };
        return me;
    }
    me
}

fn path_length(nodes: &[Node], x: &[f32; F]) -> f64 {
    let mut at = 0usize;
    let mut depth = 0.0;
    // Bounded by the node count, so a corrupt (loaded) tree cannot loop forever.
    for _ in 0..nodes.len() {
        match nodes.get(at) {
            Some(&Node::Split { feature, value, left, right }) => {
                let v = x.get(usize::from(feature)).copied().unwrap_or(0.0);
                at = if v < value { left as usize } else { right as usize };
                depth += 1.0;
            }
            Some(&Node::Leaf { size }) => return depth + c(f64::from(size)),
            None => break,
        }
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_matches_the_paper() {
        assert_eq!(c(1.0), 0.0);
        assert_eq!(c(2.0), 1.0);
        // c(256) = 2 (ln 255 + γ) − 2·255/256 ≈ 10.2448
        assert!((c(256.0) - 10.2448).abs() < 1e-3, "{}", c(256.0));
    }

    #[test]
    fn outliers_score_higher_than_the_crowd_and_seeds_reproduce() {
        let mut rng = Rng::new(4);
        let pts: Vec<[f32; F]> = (0..1000).map(|_| std::array::from_fn(|_| rng.normal() as f32)).collect();
        let f = IsolationForest::fit(&pts, 100, 256, 9);
        let centre = f.score(&[0.0; F]);
        let outlier = f.score(&[6.0; F]);
        assert!(outlier > 0.6 && centre < 0.5, "outlier {outlier}, centre {centre}");
        assert_eq!(f, IsolationForest::fit(&pts, 100, 256, 9));
        assert_ne!(f, IsolationForest::fit(&pts, 100, 256, 10));
    }
}
