//! `labels.csv`: the ground truth of a capture, one line per time window: the one definition of
//! the format, read by the detector and written by every dataset maker.
//!
//! ```text
//! window_start,label,attack
//! 1700000000,0,
//! 1700000060,1,syn_flood
//! ```
//!
//! The parser is strict and never panics (the file is input like any other): the header must
//! be exactly `window_start,label,attack`; `window_start` is non-negative decimal seconds (at
//! most 9 decimals); `label` is `0` or `1`; `attack` is empty or a name of letters, digits,
//! `_`, `-` and `.`, and must be empty when `label` is `0`; no window twice. Lines may end in
//! CRLF; quoting is not part of the format. Errors name the file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Seconds;

/// The expected header.
pub const HEADER: &str = "window_start,label,attack";

/// One labelled window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Abnormal.
    pub abnormal: bool,
    /// The attack kind, if one is named.
    pub attack: Option<String>,
}

/// All labels of a file, by window start in nanoseconds since the epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    /// Window start (ns) -> label.
    pub by_start: BTreeMap<u64, Label>,
}

/// What is wrong with a labels file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelsProblem {
    /// Empty file.
    #[error("the file is empty; expected the header `{HEADER}`")]
    Empty,
    /// The first line is not the header.
    #[error("the header is `{0}`, expected `{HEADER}`")]
    Header(String),
    /// Not UTF-8.
    #[error("the line is not valid UTF-8")]
    NotUtf8,
    /// Wrong number of fields.
    #[error("expected 3 comma-separated fields (window_start,label,attack), found {0}")]
    Fields(usize),
    /// Bad window start.
    #[error("window_start `{0}` is not a non-negative number of seconds (at most 9 decimals)")]
    WindowStart(String),
    /// Bad label.
    #[error("label `{0}` is not 0 or 1")]
    Label(String),
    /// Bad attack name.
    #[error("attack `{0}` is not a name (letters, digits, `_`, `-`, `.`; quoting is not supported)")]
    Attack(String),
    /// A normal window with an attack.
    #[error("label 0 (normal) with attack `{0}`: a normal window names no attack")]
    NormalWithAttack(String),
    /// The same window again.
    #[error("window_start {0} appears twice (first on line {1})")]
    Duplicate(String, usize),
    /// A blank line before the end.
    #[error("blank line")]
    Blank,
}

/// A labels file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    /// Reading failed.
    #[error("cannot read labels file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing failed.
    #[error("cannot write labels file {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The content is wrong.
    #[error("{path}:{line}: {problem}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: LabelsProblem,
    },
}

impl Labels {
    /// Reads and parses a file.
    pub fn read(path: &Path) -> Result<Self, LabelsError> {
        let bytes = std::fs::read(path).map_err(|source| LabelsError::Read { path: path.to_owned(), source })?;
        Labels::parse(&bytes, path)
    }

    /// Parses file content; `path` is only used in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, LabelsError> {
        let bad = |line: usize, problem| LabelsError::Bad { path: path.to_owned(), line, problem };
        let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop(); // the final newline
        }
        let Some(first) = lines.first() else { return Err(bad(1, LabelsProblem::Empty)) };
        let header = std::str::from_utf8(first).map_err(|_| bad(1, LabelsProblem::NotUtf8))?;
        let header = header.strip_suffix('\r').unwrap_or(header);
        let header = header.strip_prefix('\u{feff}').unwrap_or(header);
        if header != HEADER {
            return Err(bad(1, LabelsProblem::Header(clip(header))));
        }
        let mut out = Labels::default();
        let mut first_line: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, raw) in lines.iter().enumerate().skip(1) {
            let n = i + 1;
            let line = std::str::from_utf8(raw).map_err(|_| bad(n, LabelsProblem::NotUtf8))?;
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                return Err(bad(n, LabelsProblem::Blank));
            }
            let fields: Vec<&str> = line.split(',').collect();
            let [start, label, attack] = fields[..] else { return Err(bad(n, LabelsProblem::Fields(fields.len()))) };
            let ns = start.parse::<Seconds>().map_err(|_| bad(n, LabelsProblem::WindowStart(clip(start))))?.as_nanos();
            let abnormal = match label {
                "0" => false,
                "1" => true,
                other => return Err(bad(n, LabelsProblem::Label(clip(other)))),
            };
            let name_ok = attack.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !name_ok {
                return Err(bad(n, LabelsProblem::Attack(clip(attack))));
            }
            if !abnormal && !attack.is_empty() {
                return Err(bad(n, LabelsProblem::NormalWithAttack(clip(attack))));
            }
            if let Some(&prev) = first_line.get(&ns) {
                return Err(bad(n, LabelsProblem::Duplicate(start.to_owned(), prev)));
            }
            first_line.insert(ns, n);
            let attack = (!attack.is_empty()).then(|| attack.to_owned());
            out.by_start.insert(ns, Label { abnormal, attack });
        }
        Ok(out)
    }
}

/// Writes `DIR/labels.csv`: the header, then one row per window from `start` (seconds) on,
/// `window` seconds apart: `T,1,KIND` where `labels` names a kind, else `T,0,`. Returns the
/// file's path.
pub fn write(dir: &Path, start: u64, window: u64, labels: &[Option<&str>]) -> Result<PathBuf, LabelsError> {
    use std::io::{BufWriter, Write};
    let path = dir.join("labels.csv");
    let failed = |source| LabelsError::Write { path: path.clone(), source };
    let mut w = BufWriter::new(std::fs::File::create(&path).map_err(failed)?);
    writeln!(w, "{HEADER}").map_err(failed)?;
    for (i, l) in labels.iter().enumerate() {
        let t = start + i as u64 * window;
        match l {
            Some(k) => writeln!(w, "{t},1,{k}"),
            None => writeln!(w, "{t},0,"),
        }
        .map_err(failed)?;
    }
    w.into_inner().map_err(|e| failed(e.into_error()))?.sync_all().map_err(failed)?;
    Ok(path)
}

/// Quotes at most 60 characters of a bad field.
fn clip(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Labels, LabelsError> {
        Labels::parse(s.as_bytes(), Path::new("l.csv"))
    }

    fn problem(s: &str) -> (usize, LabelsProblem) {
        match parse(s) {
            Err(LabelsError::Bad { line, problem, .. }) => (line, problem),
            other => panic!("expected a problem, got {other:?}"),
        }
    }

    #[test]
    fn reads_windows_labels_and_attacks() {
        let l = parse("window_start,label,attack\n60,0,\n120,1,syn_flood\r\n180.5,1,\n").unwrap();
        assert_eq!(l.by_start.len(), 3);
        assert_eq!(l.by_start[&60_000_000_000], Label { abnormal: false, attack: None });
        assert_eq!(l.by_start[&120_000_000_000], Label { abnormal: true, attack: Some("syn_flood".into()) });
        assert_eq!(l.by_start[&180_500_000_000], Label { abnormal: true, attack: None });
    }

    #[test]
    fn errors_name_the_line_and_what_is_wrong() {
        assert_eq!(problem(""), (1, LabelsProblem::Empty));
        assert_eq!(problem("start,label\n"), (1, LabelsProblem::Header("start,label".into())));
        assert_eq!(problem("window_start,label,attack\n60,0\n"), (2, LabelsProblem::Fields(2)));
        assert_eq!(problem("window_start,label,attack\n60,0,\n-5,0,\n"), (3, LabelsProblem::WindowStart("-5".into())));
        assert_eq!(problem("window_start,label,attack\n60,2,\n"), (2, LabelsProblem::Label("2".into())));
        assert_eq!(problem("window_start,label,attack\n60,1,\"x\"\n"), (2, LabelsProblem::Attack("\"x\"".into())));
        assert_eq!(
            problem("window_start,label,attack\n60,0,scan\n"),
            (2, LabelsProblem::NormalWithAttack("scan".into()))
        );
        assert_eq!(problem("window_start,label,attack\n60,0,\n60,1,\n"), (3, LabelsProblem::Duplicate("60".into(), 2)));
        assert_eq!(problem("window_start,label,attack\n60,0,\n\n120,0,\n"), (3, LabelsProblem::Blank));
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let e = Labels::parse(b"window_start,label,attack\n60,0,\xff\n", Path::new("l.csv")).unwrap_err();
        assert_eq!(e.to_string(), "l.csv:2: the line is not valid UTF-8");
    }

    #[test]
    fn seeded_mutations_never_panic_and_errors_point_at_a_real_line() {
        let seed = b"window_start,label,attack\r\n1700000000,0,\n1700000060,1,syn_flood\n1700000120.5,1,\n";
        // Which mutations, fixed by the seed.
        let mut rng = palisade_rng::Rng::new(6);
        let alphabet = b"0123456789,.-_\r\n\"ax\xff\xef\xbb\xbf ";
        let mut accepted = 0;
        for _ in 0..4000 {
            let mut b = seed.to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(b.len() + 1);
                match rng.below(3) {
                    0 if at < b.len() => b[at] = alphabet[rng.below(alphabet.len())],
                    1 => b.insert(at, alphabet[rng.below(alphabet.len())]),
                    _ => b.truncate(at),
                }
            }
            let lines = b.split(|&c| c == b'\n').count();
            match Labels::parse(&b, Path::new("m.csv")) {
                Ok(l) => {
                    accepted += 1;
                    assert!(l.by_start.values().all(|v| v.attack.as_ref().is_none_or(|a| v.abnormal && !a.is_empty())));
                }
                Err(LabelsError::Bad { line, .. }) => assert!(line >= 1 && line <= lines.max(1), "{line} of {lines}"),
                Err(e) => panic!("{e}"),
            }
        }
        assert!(accepted > 0 && accepted < 4000, "{accepted}");
    }
}
