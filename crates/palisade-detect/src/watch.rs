//! Live detection for the controller: one thread per watched VM captures its switch port,
//! cuts the traffic into the model's windows and scores each as it closes; alerts go to a
//! callback (the controller's event stream and store).
//!
//! ```text
//!  WatchSpec ─► thread: load model ─► open capture ─► extractor ─► Scorer ─► on_alert(Alert)
//!                  ▲ (retries every RETRY while the model or the port is missing)   │
//!  Watch::state() ◄──────────── phase, windows scored, alerts ◄────────────────────┘
//! ```
//!
//! A watcher that cannot start (no model, no such port yet) says why in its state and tries
//! again; it never takes the controller down. Stopping one takes at most one capture tick.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use palisade_nad::live::LiveOptions;
use palisade_nad::{Config, Row, RowSink, Seconds};

use crate::detect::{Alert, Scorer};
use crate::detector::Model;
use crate::store;

/// How long a watcher waits before trying again to load its model or open its port.
pub const RETRY: Duration = Duration::from_secs(2);

/// Reorder allowance of live windows: a window is scored this long after its end.
const REORDER_MS: u64 = 250;

/// What one watcher watches.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSpec {
    /// The interface to capture on (the VM's switch port).
    pub iface: String,
    /// The VM's address (its traffic is the one counted).
    pub ip: IpAddr,
    /// The model directory (`palisade nad train --model`).
    pub model_dir: PathBuf,
    /// Alert threshold instead of the model's own.
    pub threshold: Option<f64>,
}

pub use palisade_api::alerts::{Phase, WatchState};

/// Takes each alert as it is raised (called on the watcher's thread).
pub type OnAlert = Arc<dyn Fn(&Alert) + Send + Sync>;

/// One running watcher.
pub struct Watch {
    spec: WatchSpec,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<WatchState>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("spec", &self.spec).field("state", &self.state()).finish()
    }
}

impl Watch {
    /// Starts watching on a new thread.
    pub fn start(spec: WatchSpec, on_alert: OnAlert) -> std::io::Result<Watch> {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(WatchState {
            phase: Phase::Starting,
            window: None,
            threshold: None,
            windows: 0,
            alerts: 0,
            drops: 0,
        }));
        let thread = {
            let (spec, stop, state) = (spec.clone(), stop.clone(), state.clone());
            std::thread::Builder::new()
                .name(format!("nad-{}", spec.iface))
                .spawn(move || watch(&spec, &stop, &state, &on_alert))?
        };
        Ok(Watch { spec, stop, state, thread: Some(thread) })
    }

    /// What it watches.
    pub fn spec(&self) -> &WatchSpec {
        &self.spec
    }

    /// Its state now.
    pub fn state(&self) -> WatchState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks it to stop without waiting.
    pub fn signal_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.signal_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn set_phase(state: &Mutex<WatchState>, phase: Phase) {
    state.lock().unwrap_or_else(|e| e.into_inner()).phase = phase;
}

/// Sleeps up to `d`, waking early when asked to stop; true if asked to stop.
fn pause(stop: &AtomicBool, d: Duration) -> bool {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < d {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(step);
        slept += step;
    }
    stop.load(Ordering::Relaxed)
}

/// Loads the model in `dir` with `threshold` (if any) instead of its own, and its window length.
pub fn load_model(dir: &Path, threshold: Option<f64>) -> Result<(Model, Seconds), String> {
    let mut model = store::load(dir).map_err(|e| format!("cannot load the model: {e}"))?;
    let window = model.window().map_err(|e| format!("{e} (`{}`)", model.meta.window))?;
    if let Some(t) = threshold {
        model.meta.threshold = t;
    }
    Ok((model, window))
}

fn watch(spec: &WatchSpec, stop: &AtomicBool, state: &Mutex<WatchState>, on_alert: &OnAlert) {
    let (model, window) = loop {
        match load_model(&spec.model_dir, spec.threshold) {
            Ok(m) => break m,
            Err(reason) => {
                set_phase(state, Phase::Waiting(reason));
                if pause(stop, RETRY) {
                    set_phase(state, Phase::Stopped);
                    return;
                }
            }
        }
    };
    {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.window = Some(model.meta.window.clone());
        s.threshold = Some(model.meta.threshold);
    }
    let cfg = Config {
        vms: vec![spec.ip],
        window,
        reorder: Seconds::from_nanos(REORDER_MS * 1_000_000),
        series: palisade_nad::Series::Open,
    };
    while !stop.load(Ordering::Relaxed) {
        let mut sink = Alerting { scorer: Scorer::new(&model, window, std::io::sink(), false), state, on_alert };
        let mut src = match palisade_nad::live::Pcap::open(&LiveOptions::new(&spec.iface)) {
            Ok(src) => src,
            Err(e) => {
                set_phase(state, Phase::Waiting(format!("cannot capture on {}: {e}", spec.iface)));
                if pause(stop, RETRY) {
                    break;
                }
                continue;
            }
        };
        set_phase(state, Phase::Running);
        let clock = palisade_nad::live::SystemClock;
        match palisade_nad::live::run(&mut src, &clock, None, &cfg, &mut sink, stop) {
            Ok(report) => {
                state.lock().unwrap_or_else(|e| e.into_inner()).drops = report.kernel_drops.unwrap_or(0);
            }
            Err(e) => {
                set_phase(state, Phase::Waiting(format!("capture on {} failed: {e}", spec.iface)));
                if pause(stop, RETRY) {
                    break;
                }
            }
        }
    }
    set_phase(state, Phase::Stopped);
}

/// Scores rows and hands alerts on, counting both in the watcher's state.
struct Alerting<'a> {
    scorer: Scorer<'a, std::io::Sink>,
    state: &'a Mutex<WatchState>,
    on_alert: &'a OnAlert,
}

impl RowSink for Alerting<'_> {
    type Error = std::io::Error;

    fn row(&mut self, row: &Row) -> std::io::Result<()> {
        let Some(scored) = self.scorer.push(row)? else { return Ok(()) };
        {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.windows += 1;
            s.alerts += u64::from(scored.alert);
        }
        if scored.alert {
            (self.on_alert)(&scored);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watcher_without_its_model_waits_and_says_why_then_stops_promptly() {
        let dir = tempfile::tempdir().unwrap();
        let spec = WatchSpec {
            iface: "lo".into(),
            ip: "127.0.0.1".parse().unwrap(),
            model_dir: dir.path().join("missing"),
            threshold: None,
        };
        let w = Watch::start(spec, Arc::new(|_: &Alert| {})).unwrap();
        let t0 = std::time::Instant::now();
        while matches!(w.state().phase, Phase::Starting) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        match w.state().phase {
            Phase::Waiting(reason) => assert!(reason.contains("cannot load the model"), "{reason}"),
            other => panic!("expected waiting, got {other:?}"),
        }
        let t0 = std::time::Instant::now();
        drop(w);
        assert!(t0.elapsed() < Duration::from_secs(1), "stopping took {:?}", t0.elapsed());
    }
}
