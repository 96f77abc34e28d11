//! Live capture: each window's rows are written as soon as the window closes (its end plus the
//! reorder allowance has passed on the clock), whether or not packets arrive.
//!
//! The capture sits behind [`LiveSource`]: [`Pcap`] is the real one (libpcap), and tests drive
//! [`run`] with a scripted source and clock.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::capture::{Frame, LinkType, ReadStats};
use crate::error::RunError;
use crate::features::{Config, Extractor, RowSink, Series};
use crate::report::Report;

/// Longest wait for packets before looking at the clock again (also libpcap's block timeout).
const TICK_MS: u16 = 50;

/// Where live packets come from.
pub trait LiveSource {
    /// Link type of every frame.
    fn link(&self) -> LinkType;
    /// The next frame if one is ready; otherwise waits up to one tick and returns `None`.
    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, RunError>;
    /// Packets the kernel dropped, if known.
    fn drops(&mut self) -> Option<u64>;
}

/// Wall-clock time in nanoseconds since the epoch.
pub trait Clock {
    /// Now.
    fn now_ns(&self) -> u64;
}

/// The system clock (`CLOCK_REALTIME`, the clock kernel packet timestamps use).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    }
}

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

/// libpcap on an interface: its `TPACKET_V3` ring, read without blocking, and `poll` for one
/// tick when it is empty (a blocking read would sleep until a packet comes, so an idle
/// interface would never close its windows).
pub struct Pcap {
    iface: String,
    cap: pcap::Capture<pcap::Active>,
    /// A duplicate of the capture's descriptor to `poll` on while `cap` lends out a packet.
    wake: OwnedFd,
    link: LinkType,
}

impl std::fmt::Debug for Pcap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pcap").field("iface", &self.iface).field("link", &self.link).finish()
    }
}

impl Pcap {
    /// Opens the interface (needs root or `CAP_NET_RAW`).
    pub fn open(opts: &LiveOptions) -> Result<Self, RunError> {
        let live = |source| RunError::Live { iface: opts.iface.clone(), source };
        let cap = pcap::Capture::from_device(opts.iface.as_str())
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
        let wake = cap
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| RunError::LiveDup { iface: opts.iface.clone(), source })?;
        Ok(Pcap { iface: opts.iface.clone(), cap, wake, link })
    }
}

impl LiveSource for Pcap {
    fn link(&self) -> LinkType {
        self.link
    }

    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, RunError> {
        match self.cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts;
                // Precision::Nano: tv_usec holds nanoseconds.
                let ts_ns = (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_usec as u64);
                Ok(Some(Frame { ts_ns, orig_len: p.header.len, link: self.link, data: p.data }))
            }
            Err(pcap::Error::TimeoutExpired) => {
                let mut fds = [PollFd::new(self.wake.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(TICK_MS)) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(None),
                    Err(source) => Err(RunError::LiveWait { iface: self.iface.clone(), source }),
                }
            }
            Err(source) => Err(RunError::Live { iface: self.iface.clone(), source }),
        }
    }

    fn drops(&mut self) -> Option<u64> {
        self.cap.stats().ok().map(|s| u64::from(s.dropped) + u64::from(s.if_dropped))
    }
}

/// Captures on an interface until `stop` is set or the duration ends; see [`run`].
pub fn capture<S: RowSink<Error = std::io::Error>>(
    opts: &LiveOptions,
    cfg: &Config,
    sink: &mut S,
    stop: &AtomicBool,
) -> Result<Report, RunError> {
    Extractor::new(cfg)?;
    let mut src = Pcap::open(opts)?;
    run(&mut src, &SystemClock, opts.duration, cfg, sink, stop)
}

/// Feeds a live source to the extractor, closing windows by `clock` between packets.
/// `cfg.series` is forced to [`Series::Open`]. Windows still open at the end were not completed
/// and are not emitted.
pub fn run<L: LiveSource, C: Clock, S: RowSink<Error = std::io::Error>>(
    src: &mut L,
    clock: &C,
    duration: Option<Duration>,
    cfg: &Config,
    sink: &mut S,
    stop: &AtomicBool,
) -> Result<Report, RunError> {
    let cfg = Config { series: Series::Open, ..cfg.clone() };
    let mut ex = Extractor::new(&cfg)?;
    let write = |source| RunError::Write { source };
    let started = clock.now_ns();
    let limit = duration.map(|d| started.saturating_add(d.as_nanos() as u64));
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) && limit.is_none_or(|l| clock.now_ns() < l) {
        match src.next_frame()? {
            Some(frame) => {
                ex.push_frame(&frame, sink).map_err(write)?;
                n += 1;
                if n.is_multiple_of(256) {
                    ex.advance(clock.now_ns(), sink).map_err(write)?;
                }
            }
            None => ex.advance(clock.now_ns(), sink).map_err(write)?,
        }
    }
    ex.advance(clock.now_ns(), sink).map_err(write)?;
    Ok(Report {
        read: ReadStats { packets: n, ..Default::default() },
        stop: None,
        extract: ex.stats().clone(),
        links: vec![src.link()],
        kernel_drops: src.drops(),
    })
}

#[cfg(test)]
mod tests;
