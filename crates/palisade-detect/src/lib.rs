//! Palisade's network anomaly detector (issue #6): LSTM-NAD over the 11 traffic features of
//! `palisade-nad`, its two baselines, training, evaluation and the model file.
//! Owns the network, the metrics and `palisade nad train|eval`; not feature extraction.

#![forbid(unsafe_code)]

pub mod metrics;
pub mod nn;
pub mod rng;
pub mod train;
pub mod windows;
