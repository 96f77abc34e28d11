//! Palisade's network anomaly detector (issue #6): LSTM-NAD over the 11 traffic features of
//! `palisade-nad`, its two baselines, training, evaluation and the model file.
//! Owns the network, the metrics and the model files; not feature extraction (`palisade-nad`),
//! nor the command line (`palisade nad train|eval|detect`, parsed and printed by `palisade`).

#![forbid(unsafe_code)]

pub mod baseline;
pub mod data;
pub mod detect;
pub mod detector;
pub mod metrics;
pub mod nn;
pub mod norm;
pub mod plot;
pub mod store;
pub mod train;
pub mod watch;
pub mod windows;
