//! One VM's labelled feature series: rows from a capture through `palisade-nad`, joined with
//! `labels.csv`.
//!
//! The series runs over every window from the first to the last that has a row or a label.
//! A labelled window without a row is a window without traffic (all features 0, as the spec
//! says); a window inside that range without a label is an error, as is a label that does
//! not start on a multiple of the window length. Nothing is guessed.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use palisade_nad::{extract_file, Config, Features, Position, Report, Row, RowSink, RunError, Seconds};

use palisade_nad::labels::{Labels, LabelsError};

/// Number of features per window.
pub const F: usize = Features::COUNT;

/// Feature names in column (and model input) order.
pub const FEATURE_NAMES: [&str; F] = Features::NAMES;

/// A labelled, hole-free series of windows.
#[derive(Debug, Clone)]
pub struct Series {
    /// Window length.
    pub window: Seconds,
    /// Start of each window, ns since the epoch (consecutive multiples of the window length).
    pub starts: Vec<u64>,
    /// Features of each window.
    pub features: Vec<[f64; F]>,
    /// 1 abnormal, 0 normal.
    pub labels: Vec<u8>,
    /// Attack kind of each window, if named.
    pub attacks: Vec<Option<String>>,
}

/// The data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Feature extraction failed.
    #[error("cannot compute features from the capture")]
    Features(#[source] RunError),
    /// The labels file is unusable.
    #[error(transparent)]
    Labels(#[from] LabelsError),
    /// No label at all.
    #[error("{path} labels no window")]
    NoLabels {
        /// The labels file.
        path: PathBuf,
    },
    /// A label off the window grid.
    #[error("{path}: window_start {start} is not a multiple of the window length {window} s")]
    Misaligned {
        /// The labels file.
        path: PathBuf,
        /// The label's window start (seconds).
        start: String,
        /// The window length (seconds).
        window: String,
    },
    /// The series would be absurdly long (a stray timestamp).
    #[error("{path}: the windows run from {first} to {last}, {windows} windows; more than the {MAX_WINDOWS} accepted (a stray timestamp?)")]
    Span {
        /// The labels file.
        path: PathBuf,
        /// First window (seconds).
        first: String,
        /// Last window (seconds).
        last: String,
        /// Windows in between.
        windows: u64,
    },
    /// A window of the series has no label.
    #[error("{path} has no label for window {start} ({missing} windows between the first and the last labelled or captured window have none)")]
    Unlabelled {
        /// The labels file.
        path: PathBuf,
        /// The first unlabelled window (seconds).
        start: String,
        /// How many lack one.
        missing: usize,
    },
}

/// The longest series accepted (about 95 years of 1-minute windows).
pub const MAX_WINDOWS: u64 = 50_000_000;

/// Collects one VM's rows.
#[derive(Debug, Default)]
struct Collect(Vec<Row>);

impl RowSink for Collect {
    type Error = io::Error;
    fn row(&mut self, row: &Row) -> Result<(), io::Error> {
        self.0.push(*row);
        Ok(())
    }
}

/// Computes `vm`'s rows from `pcap` (windows of `window`) and joins them with `labels`.
/// Returns the series and what the extractor saw (its warnings are worth showing); `progress`
/// hears how far the pass over the capture has got.
pub fn load(
    pcap: &Path,
    labels_path: &Path,
    vm: IpAddr,
    window: Seconds,
    progress: &mut dyn FnMut(Position),
) -> Result<(Series, Report), DataError> {
    let labels = Labels::read(labels_path)?;
    let cfg = Config { vms: vec![vm], window, reorder: Seconds::from_secs(1), series: palisade_nad::Series::Bounded };
    let mut rows = Collect::default();
    let report = extract_file(pcap, &cfg, &mut rows, progress).map_err(DataError::Features)?;
    let series = join(&rows.0, &labels, window, labels_path)?;
    Ok((series, report))
}

/// Joins rows (one VM, any order) with labels; see the module docs.
pub fn join(rows: &[Row], labels: &Labels, window: Seconds, labels_path: &Path) -> Result<Series, DataError> {
    let w = window.as_nanos();
    let path = || labels_path.to_owned();
    let secs = |ns: u64| window.format_instant(ns);
    let (Some(&lmin), Some(&lmax)) = (labels.by_start.keys().next(), labels.by_start.keys().next_back()) else {
        return Err(DataError::NoLabels { path: path() });
    };
    if let Some(&bad) = labels.by_start.keys().find(|&&s| w == 0 || s % w != 0) {
        return Err(DataError::Misaligned { path: path(), start: secs(bad), window: secs(w) });
    }
    let rmin = rows.iter().map(|r| r.window_start_ns).min().unwrap_or(lmin);
    let rmax = rows.iter().map(|r| r.window_start_ns).max().unwrap_or(lmax);
    let (first, last) = (lmin.min(rmin), lmax.max(rmax));
    let n = (last - first) / w + 1;
    if n > MAX_WINDOWS {
        return Err(DataError::Span { path: path(), first: secs(first), last: secs(last), windows: n });
    }
    let n = n as usize;
    let mut s =
        Series { window, starts: Vec::new(), features: vec![[0.0; F]; n], labels: Vec::new(), attacks: Vec::new() };
    for r in rows {
        s.features[((r.window_start_ns - first) / w) as usize] = r.features.values();
    }
    let mut missing = Vec::new();
    for k in 0..n {
        let start = first + k as u64 * w;
        s.starts.push(start);
        match labels.by_start.get(&start) {
            Some(l) => {
                s.labels.push(u8::from(l.abnormal));
                s.attacks.push(l.attack.clone().or_else(|| l.abnormal.then(|| "unnamed".to_owned())));
            }
            None => {
                missing.push(start);
                s.labels.push(0);
                s.attacks.push(None);
            }
        }
    }
    if let Some(&start) = missing.first() {
        return Err(DataError::Unlabelled { path: path(), start: secs(start), missing: missing.len() });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(start_s: u64, pps: f64) -> Row {
        let features = Features { pps, ..Features::default() };
        Row { vm_index: 0, vm: "10.0.0.5".parse().unwrap(), window_start_ns: start_s * 1_000_000_000, features }
    }

    fn labels(text: &str) -> Labels {
        Labels::parse(text.as_bytes(), Path::new("l.csv")).unwrap()
    }

    #[test]
    fn labelled_windows_without_rows_are_zero_and_attacks_are_kept() {
        let l = labels("window_start,label,attack\n60,0,\n120,0,\n180,1,syn_flood\n240,1,\n");
        let s = join(&[row(120, 5.0), row(180, 900.0)], &l, Seconds::from_secs(60), Path::new("l.csv")).unwrap();
        assert_eq!(s.starts, [60e9 as u64, 120e9 as u64, 180e9 as u64, 240e9 as u64]);
        assert_eq!(s.features.iter().map(|f| f[5]).collect::<Vec<_>>(), [0.0, 5.0, 900.0, 0.0]);
        assert_eq!(s.labels, [0, 0, 1, 1]);
        assert_eq!(s.attacks[2].as_deref(), Some("syn_flood"));
        assert_eq!(s.attacks[3].as_deref(), Some("unnamed"));
    }

    #[test]
    fn a_row_without_label_is_an_error_naming_the_window() {
        let l = labels("window_start,label,attack\n60,0,\n");
        let e = join(&[row(60, 1.0), row(180, 1.0)], &l, Seconds::from_secs(60), Path::new("l.csv")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "l.csv has no label for window 120 (2 windows between the first and the last labelled or captured window have none)"
        );
    }

    #[test]
    fn a_label_off_the_window_grid_is_an_error() {
        let l = labels("window_start,label,attack\n90,0,\n");
        let e = join(&[], &l, Seconds::from_secs(60), Path::new("l.csv")).unwrap_err();
        assert!(matches!(e, DataError::Misaligned { .. }), "{e}");
    }
}
