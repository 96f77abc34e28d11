//! A whole pass over a capture: read, decode, extract, report.

use std::convert::Infallible;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::capture::CaptureReader;
use crate::error::{ReadError, RunError};
use crate::features::{Config, Extractor, Row, RowSink};
use crate::progress::Progress;
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

/// Runs the extractor over every packet of `reader`, rows to `sink`.
pub fn extract<R: Read, S: RowSink>(
    reader: &mut CaptureReader<R>,
    cfg: &Config,
    sink: &mut S,
    progress: &Progress,
) -> Result<Report, PassError<S::Error>>
where
    S::Error: std::error::Error + 'static,
{
    let mut ex = Extractor::new(cfg)?;
    let mut n: u64 = 0;
    while let Some(frame) = reader.next_frame().map_err(PassError::Read)? {
        ex.push_frame(&frame, sink).map_err(PassError::Sink)?;
        n += 1;
        if n & 0xffff == 0 {
            progress.update(reader.offset(), n);
        }
    }
    progress.update(reader.offset(), n);
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
    let report = extract(&mut reader, cfg, &mut rows, &Progress::hidden())?;
    Ok((rows, report))
}

/// Opens a capture file and reads its header; also returns the file's size (for progress).
pub fn open_file(path: &Path) -> Result<(CaptureReader<File>, u64), RunError> {
    let file = File::open(path).map_err(|source| RunError::Open { path: path.to_owned(), source })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let reader = CaptureReader::new(file).map_err(|source| RunError::Read { path: path.to_owned(), source })?;
    Ok((reader, size))
}

/// Runs the extractor over a capture file, rows to `sink`, with progress on a terminal.
pub fn extract_file<S: RowSink<Error = std::io::Error>>(
    path: &Path,
    cfg: &Config,
    sink: &mut S,
) -> Result<Report, RunError> {
    Extractor::new(cfg)?;
    let (mut reader, size) = open_file(path)?;
    let progress = Progress::for_file(size);
    let result = extract(&mut reader, cfg, sink, &progress);
    progress.finish();
    match result {
        Ok(r) => Ok(r),
        Err(PassError::Read(source)) => Err(RunError::Read { path: path.to_owned(), source }),
        Err(PassError::Sink(source)) => Err(RunError::Write { source }),
        Err(PassError::Config(e)) => Err(e.into()),
    }
}
