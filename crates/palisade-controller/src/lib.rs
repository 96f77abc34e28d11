//! Palisade's controller (`palisaded`): desired state, reconciler, REST API and metrics.
//!
//! Owns the change pipeline (validate -> plan -> one bundle -> store -> acknowledge), the
//! periodic reconciler, bearer-token scoping and the HTTP API. Does not parse policy files
//! (`palisade-model`), compile flows (`palisade-flows`) or build the lab (`palisade-lab`).

#![forbid(unsafe_code)]

pub mod anomaly;
pub mod api;
pub mod auth;
pub mod guests;
pub mod metrics;
pub mod monitors;
pub mod service;
mod wire;

pub use auth::{Scope, Secret, Tokens};
pub use guests::{GuestRuntime, GuestState, GuestStatus, SymbolTable};
pub use service::{Controller, ServiceError};
