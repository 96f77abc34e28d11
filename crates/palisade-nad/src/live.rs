//! Live capture through libpcap: each window's rows are written as soon as the window closes
//! (its end plus the reorder allowance has passed on the clock), whether or not packets arrive.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::capture::{Frame, LinkType};
use crate::error::RunError;
use crate::features::{Config, Extractor, RowSink, Series};
use crate::report::Report;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Longest wait for packets before looking at the clock again (also libpcap's block timeout).
const TICK_MS: u16 = 50;

/// How a live capture is opened.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Interface name (`any` for all, in Linux cooked form).
    pub iface: String,
    /// Kernel ring size in bytes.
    pub buffer_bytes: i32,
    /// Bytes kept per packet: headers are all the features need.
    pub snaplen: i32,
    /// Stop after this long (`None`: until `stop` is set).
    pub duration: Option<Duration>,
}

impl LiveOptions {
    /// Defaults for an interface: 64 MiB ring, 256-byte snap length, no time limit.
    pub fn new(iface: &str) -> Self {
        LiveOptions { iface: iface.to_owned(), buffer_bytes: 64 << 20, snaplen: 256, duration: None }
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Captures on an interface until `stop` is set or the duration ends, writing rows as windows
/// close. `cfg.series` is forced to [`Series::Open`]. Windows still open at the end were not
/// completed and are not emitted.
pub fn capture<S: RowSink<Error = std::io::Error>>(
    opts: &LiveOptions,
    cfg: &Config,
    sink: &mut S,
    stop: &AtomicBool,
) -> Result<Report, RunError> {
    let cfg = Config { series: Series::Open, ..cfg.clone() };
    let mut ex = Extractor::new(&cfg)?;
    let live = |source| RunError::Live { iface: opts.iface.clone(), source };
    let mut cap = pcap::Capture::from_device(opts.iface.as_str())
        .map_err(live)?
        .promisc(true)
        .snaplen(opts.snaplen)
        .buffer_size(opts.buffer_bytes)
        .timeout(i32::from(TICK_MS))
        .precision(pcap::Precision::Nano)
        .open()
        .and_then(|c| c.setnonblock())
        .map_err(live)?;
    let link = LinkType(cap.get_datalink().0 as u16);
    if !link.is_supported() {
        return Err(RunError::LiveLink { iface: opts.iface.clone(), link });
    }
    let write = |source| RunError::Write { source };
    let started = Instant::now();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) && opts.duration.is_none_or(|d| started.elapsed() < d) {
        match cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts;
                let ts_ns = (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_usec as u64);
                let frame = Frame { ts_ns, orig_len: p.header.len, link, data: p.data };
                ex.push_frame(&frame, sink).map_err(write)?;
                n += 1;
                if n.is_multiple_of(256) {
                    ex.advance(now_ns(), sink).map_err(write)?;
                }
            }
            Err(pcap::Error::TimeoutExpired) => {
                // The ring is empty. Close what the clock closed, then wait for the kernel to
                // hand over a block — but not longer than a tick, so windows close on time even
                // when no packet comes (a blocking read would sleep until one does).
                ex.advance(now_ns(), sink).map_err(write)?;
                let mut fds = [PollFd::new(cap.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(TICK_MS)) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(source) => return Err(RunError::LiveWait { iface: opts.iface.clone(), source }),
                }
            }
            Err(e) => return Err(live(e)),
        }
    }
    ex.advance(now_ns(), sink).map_err(write)?;
    let kernel_drops = cap.stats().ok().map(|s| u64::from(s.dropped) + u64::from(s.if_dropped));
    Ok(Report {
        read: crate::capture::ReadStats { packets: n, ..Default::default() },
        stop: None,
        extract: ex.stats().clone(),
        links: vec![link],
        kernel_drops,
    })
}
