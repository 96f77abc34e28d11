//! The detectors LSTM-NAD is compared with, on the same windows, split and metrics.

pub mod iforest;
pub mod stability;

pub use iforest::IsolationForest;
pub use stability::Stability;
