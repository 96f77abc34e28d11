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
//! the QEMU processes a crashed predecessor left behind (see [`Owner`]: only QEMU processes it recorded and marked as its own), then boots the
//! desired guests afresh.

#![forbid(unsafe_code)]

mod images;
mod monitoring;
mod orphans;
mod qemu;

pub use images::{Images, LAB_WORKLOAD};
pub use monitoring::POLL as MONITOR_POLL;
pub use orphans::{Owner, Reaped};
pub use qemu::{QemuGuests, RuntimeConfig, DEFAULT_RAM_DIR};

#[cfg(test)]
mod tests {
    /// The model refuses at apply what the in-guest tables could not hold (issue #5): its
    /// limits are the payload's.
    #[test]
    fn model_limits_match_the_payload_tables() {
        use palisade_model::monitor::{MAX_OBJECT_LEN, MAX_PLAN_RULES, MAX_SUBJECT_LEN};
        use palisade_monitor::layout::{COMM_LEN, MAX_POLICIES, NAME_LEN};
        assert_eq!(MAX_PLAN_RULES, MAX_POLICIES);
        assert_eq!(MAX_OBJECT_LEN, NAME_LEN);
        assert_eq!(MAX_SUBJECT_LEN + 1, COMM_LEN);
    }
}
