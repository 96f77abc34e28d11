//! Palisade's way into VMs it did not start (issue #15): running libvirt/QEMU domains, reached
//! only through interfaces every libvirt host has, with no change to the domain's definition.
//! Owns domain lookup, HMP through libvirt, locating guest RAM in the QEMU process and starting
//! and stopping a gdb stub at run time. Does not introspect (`palisade-vmi`) or inject
//! (`palisade-monitor`); it hands them RAM, symbols and a stub.
//!
//! ```text
//!   virsh dominfo/dumpxml ─► running, x86_64, q35|pc ─► pid (libvirt's pid file, checked)
//!   HMP `info ramblock` (pc.ram size) + /proc/PID/maps ─► candidates ─► kallsyms::recover_all
//!        ─► the kernel a vCPU runs (HMP `info registers -a`: CR3 walk of `_text`)
//!        ─► kernel text compared with HMP `xp` ─► RamFile (/proc/PID/mem, file or memfd)
//!   Attachment::check: domain still active, same QEMU pid, kernel still run ─► Liveness
//!   HMP `gdbserver unix:/run/palisade/attach/UUID/gdb.sock` ─► GdbClient ... `gdbserver none`
//! ```

#![forbid(unsafe_code)]

pub mod attach;
mod error;
pub mod ramblock;
pub mod registers;
pub mod virsh;

pub use attach::{AttachOptions, Attachment, Liveness, RamAccess, DEFAULT_RUN_DIR};
pub use error::LibvirtError;
pub use registers::VcpuRegisters;
pub use virsh::{DomainInfo, DomainXml, Libvirt, SYSTEM_URI};
