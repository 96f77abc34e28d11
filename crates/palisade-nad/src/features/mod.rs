//! The extractor: many VMs in one pass over time-ordered packets, one row per VM per window.
//!
//! Window `k` is `[k*w, (k+1)*w)` in Unix time. A window closes once a packet at least
//! `reorder` past its end has been seen (or, live, once the clock passes that point); packets
//! for a closed window are counted as late and reported. A VM's rows run from the window of its
//! first counted packet to that of its last, empty windows in between as zeros
//! ([`Series::Bounded`]); a live capture has no last packet, so it emits every closed window
//! after the first ([`Series::Open`]).

mod output;
mod seconds;
mod window;

use std::collections::VecDeque;
use std::net::IpAddr;

use rustc_hash::FxHashMap;

pub use output::{Format, RowWriter};
pub use seconds::{BadSeconds, Seconds};
pub use window::Features;

use crate::capture::Frame;
use crate::decode::{self, addr_key, Decoded, Family, Malformed, NotIp};
use crate::error::ConfigError;
use window::WindowCounts;

/// Which empty windows get rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// From the first counted packet's window to the last's (a capture file).
    Bounded,
    /// Every closed window from the first counted packet's on (a live capture).
    Open,
}

/// What to extract.
#[derive(Debug, Clone)]
pub struct Config {
    /// The monitored VMs, by address. Output rows follow this order within a window.
    pub vms: Vec<IpAddr>,
    /// Window length `w`.
    pub window: Seconds,
    /// How far behind the newest packet a window stays open for out-of-order packets.
    pub reorder: Seconds,
    /// Which empty windows get rows.
    pub series: Series,
}

/// One output row: a VM, a window, its features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// Position of the VM in [`Config::vms`].
    pub vm_index: usize,
    /// The VM.
    pub vm: IpAddr,
    /// `k * w`, in nanoseconds since the epoch.
    pub window_start_ns: u64,
    /// The features.
    pub features: Features,
}

/// Where rows go.
pub trait RowSink {
    /// Why a row could not be taken.
    type Error;
    /// Takes one row.
    fn row(&mut self, row: &Row) -> Result<(), Self::Error>;
}

impl RowSink for Vec<Row> {
    type Error = std::convert::Infallible;
    fn row(&mut self, row: &Row) -> Result<(), Self::Error> {
        self.push(*row);
        Ok(())
    }
}

/// What the extractor saw besides the features.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Frames given to the extractor.
    pub frames: u64,
    /// Bytes on the wire of those frames.
    pub wire_bytes: u64,
    /// Frames that were IP packets with readable addresses.
    pub ip_packets: u64,
    /// Packets counted for at least one VM.
    pub counted: u64,
    /// Malformed frames, by [`Malformed::index`] (whether or not they counted for a VM).
    pub malformed: [u64; Malformed::ALL.len()],
    /// Frames that are not IP (other protocols).
    pub not_ip: u64,
    /// IP frames inside more than two VLAN tags (not counted, by the spec).
    pub too_many_tags: u64,
    /// Frames of an unsupported link type.
    pub unsupported_link: u64,
    /// Counted packets that arrived after their window had closed (not in any row).
    pub late: u64,
    /// Rows emitted.
    pub rows: u64,
}

impl ExtractStats {
    /// All malformed frames.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }
}

#[derive(Debug)]
struct Vm {
    addr: IpAddr,
    open: VecDeque<(u64, WindowCounts)>,
    pool: Vec<WindowCounts>,
    emitted_through: Option<u64>,
}

/// Address -> VM index, by family; a short list is scanned, a long one hashed.
#[derive(Debug, Default)]
struct VmIndex {
    list: Vec<(u128, u32)>,
    map: FxHashMap<u128, u32>,
}

impl VmIndex {
    const SCAN: usize = 8;

    fn insert(&mut self, key: u128, idx: u32) {
        self.list.push((key, idx));
        self.map.insert(key, idx);
    }

    #[inline]
    fn get(&self, key: u128) -> Option<u32> {
        if self.list.len() <= Self::SCAN {
            self.list.iter().find(|(k, _)| *k == key).map(|&(_, i)| i)
        } else {
            self.map.get(&key).copied()
        }
    }
}

/// Computes rows from packets; see the module docs.
#[derive(Debug)]
pub struct Extractor {
    w: u64,
    window_s: f64,
    slack: u64,
    series: Series,
    v4: VmIndex,
    v6: VmIndex,
    vms: Vec<Vm>,
    /// Newest timestamp seen.
    max_ts: u64,
    /// Every window `<= closed_through` is closed.
    closed_through: Option<u64>,
    /// The smallest timestamp that closes another window.
    next_close_at: u64,
    /// Cached window of the previous packet: `[cur_start, cur_start + w)` is window `cur_k`.
    cur_k: u64,
    cur_start: u64,
    stats: ExtractStats,
}

impl Extractor {
    /// Checks the configuration.
    pub fn new(cfg: &Config) -> Result<Self, ConfigError> {
        if cfg.vms.is_empty() {
            return Err(ConfigError::NoVm);
        }
        let (mut v4, mut v6) = (VmIndex::default(), VmIndex::default());
        for (i, &addr) in cfg.vms.iter().enumerate() {
            if cfg.vms[..i].contains(&addr) {
                return Err(ConfigError::DuplicateVm(addr));
            }
            match addr_key(addr) {
                (Family::V4, k) => v4.insert(k, i as u32),
                (Family::V6, k) => v6.insert(k, i as u32),
            }
        }
        let w = cfg.window.as_nanos();
        if w == 0 {
            return Err(ConfigError::BadWindow("0".into()));
        }
        let vms = cfg
            .vms
            .iter()
            .map(|&addr| Vm { addr, open: VecDeque::new(), pool: Vec::new(), emitted_through: None })
            .collect();
        Ok(Extractor {
            w,
            window_s: cfg.window.as_secs_f64(),
            slack: cfg.reorder.as_nanos(),
            series: cfg.series,
            v4,
            v6,
            vms,
            max_ts: 0,
            closed_through: None,
            next_close_at: w.saturating_add(cfg.reorder.as_nanos()),
            cur_k: 0,
            cur_start: 0,
            stats: ExtractStats::default(),
        })
    }

    /// What has been seen so far.
    pub fn stats(&self) -> &ExtractStats {
        &self.stats
    }

    /// Decodes a frame and counts it.
    #[inline]
    pub fn push_frame<S: RowSink>(&mut self, f: &Frame<'_>, sink: &mut S) -> Result<(), S::Error> {
        let d = decode::decode(f.link, f.data);
        self.push(f.ts_ns, f.orig_len, &d, sink)
    }

    /// Counts a decoded packet of `wire_len` bytes seen at `ts_ns`; closes the windows that
    /// its time closes.
    #[inline]
    pub fn push<S: RowSink>(&mut self, ts_ns: u64, wire_len: u32, d: &Decoded, sink: &mut S) -> Result<(), S::Error> {
        self.stats.frames += 1;
        self.stats.wire_bytes += u64::from(wire_len);
        if ts_ns >= self.next_close_at {
            self.advance(ts_ns, sink)?;
        }
        self.max_ts = self.max_ts.max(ts_ns);
        let p = match d {
            Decoded::Ip(p) => p,
            Decoded::NotIp(n) => {
                match n {
                    NotIp::OtherProtocol => self.stats.not_ip += 1,
                    NotIp::TooManyTags => self.stats.too_many_tags += 1,
                    NotIp::UnsupportedLink => self.stats.unsupported_link += 1,
                }
                return Ok(());
            }
            Decoded::Malformed(m) => {
                self.stats.malformed[m.index()] += 1;
                return Ok(());
            }
        };
        self.stats.ip_packets += 1;
        if let Some(m) = p.malformed {
            self.stats.malformed[m.index()] += 1;
        }
        let index = match p.family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        };
        let (src_vm, dst_vm) = (index.get(p.src), index.get(p.dst));
        if src_vm.is_none() && dst_vm.is_none() {
            return Ok(());
        }
        let k = self.window_of(ts_ns);
        if self.closed_through.is_some_and(|c| k <= c) {
            self.stats.late += 1;
            return Ok(());
        }
        self.stats.counted += 1;
        let syn = p.transport.is_syn();
        if let Some(v) = dst_vm {
            // Inbound (and, when the source is the VM too, outbound: counted once).
            let port = p.transport.ports().map(|(_, dport)| dport);
            self.vms[v as usize].window(k).add(p.src, wire_len, syn, port);
        }
        if let Some(v) = src_vm.filter(|&s| Some(s) != dst_vm) {
            self.vms[v as usize].window(k).add(p.dst, wire_len, syn, None);
        }
        Ok(())
    }

    #[inline]
    fn window_of(&mut self, ts: u64) -> u64 {
        if ts.wrapping_sub(self.cur_start) >= self.w {
            self.cur_k = ts / self.w;
            self.cur_start = self.cur_k * self.w;
        }
        self.cur_k
    }

    /// Closes every window that ended at least `reorder` before `now_ns` (the newest packet's
    /// time, or the clock in a live capture), emitting its rows.
    pub fn advance<S: RowSink>(&mut self, now_ns: u64, sink: &mut S) -> Result<(), S::Error> {
        let edge = now_ns.saturating_sub(self.slack) / self.w;
        if edge == 0 {
            return Ok(());
        }
        let through = edge - 1;
        if self.closed_through.is_some_and(|c| through <= c) {
            return Ok(());
        }
        self.closed_through = Some(through);
        self.next_close_at = (edge + 1).saturating_mul(self.w).saturating_add(self.slack);
        self.close_through(through, sink)
    }

    /// Closes every open window (end of the capture) and returns the statistics.
    pub fn finish<S: RowSink>(mut self, sink: &mut S) -> Result<ExtractStats, S::Error> {
        let series = self.series;
        self.series = Series::Bounded;
        self.close_through(u64::MAX, sink)?;
        self.series = series;
        Ok(self.stats)
    }

    fn close_through<S: RowSink>(&mut self, through: u64, sink: &mut S) -> Result<(), S::Error> {
        for (i, vm) in self.vms.iter_mut().enumerate() {
            while vm.open.front().is_some_and(|(k, _)| *k <= through) {
                let Some((k, counts)) = vm.open.pop_front() else { break };
                let features = counts.features(self.window_s);
                emit_zeros(vm, i, self.w, k, sink, &mut self.stats)?;
                emit(vm, i, self.w, k, features, sink, &mut self.stats)?;
                let mut counts = counts;
                counts.clear();
                vm.pool.push(counts);
            }
            if self.series == Series::Open && vm.emitted_through.is_some() && through != u64::MAX {
                emit_zeros(vm, i, self.w, through + 1, sink, &mut self.stats)?;
            }
        }
        Ok(())
    }
}

/// Zero rows for the windows after the VM's last row and before `until`.
fn emit_zeros<S: RowSink>(
    vm: &mut Vm,
    i: usize,
    w: u64,
    until: u64,
    sink: &mut S,
    stats: &mut ExtractStats,
) -> Result<(), S::Error> {
    if let Some(last) = vm.emitted_through {
        for k in last + 1..until {
            emit(vm, i, w, k, Features::default(), sink, stats)?;
        }
    }
    Ok(())
}

fn emit<S: RowSink>(
    vm: &mut Vm,
    i: usize,
    w: u64,
    k: u64,
    features: Features,
    sink: &mut S,
    stats: &mut ExtractStats,
) -> Result<(), S::Error> {
    vm.emitted_through = Some(k);
    stats.rows += 1;
    sink.row(&Row { vm_index: i, vm: vm.addr, window_start_ns: k.saturating_mul(w), features })
}

impl Vm {
    /// The open window `k`, opened if needed (kept sorted; nearly always the newest).
    #[inline]
    fn window(&mut self, k: u64) -> &mut WindowCounts {
        let n = self.open.len();
        if n > 0 && self.open[n - 1].0 == k {
            return &mut self.open[n - 1].1;
        }
        let pos = match self.open.iter().rposition(|(ok, _)| *ok <= k) {
            Some(p) if self.open[p].0 == k => p,
            Some(p) => self.insert(p + 1, k),
            None => self.insert(0, k),
        };
        &mut self.open[pos].1
    }

    #[cold]
    fn insert(&mut self, at: usize, k: u64) -> usize {
        let counts = self.pool.pop().unwrap_or_default();
        self.open.insert(at, (k, counts));
        at
    }
}

#[cfg(test)]
mod tests;
