//! A seeded synthetic dataset for the detector at paper scale (a month of one-minute windows):
//! a generated periodic benign background for one VM, with attacks spliced in from real
//! captures (this crate's `testdata/pcaps`, built into the program), and the label of every
//! window.
//!
//! ```text
//!  seed ─► Background (sessions per window, daily/weekly cycle) ──────────┐ time order,
//!  attack pcaps ─► Template (own reader) ─► schedule ─► Episode::replay ──┴► merge ─► capture.pcap
//!                  victim -> VM, attackers -> generated, times mapped            └─► labels.csv
//!                  (stretch / compress / subsample), checksums updated               dataset.json
//! ```
//!
//! Memory stays bounded over any span: the background is generated one window at a time and
//! one episode is replayed at a time. The first half of the span (`train_until`) holds only the
//! kinds not held back; the second half holds every kind, so held-back kinds are unseen in
//! training, as in the paper.

mod attack;
mod background;
mod error;
mod output;
mod packet;
mod schedule;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::BufWriter;
use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use attack::{rewrite as rewrite_ipv4, AttackKind, Episode, Source};
pub use background::Surge;
pub use error::{CaptureOrigin, CaptureSource, DatasetError};
pub use output::{Counts, SourceInfo, Summary};
pub use packet::SNAPLEN;

use palisade_nad::build::PcapWriter;
use palisade_nad::LinkType;

use self::attack::Template;
use self::background::{Background, CLIENT_NETS, MONITOR};
use self::schedule::{Plan, ATTACKER_NETS};

/// Monday 2026-01-05 00:00:00 UTC, the default first second.
pub const DEFAULT_START: u64 = 1_767_571_200;

/// What to make.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Directory for `capture.pcap`, `labels.csv` and `dataset.json` (created if missing).
    pub out: PathBuf,
    /// The seed: the same seed (and settings) gives the same bytes.
    pub seed: u64,
    /// The monitored VM.
    pub vm: Ipv4Addr,
    /// Window length in seconds.
    pub window_s: u64,
    /// Span in seconds (a whole number of windows).
    pub span_s: u64,
    /// First second (aligned down to the window).
    pub start_s: u64,
    /// Wanted share of abnormal windows, e.g. 0.03.
    pub share: f64,
    /// Kinds that appear only after `train_until`.
    pub held_back: Vec<AttackKind>,
    /// Benign surges (flash crowds) per day on average; 0 for none.
    pub surges_per_day: f64,
    /// A directory to read the attack captures from (same file names, see [`Source::file`])
    /// instead of the copies built into the program; `None` uses the built-in ones.
    pub attack_pcaps: Option<PathBuf>,
}

impl SynthConfig {
    /// The defaults: 30 days of 60 s windows for 10.0.0.5, seed 1, 3 % abnormal windows, the
    /// HTTP flood and the masscan UDP scan held back, a benign surge every 2.5 days on average.
    pub fn new(out: PathBuf) -> Self {
        SynthConfig {
            out,
            seed: 1,
            vm: Ipv4Addr::new(10, 0, 0, 5),
            window_s: 60,
            span_s: 30 * 86_400,
            start_s: DEFAULT_START,
            share: 0.03,
            held_back: vec![AttackKind::HttpFlood, AttackKind::MasscanUdp],
            surges_per_day: 0.4,
            attack_pcaps: None,
        }
    }
}

/// How far [`synthesize`] has come, now and then (every 65,536 background packets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Background packets written so far.
    pub background_packets: u64,
    /// Seconds of the span written so far.
    pub at_s: u64,
    /// Seconds in the span.
    pub span_s: u64,
}

/// Makes the dataset, telling `progress` now and then how far it has come; returns what
/// `dataset.json` says.
pub fn synthesize(cfg: &SynthConfig, progress: &mut dyn FnMut(Progress)) -> Result<Summary, DatasetError> {
    if cfg.window_s == 0 {
        return Err(DatasetError::ZeroWindow);
    }
    if cfg.span_s == 0 || !cfg.span_s.is_multiple_of(cfg.window_s) {
        return Err(DatasetError::SpanNotWhole { span: cfg.span_s, window: cfg.window_s });
    }
    if cfg.start_s.checked_add(cfg.span_s).is_none_or(|end| end >= u64::MAX / 1_000_000_000 - 86_400) {
        return Err(DatasetError::StartTooLate { start: cfg.start_s, span: cfg.span_s });
    }
    if !(cfg.share > 0.0 && cfg.share < 0.5) {
        return Err(DatasetError::BadShare(cfg.share));
    }
    if !(cfg.surges_per_day.is_finite() && cfg.surges_per_day >= 0.0) {
        return Err(DatasetError::BadSurges(cfg.surges_per_day));
    }
    let first = cfg.vm.octets()[0];
    if cfg.vm == MONITOR || CLIENT_NETS.contains(&first) || ATTACKER_NETS.contains(&first) {
        return Err(DatasetError::VmAddressTaken(cfg.vm));
    }
    let all = AttackKind::ALL.to_vec();
    let train: Vec<AttackKind> = all.iter().copied().filter(|k| !cfg.held_back.contains(k)).collect();
    if train.is_empty() {
        return Err(DatasetError::NothingToTrain);
    }
    let mut templates = Vec::new();
    let mut index = Vec::new();
    for kind in AttackKind::ALL {
        for &source in kind.sources() {
            index.push((kind, templates.len()));
            templates.push(Template::load(cfg.attack_pcaps.as_deref(), source)?);
        }
    }
    let start_s = cfg.start_s - cfg.start_s % cfg.window_s;
    let windows = cfg.span_s / cfg.window_s;
    let plan = Plan {
        seed: cfg.seed,
        start_s,
        windows,
        window_s: cfg.window_s,
        share: cfg.share,
        train: &train,
        all: &all,
        templates: &index,
    };
    let mut episodes = schedule::schedule(&plan, &templates)?;

    std::fs::create_dir_all(&cfg.out).map_err(|source| DatasetError::Write { path: cfg.out.clone(), source })?;
    let capture = cfg.out.join("capture.pcap");
    let failed = |source| DatasetError::Write { path: capture.clone(), source };
    let file = File::create(&capture).map_err(failed)?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, file), LinkType::ETHERNET, SNAPLEN, false, false)
        .map_err(failed)?;
    let ns = 1_000_000_000u64;
    let end_ns = (start_s + cfg.span_s) * ns;
    let surges = background::plan_surges(cfg.seed, start_s * ns, end_ns, cfg.surges_per_day);
    let mut bg = Background::new(cfg.seed, cfg.vm, start_s * ns, end_ns, cfg.window_s * ns, surges.clone()).peekable();
    let mut labels: Vec<Option<AttackKind>> = vec![None; windows as usize];
    let mut tally = output::Tally::default();
    let (mut buf, mut pos, mut next) = (Vec::new(), 0, 0);
    let mut kind = AttackKind::SynFlood;
    loop {
        if pos == buf.len() && next < episodes.len() {
            let e = &mut episodes[next];
            buf = e.replay(&templates[e.template], cfg.vm);
            e.packets = buf.len() as u64;
            kind = e.kind;
            (pos, next) = (0, next + 1);
            continue;
        }
        let take_attack = match (buf.get(pos), bg.peek()) {
            (Some(a), Some(b)) => a.ts_ns < b.ts_ns,
            (a, b) => a.is_some() && b.is_none(),
        };
        if take_attack {
            let p = &buf[pos];
            pos += 1;
            let win = ((p.ts_ns / ns - start_s) / cfg.window_s) as usize;
            if let Some(l) = labels.get_mut(win) {
                l.get_or_insert(kind);
            }
            tally.attack(kind, p);
            w.packet(p.ts_ns, p.orig_len, &p.frame).map_err(failed)?;
        } else {
            let Some(p) = bg.next() else { break };
            tally.background(&p);
            w.packet(p.ts_ns, p.orig_len, &p.frame).map_err(failed)?;
            if tally.background_packets & 0xffff == 0 {
                progress(Progress {
                    background_packets: tally.background_packets,
                    at_s: p.ts_ns / ns - start_s,
                    span_s: cfg.span_s,
                });
            }
        }
    }
    w.into_inner().map_err(failed)?;
    let mut summary = output::Summary::new(cfg, start_s, &labels, &train, tally, &templates, &index, episodes);
    summary.surges = surges;
    output::write_labels(&cfg.out, start_s, cfg.window_s, &labels)?;
    output::write_json(&cfg.out, &summary)?;
    Ok(summary)
}
