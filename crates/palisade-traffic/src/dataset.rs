//! What every dataset directory holds, whichever generator made it (the synthetic one in
//! [`crate::synth`], the lab run in [`crate::run`]): `labels.csv` in palisade-nad's format
//! ([`palisade_nad::labels`]) and a `dataset.json` that starts with a [`DatasetHeader`].

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

/// Writes `value` to `path` as pretty-printed JSON with a final newline.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::from)?;
    text.push('\n');
    std::fs::write(path, text)
}
