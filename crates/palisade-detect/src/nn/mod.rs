//! The network, written out by hand: LSTM layers with exact backpropagation through time,
//! dense layers, the stable logistic loss and Adam, on `f32` slices (see `docs/benchmarks.md`
//! for why not a general framework).

pub mod adam;
pub mod kernels;
pub mod lstm;
pub mod net;

pub use adam::Adam;
pub use net::{bce_with_logits, Layout, Net, NetConfig, Work};
