//! `labels.csv` and `dataset.json` of the synthetic dataset: what was made, for the detector and
//! for people.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::Serialize;

use super::attack::{AttackKind, Episode, Template};
use super::background::Surge;
use super::error::DatasetError;
use super::packet::Packet;
use super::SynthConfig;
use crate::dataset::DatasetHeader;

/// Counters kept while writing the capture.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub background_packets: u64,
    attack_packets: BTreeMap<AttackKind, u64>,
    bytes: u64,
}

impl Tally {
    pub(crate) fn background(&mut self, p: &Packet) {
        self.background_packets += 1;
        self.bytes += 16 + p.frame.len() as u64;
    }

    pub(crate) fn attack(&mut self, kind: AttackKind, p: &Packet) {
        *self.attack_packets.entry(kind).or_default() += 1;
        self.bytes += 16 + p.frame.len() as u64;
    }
}

/// Everything `dataset.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Identity, span and split.
    #[serde(flatten)]
    pub header: DatasetHeader<AttackKind>,
    /// Packets, bytes and windows.
    pub counts: Counts,
    /// Per kind: episodes, windows and packets.
    pub kinds: BTreeMap<AttackKind, KindCount>,
    /// The captures the attacks come from.
    pub sources: Vec<SourceInfo>,
    /// Every attack episode, in time order.
    pub episodes: Vec<Episode>,
    /// Benign surges (flash crowds; their windows are labelled 0), in time order.
    pub surges: Vec<Surge>,
}

/// Totals.
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    /// Packets in `capture.pcap`.
    pub packets: u64,
    /// Of which background.
    pub background_packets: u64,
    /// Of which spliced attack packets.
    pub attack_packets: u64,
    /// Size of `capture.pcap` in bytes.
    pub capture_bytes: u64,
    /// Windows labelled 1.
    pub abnormal_windows: u64,
    /// The training part (before `train_until`).
    pub train: Part,
    /// The test part (from `train_until` on).
    pub test: Part,
}

/// One part of the split.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    /// Windows.
    pub windows: u64,
    /// Windows labelled 1.
    pub abnormal_windows: u64,
    /// Abnormal windows per kind.
    pub per_kind: BTreeMap<AttackKind, u64>,
}

/// One kind's share of the dataset.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindCount {
    /// Episodes.
    pub episodes: u64,
    /// Windows labelled with it.
    pub windows: u64,
    /// Packets spliced in.
    pub packets: u64,
    /// Whether it is held back for the test part.
    pub held_back: bool,
}

/// One attack capture used.
#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    /// The kind it provides.
    pub kind: AttackKind,
    /// File name.
    pub file: &'static str,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Its victim address (replaced by the VM).
    pub victim: Ipv4Addr,
    /// Records in the file.
    pub records: u64,
    /// Records replayed (IPv4 to or from the victim).
    pub used: u64,
    /// Records skipped (not IPv4, or between other hosts).
    pub skipped: u64,
}

impl Summary {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: &SynthConfig,
        start: u64,
        labels: &[Option<AttackKind>],
        train: &[AttackKind],
        tally: Tally,
        templates: &[Template],
        index: &[(AttackKind, usize)],
        episodes: Vec<Episode>,
    ) -> Self {
        let windows = labels.len() as u64;
        let half = windows / 2;
        let part = |range: &[Option<AttackKind>]| {
            let mut per_kind = BTreeMap::new();
            for k in range.iter().flatten() {
                *per_kind.entry(*k).or_default() += 1;
            }
            Part { windows: range.len() as u64, abnormal_windows: per_kind.values().sum(), per_kind }
        };
        let (tr, te) = (part(&labels[..half as usize]), part(&labels[half as usize..]));
        let mut kinds: BTreeMap<AttackKind, KindCount> = AttackKind::ALL
            .into_iter()
            .map(|k| (k, KindCount { held_back: cfg.held_back.contains(&k), ..KindCount::default() }))
            .collect();
        for e in &episodes {
            kinds.entry(e.kind).or_default().episodes += 1;
        }
        for (k, c) in &mut kinds {
            c.windows = tr.per_kind.get(k).unwrap_or(&0) + te.per_kind.get(k).unwrap_or(&0);
            c.packets = tally.attack_packets.get(k).copied().unwrap_or(0);
        }
        let attack_packets: u64 = tally.attack_packets.values().sum();
        let sources = index
            .iter()
            .map(|&(kind, i)| {
                let t = &templates[i];
                SourceInfo {
                    kind,
                    file: t.source.file,
                    sha256: t.sha256.clone(),
                    victim: t.source.victim,
                    records: t.records,
                    used: t.len() as u64,
                    skipped: t.skipped,
                }
            })
            .collect();
        Summary {
            header: DatasetHeader {
                format: "palisade synthetic NAD dataset, version 1",
                seed: cfg.seed,
                vm: cfg.vm,
                window: cfg.window_s,
                start,
                end: start + windows * cfg.window_s,
                windows,
                train_until: start + half * cfg.window_s,
                train_kinds: train.to_vec(),
                held_back_kinds: AttackKind::ALL.into_iter().filter(|k| cfg.held_back.contains(k)).collect(),
                attack_share_target: cfg.share,
            },
            counts: Counts {
                packets: tally.background_packets + attack_packets,
                background_packets: tally.background_packets,
                attack_packets,
                capture_bytes: 24 + tally.bytes,
                abnormal_windows: tr.abnormal_windows + te.abnormal_windows,
                train: tr,
                test: te,
            },
            kinds,
            sources,
            episodes,
            surges: Vec::new(),
        }
    }
}

/// `labels.csv` (palisade-nad's format), one row per window of the span.
pub(crate) fn write_labels(
    dir: &Path,
    start: u64,
    window: u64,
    labels: &[Option<AttackKind>],
) -> Result<(), DatasetError> {
    let names: Vec<Option<&str>> = labels.iter().map(|l| l.map(AttackKind::name)).collect();
    palisade_nad::labels::write(dir, start, window, &names)?;
    Ok(())
}

/// `dataset.json`, pretty-printed.
pub(crate) fn write_json(dir: &Path, summary: &Summary) -> Result<(), DatasetError> {
    let path = dir.join("dataset.json");
    crate::dataset::write_json(&path, summary).map_err(|source| DatasetError::Write { path, source })
}
