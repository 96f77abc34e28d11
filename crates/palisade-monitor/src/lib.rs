//! Palisade's in-guest monitor (issue #5, paper §3.3): monitoring code injected into a running
//! guest kernel from outside, hooking system calls to record or block them by policy.
//!
//! Owns the payload (freestanding C + asm, built by `build.rs`), the ELF loader that links it
//! against the guest kernel's own symbols, injection through hijacked kernel calls, hooks, and
//! the host side of the shared region mem-S (events, policy). Does not start guests
//! (`palisade-guest`) nor read memory or drive vCPUs itself (`palisade-vmi`).
//!
//! ```text
//!   payload.o ─► elf::Object ─► loader::load(base, kernel symbols) ─► inject::inject
//!                                                                       │ hijack module_alloc
//!                                                                       │ or execmem_alloc,
//!                                                                       │ set_memory_ro/x (gdb)
//!                                                                       │ hooks: NOP5 ─► call
//!   guest:  __x64_sys_openat ─► palisade_trampoline ─► palisade_handle ─► mem-S ring
//!   host:   channel::EventReader ◄── RAM file (no VM exit) ◄────────────────┘
//!           channel::MemS::write_policy ──► mem-S policy table (seqlock generation)
//! ```

#![forbid(unsafe_code)]

pub mod channel;
pub mod classic;
pub mod hooks;
pub mod inject;
pub mod layout;
pub mod loader;
pub mod monitor;
pub mod payload;
pub mod policy;

/// The ELF reader the loader uses (one for the whole project: `palisade-elf`).
pub use palisade_elf as elf;

#[cfg(test)]
mod elf_tests;

pub use channel::{Batch, ChannelError, Counters, Event, EventReader, MemS};
pub use inject::{inject, Allocator, InjectOptions, InjectTimings, MonitorError};
pub use monitor::{InstalledHook, Monitor};
pub use policy::{Action, ObjectArg, Rule, Syscall};
