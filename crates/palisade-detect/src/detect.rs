//! Scoring windows as they close (`palisade nad detect`): each new row of the monitored VM
//! joins the last `T − 1`, LSTM-NAD scores the sequence, and a window at or above the
//! threshold becomes an alert naming the features that deviated most from training.
//! Alerts are JSON lines (the security event stream, not logs).

use std::collections::VecDeque;
use std::io::{self, Write};

use palisade_nad::{Row, RowSink, Seconds};

use crate::data::{F, FEATURE_NAMES};
use crate::detector::Model;
use crate::nn::Work;

/// One feature's deviation in an alert.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Deviation {
    /// Feature name.
    pub feature: &'static str,
    /// The window's value.
    pub value: f64,
    /// Standard deviations from the training mean (after `log1p` where the model uses it).
    pub z: f32,
}

/// A scored window.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Alert {
    /// The VM.
    pub vm: String,
    /// The window's start (Unix seconds).
    pub window_start: String,
    /// The window's length in seconds.
    pub window: String,
    /// LSTM-NAD's score.
    pub score: f32,
    /// The model's threshold.
    pub threshold: f64,
    /// Whether `score >= threshold`.
    pub alert: bool,
    /// The three features furthest from their training mean.
    pub top_features: Vec<Deviation>,
}

/// A row sink that scores each window and writes alerts (or every window) as JSON lines.
#[derive(Debug)]
pub struct Scorer<'m, W: Write> {
    model: &'m Model,
    window: Seconds,
    out: W,
    every: bool,
    recent: VecDeque<[f32; F]>,
    work: Work,
    x: Vec<f32>,
    /// Windows scored.
    pub scored: u64,
    /// Alerts written.
    pub alerts: u64,
}

impl<'m, W: Write> Scorer<'m, W> {
    /// Writes to `out`: alerts only, or every scored window when `every`.
    pub fn new(model: &'m Model, window: Seconds, out: W, every: bool) -> Self {
        let t = model.net.cfg.steps;
        Scorer {
            model,
            window,
            out,
            every,
            recent: VecDeque::with_capacity(t),
            work: Work::default(),
            x: Vec::new(),
            scored: 0,
            alerts: 0,
        }
    }

    /// Scores one row (rows must come in window order, without holes, as the extractor makes
    /// them); returns the scored window once `T` rows have been seen.
    pub fn push(&mut self, row: &Row) -> io::Result<Option<Alert>> {
        let t = self.model.net.cfg.steps;
        let raw = row.features.values();
        let norm = self.model.meta.norm.apply(&raw);
        if self.recent.len() == t {
            self.recent.pop_front();
        }
        self.recent.push_back(norm);
        if self.recent.len() < t {
            return Ok(None);
        }
        // Time-major [T][1][F] is just the rows in order.
        self.x.clear();
        self.recent.iter().for_each(|r| self.x.extend_from_slice(r));
        let mut score = [0.0f32];
        self.model.net.scores(1, &self.x, &mut self.work, &mut score);
        let mut order: Vec<usize> = (0..F).collect();
        order.sort_by(|&a, &b| norm[b].abs().total_cmp(&norm[a].abs()));
        let top_features =
            order.iter().take(3).map(|&c| Deviation { feature: FEATURE_NAMES[c], value: raw[c], z: norm[c] }).collect();
        let alert = Alert {
            vm: row.vm.to_string(),
            window_start: self.window.format_instant(row.window_start_ns),
            window: self.window.to_string().trim_end_matches(" s").to_owned(),
            score: score[0],
            threshold: self.model.meta.threshold,
            alert: f64::from(score[0]) >= self.model.meta.threshold,
            top_features,
        };
        self.scored += 1;
        if alert.alert {
            self.alerts += 1;
        }
        if alert.alert || self.every {
            serde_json::to_writer(&mut self.out, &alert).map_err(io::Error::other)?;
            self.out.write_all(b"\n")?;
            self.out.flush()?;
        }
        Ok(Some(alert))
    }
}

impl<W: Write> RowSink for Scorer<'_, W> {
    type Error = io::Error;
    fn row(&mut self, row: &Row) -> io::Result<()> {
        self.push(row).map(|_| ())
    }
}
