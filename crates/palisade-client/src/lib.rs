//! Palisade's API client and lab glue, used by the `palisade` CLI.
//!
//! Owns the HTTP client for the controller API, the mapping from the model's inventory to the
//! lab's namespaces, and the lab's controller process. Does not validate or compile policy.

#![forbid(unsafe_code)]

pub mod client;
pub mod lab;

pub use client::{Client, ClientError};
