//! What a lab run leaves in its directory: `capture.pcap` cut to the run's windows, `labels.csv`
//! and `dataset.json` (see [`crate::dataset`]: the synthetic dataset's shape where the two have
//! the same thing to say).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::net::Ipv4Addr;
use std::path::Path;

use palisade_nad::build::PcapWriter;
use palisade_nad::CaptureReader;
use serde::Serialize;

use crate::dataset::{DatasetHeader, KindCount, Part};
use crate::error::TrafficError;
use crate::plan::{Kind, Ran};

/// Everything `dataset.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Identity, span and split, as every `dataset.json` starts.
    #[serde(flatten)]
    pub header: DatasetHeader<Kind>,
    /// Length of one compressed day in seconds (one second stands for one minute by default).
    pub period: u64,
    /// Packets, bytes and windows.
    pub counts: Counts,
    /// Per kind: episodes and windows.
    pub kinds: BTreeMap<Kind, KindCount>,
    /// The benign side.
    pub benign: Benign,
    /// Every attack episode as it ran, in time order.
    pub episodes: Vec<Ran>,
}

/// Totals.
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    /// Packets in `capture.pcap`.
    pub packets: u64,
    /// Size of `capture.pcap` in bytes.
    pub capture_bytes: u64,
    /// Packets captured outside the span and left out.
    pub packets_outside: u64,
    /// Windows labelled 1.
    pub abnormal_windows: u64,
    /// Starts of the windows without a packet (the benign load never stops, so these are
    /// stalls of the machine or the switch; the features see them as they are).
    pub empty_windows: Vec<u64>,
    /// The training part (before `train_until`).
    pub train: Part<Kind>,
    /// The test part (from `train_until` on).
    pub test: Part<Kind>,
}

/// The benign load.
#[derive(Debug, Clone, Serialize)]
pub struct Benign {
    /// Requests per second at the daily peak (15 % of it at night).
    pub peak_rate: f64,
    /// Client addresses.
    pub clients: Vec<Ipv4Addr>,
    /// Requests made.
    pub requests: u64,
    /// Requests that got no answer.
    pub failed: u64,
    /// Requests and datagrams the services answered (benign and attack).
    pub served: u64,
}

/// What [`trim`] kept.
#[derive(Debug)]
pub struct Trimmed {
    /// Packets kept.
    pub kept: u64,
    /// Packets outside the span, left out.
    pub outside: u64,
    /// Packets per window.
    pub per_window: Vec<u64>,
}

/// Copies the packets of `raw` stamped in `[start_ns, end_ns)` to `out`, counting them per
/// window of `window_ns`.
pub fn trim(raw: &Path, out: &Path, start_ns: u64, end_ns: u64, window_ns: u64) -> Result<Trimmed, TrafficError> {
    let read_err = |source| TrafficError::ReadCapture { path: raw.to_owned(), source };
    let file = File::open(raw).map_err(|source| TrafficError::Write { path: raw.to_owned(), source })?;
    let mut reader = CaptureReader::new(std::io::BufReader::new(file)).map_err(read_err)?;
    let link = reader.link_types().first().copied().unwrap_or(palisade_nad::LinkType::ETHERNET);
    let failed = |source| TrafficError::Write { path: out.to_owned(), source };
    let f = File::create(out).map_err(failed)?;
    let mut w = PcapWriter::new(BufWriter::new(f), link, 512, false, false).map_err(failed)?;
    let mut t = Trimmed { kept: 0, outside: 0, per_window: vec![0; ((end_ns - start_ns) / window_ns) as usize] };
    while let Some(frame) = reader.next_frame().map_err(read_err)? {
        if (start_ns..end_ns).contains(&frame.ts_ns) {
            w.packet(frame.ts_ns, frame.orig_len, frame.data).map_err(failed)?;
            t.kept += 1;
            if let Some(n) = t.per_window.get_mut(((frame.ts_ns - start_ns) / window_ns) as usize) {
                *n += 1;
            }
        } else {
            t.outside += 1;
        }
    }
    w.into_inner().map_err(failed)?.into_inner().map_err(|e| failed(e.into_error()))?.sync_all().map_err(failed)?;
    Ok(t)
}

/// `dataset.json`, pretty-printed.
pub fn write_json(dir: &Path, summary: &Summary) -> Result<(), TrafficError> {
    let path = dir.join("dataset.json");
    crate::dataset::write_json(&path, summary).map_err(|source| TrafficError::Write { path, source })
}
