//! What every dataset directory holds, whichever generator made it (the synthetic one in
//! [`crate::synth`], the lab run in [`crate::run`]): `labels.csv` in palisade-nad's format
//! ([`palisade_nad::labels`]) and a `dataset.json` that starts with a [`DatasetHeader`] and
//! counts the labels the same way ([`Part`], [`KindCount`]).

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::Serialize;

/// The fields every `dataset.json` starts with: identity, span and split. `K` is the maker's
/// attack kind.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetHeader<K> {
    /// What this file is.
    pub format: &'static str,
    /// The seed.
    pub seed: u64,
    /// The monitored VM (`--vm` for features, train and eval).
    pub vm: Ipv4Addr,
    /// Window length in seconds.
    pub window: u64,
    /// First second of the span (a window start).
    pub start: u64,
    /// End of the span (exclusive).
    pub end: u64,
    /// Windows in the span (rows of `labels.csv`).
    pub windows: u64,
    /// End of the first half: windows before it train (and validate), the rest test.
    pub train_until: u64,
    /// Kinds in the training part (and the test part).
    pub train_kinds: Vec<K>,
    /// Kinds only in the test part: unseen attacks.
    pub held_back_kinds: Vec<K>,
    /// The wanted share of abnormal windows.
    pub attack_share_target: f64,
}

/// One part of the split (before `train_until`, or from it on).
#[derive(Debug, Clone, Serialize)]
pub struct Part<K: Ord> {
    /// Windows.
    pub windows: u64,
    /// Windows labelled 1.
    pub abnormal_windows: u64,
    /// Abnormal windows per kind.
    pub per_kind: BTreeMap<K, u64>,
}

impl<K: Ord + Copy> Part<K> {
    /// Counts `labels`, one per window: the kind of an abnormal one, `None` for a normal one.
    pub fn of(labels: &[Option<K>]) -> Self {
        let mut per_kind = BTreeMap::new();
        for k in labels.iter().flatten() {
            *per_kind.entry(*k).or_default() += 1;
        }
        Part { windows: labels.len() as u64, abnormal_windows: per_kind.values().sum(), per_kind }
    }
}

/// One kind's share of the dataset.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindCount {
    /// Episodes.
    pub episodes: u64,
    /// Windows labelled with it.
    pub windows: u64,
    /// Packets spliced in (the synthetic dataset counts them; a lab run does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    /// Whether it is held back for the test part.
    pub held_back: bool,
}

/// A dataset's labels counted: both parts of the split and every kind's share.
#[derive(Debug)]
pub(crate) struct Counted<K: Ord> {
    pub train: Part<K>,
    pub test: Part<K>,
    pub kinds: BTreeMap<K, KindCount>,
}

impl<K: Ord> Counted<K> {
    /// Windows labelled 1 in both parts.
    pub fn abnormal_windows(&self) -> u64 {
        self.train.abnormal_windows + self.test.abnormal_windows
    }
}

/// Counts `labels` (one per window) split before window `split`, with an entry for each of
/// `kinds` (held back when in `held`) counting the episodes whose kinds `episodes` lists.
pub(crate) fn count<K: Ord + Copy>(
    labels: &[Option<K>],
    split: usize,
    kinds: impl IntoIterator<Item = K>,
    held: &[K],
    episodes: impl IntoIterator<Item = K>,
) -> Counted<K> {
    let (train, test) = (Part::of(&labels[..split]), Part::of(&labels[split..]));
    let mut kinds: BTreeMap<K, KindCount> =
        kinds.into_iter().map(|k| (k, KindCount { held_back: held.contains(&k), ..KindCount::default() })).collect();
    for k in episodes {
        kinds.entry(k).or_default().episodes += 1;
    }
    for (k, c) in &mut kinds {
        c.windows = train.per_kind.get(k).unwrap_or(&0) + test.per_kind.get(k).unwrap_or(&0);
    }
    Counted { train, test, kinds }
}

/// Writes `value` to `path` as pretty-printed JSON with a final newline.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::from)?;
    text.push('\n');
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_counted_per_part_and_kind() {
        let labels = [None, Some('a'), Some('a'), None, Some('b'), Some('a'), None];
        let c = count(&labels, 3, ['a', 'b', 'c'], &['b'], ['a', 'a', 'b']);

        assert_eq!((c.train.windows, c.train.abnormal_windows), (3, 2));
        assert_eq!((c.test.windows, c.test.abnormal_windows), (4, 2));
        assert_eq!(c.test.per_kind, BTreeMap::from([('a', 1), ('b', 1)]));
        assert_eq!(c.abnormal_windows(), 4);
        let kind = |k| {
            let n = &c.kinds[&k];
            (n.episodes, n.windows, n.held_back)
        };
        assert_eq!([kind('a'), kind('b'), kind('c')], [(2, 3, false), (1, 1, true), (0, 0, false)]);
    }

    /// The synthetic dataset's kinds list their packets, the lab run's do not: one type, both
    /// `dataset.json` shapes as before they shared it.
    #[test]
    fn a_kind_count_writes_packets_only_when_counted() {
        let lab = KindCount { episodes: 2, windows: 3, packets: None, held_back: true };
        let synth = KindCount { packets: Some(40), ..lab.clone() };

        assert_eq!(serde_json::to_string(&lab).unwrap(), r#"{"episodes":2,"windows":3,"held_back":true}"#);
        assert_eq!(
            serde_json::to_string(&synth).unwrap(),
            r#"{"episodes":2,"windows":3,"packets":40,"held_back":true}"#
        );
    }
}
