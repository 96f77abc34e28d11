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
use crate::dataset::{DatasetHeader, KindCount, Part};

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
    pub train: Part<AttackKind>,
    /// The test part (from `train_until` on).
    pub test: Part<AttackKind>,
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
        let mut counted = crate::dataset::count(
            labels,
            half as usize,
            AttackKind::ALL,
            &cfg.held_back,
            episodes.iter().map(|e| e.kind),
        );
        for (k, c) in &mut counted.kinds {
            c.packets = Some(tally.attack_packets.get(k).copied().unwrap_or(0));
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
                abnormal_windows: counted.abnormal_windows(),
                train: counted.train,
                test: counted.test,
            },
            kinds: counted.kinds,
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
