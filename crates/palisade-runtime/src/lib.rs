//! Palisade's guest runtime: the real [`GuestRuntime`] behind the controller.
//!
//! Owns the lifecycle of the desired state's guest VMs on this host — images (Debian's cloud
//! kernel, a busybox initramfs), QEMU processes (via `palisade-guest`), their tap ports on the
//! OVS bridge — and answers introspection questions from their memory (via `palisade-vmi`).
//! Does not decide which guests should run (the controller does).
//!
//! ```text
//!  controller ──reconcile(desired)──► QemuGuests ──boot thread──► images ─► Guest::start
//!       │                                │                                  └► ovs-vsctl add-port (VLAN)
//!       └──symbols(vm)──────────────────►└─► RamFile + kallsyms::recover (cached per boot)
//! ```
//!
//! Guests live as long as the controller: it stops them when it stops, and on start it reaps
//! the QEMU processes a crashed predecessor left behind (see [`reap_orphans`]), then boots the
//! desired guests afresh.

#![forbid(unsafe_code)]

mod images;
mod monitoring;
mod orphans;
mod qemu;

pub use images::{Images, LAB_WORKLOAD};
pub use orphans::{reap_orphans, Reaped};
pub use qemu::{QemuGuests, RuntimeConfig, DEFAULT_RAM_DIR};
