//! A whole pass over a capture: read, decode, extract, report.

use std::convert::Infallible;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::capture::CaptureReader;
use crate::error::{ReadError, RunError};
use crate::features::{Config, Extractor, Row, RowSink};
use crate::report::Report;

/// A pass failed: the capture could not be read, or the sink refused a row.
#[derive(Debug, thiserror::Error)]
pub enum PassError<E: std::error::Error + 'static> {
    /// Reading failed (an I/O error; damage inside the file is reported, not an error).
    #[error("reading the capture failed")]
    Read(#[source] ReadError),
    /// The sink failed.
    #[error("the row sink failed")]
    Sink(#[source] E),
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::error::ConfigError),
}

impl PassError<io::Error> {
    /// The failure of a pass over the capture file `path` whose rows went to a writer.
    pub fn at(self, path: &Path) -> RunError {
        match self {
            PassError::Read(source) => RunError::Read { path: path.to_owned(), source },
            PassError::Sink(source) => RunError::Write { source },
            PassError::Config(e) => e.into(),
        }
    }
}

/// How far a pass has got, for a progress display: reported every 65,536 packets and once at
/// the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Bytes of input consumed.
    pub bytes: u64,
    /// The input's size in bytes, when known (a file).
    pub total_bytes: Option<u64>,
    /// Packets read.
    pub packets: u64,
}

/// Runs the extractor over every packet of `reader`, rows to `sink`; `progress` hears how far
/// it has got.
pub fn extract<R: Read, S: RowSink>(
    reader: &mut CaptureReader<R>,
    cfg: &Config,
    sink: &mut S,
    progress: &mut dyn FnMut(Position),
) -> Result<Report, PassError<S::Error>>
where
    S::Error: std::error::Error + 'static,
{
    let mut ex = Extractor::new(cfg)?;
    let mut n: u64 = 0;
    let at = |reader: &CaptureReader<R>, packets| Position { bytes: reader.offset(), total_bytes: None, packets };
    while let Some(frame) = reader.next_frame().map_err(PassError::Read)? {
        ex.push_frame(&frame, sink).map_err(PassError::Sink)?;
        n += 1;
        if n & 0xffff == 0 {
            progress(at(reader, n));
        }
    }
    progress(at(reader, n));
    let extract = ex.finish(sink).map_err(PassError::Sink)?;
    Ok(Report {
        read: reader.stats().clone(),
        stop: reader.stop().cloned(),
        extract,
        links: reader.link_types(),
        kernel_drops: None,
    })
}

/// Runs the extractor over a capture held in memory; for tests and fuzzing.
pub fn extract_bytes(bytes: &[u8], cfg: &Config) -> Result<(Vec<Row>, Report), PassError<Infallible>> {
    let mut reader = CaptureReader::new(bytes).map_err(PassError::Read)?;
    let mut rows = Vec::new();
    let report = extract(&mut reader, cfg, &mut rows, &mut |_| {})?;
    Ok((rows, report))
}

/// Opens a capture file and reads its header; also returns the file's size (for progress).
pub fn open_file(path: &Path) -> Result<(CaptureReader<File>, u64), RunError> {
    let file = File::open(path).map_err(|source| RunError::Open { path: path.to_owned(), source })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let reader = CaptureReader::new(file).map_err(|source| RunError::Read { path: path.to_owned(), source })?;
    Ok((reader, size))
}

/// Runs the extractor over a capture file, rows to `sink`; `progress` hears how far it has
/// got, with the file's size as the total.
pub fn extract_file<S: RowSink<Error = io::Error>>(
    path: &Path,
    cfg: &Config,
    sink: &mut S,
    progress: &mut dyn FnMut(Position),
) -> Result<Report, RunError> {
    Extractor::new(cfg)?;
    let (mut reader, size) = open_file(path)?;
    let mut with_total = |p: Position| progress(Position { total_bytes: Some(size), ..p });
    extract(&mut reader, cfg, sink, &mut with_total).map_err(|e| e.at(path))
}
