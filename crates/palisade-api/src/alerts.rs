//! Anomaly alerts and the live detectors that raise them.

use serde::{Deserialize, Serialize};

/// One feature's deviation in an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deviation {
    /// Feature name (as in `palisade nad features`).
    pub feature: String,
    /// The window's value.
    pub value: f64,
    /// Standard deviations from the training mean (after `log1p` where the model uses it).
    pub z: f64,
}

/// An anomaly alert, as the event stream, the store and the API carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Always `anomaly` (tells alerts from monitor events in the events file).
    pub kind: String,
    /// The store's id (`after=` pages by it); 0 before it is stored.
    #[serde(default)]
    pub id: u64,
    /// `tenant/name`.
    pub vm: String,
    /// The deciding policy.
    pub policy: String,
    /// The model's name.
    pub model: String,
    /// The window's start, Unix seconds (with fraction where the window has one).
    pub window_start: String,
    /// The window's length in seconds.
    pub window: String,
    /// LSTM-NAD's score (0-1).
    pub score: f64,
    /// The threshold it reached.
    pub threshold: f64,
    /// The features furthest from their training mean.
    pub top_features: Vec<Deviation>,
}

/// Stored anomaly alerts, oldest first (`GET /v1/alerts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertPage {
    /// The alerts.
    pub alerts: Vec<AlertRecord>,
    /// The id to ask `after=` next time.
    pub last_id: u64,
}

/// Where a watcher stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "phase", content = "reason")]
pub enum Phase {
    /// Loading the model and opening the port.
    Starting,
    /// Capturing and scoring.
    Running,
    /// Cannot run yet; tries again every `palisade_detect::watch::RETRY`.
    Waiting(String),
    /// Stopped.
    Stopped,
}

impl Phase {
    /// The word the API uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Waiting(_) => "waiting",
            Phase::Stopped => "stopped",
        }
    }

    /// Why it waits, when it does.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Phase::Waiting(why) => Some(why),
            Phase::Starting | Phase::Running | Phase::Stopped => None,
        }
    }
}

/// A watcher's state as the controller shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchState {
    /// Where it stands.
    #[serde(flatten)]
    pub phase: Phase,
    /// The model's window length in seconds, once loaded.
    pub window: Option<String>,
    /// The threshold in force, once loaded.
    pub threshold: Option<f64>,
    /// Windows scored since it started.
    pub windows: u64,
    /// Alerts raised since it started.
    pub alerts: u64,
    /// Packets the kernel dropped before the capture saw them (last capture run).
    pub drops: u64,
}

/// A live detector (`GET /v1/detectors`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorStatus {
    /// `tenant/name`.
    pub vm: String,
    /// The deciding policy.
    pub policy: String,
    /// The model's name.
    pub model: String,
    /// The switch port captured, as the inventory names it.
    pub port: String,
    /// Phase, counters, window and threshold in force.
    #[serde(flatten)]
    pub state: WatchState,
}
