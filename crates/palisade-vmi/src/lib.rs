//! Palisade's view into a running guest, from the hypervisor side only.
//!
//! Owns typed guest addresses, guest physical memory (the shared RAM file of a QEMU guest),
//! virtual-to-physical translation, vCPU control through QEMU's gdb stub, recovery of the kernel
//! symbol table from memory and hijacked kernel calls. Does not start or stop guests (see
//! `palisade-guest`).
//!
//! ```text
//!   hijack ──► gdb (vCPU: regs, breakpoints, run)      kallsyms ──► PhysMemory
//!      │                                                  ▲
//!      └──────► paging (cr3 walk) ──► PhysMemory ◄─────────┘
//!                                       ├── RamFile (QEMU memory-backend-file)
//!                                       └── FakeMemory (unit tests)
//! ```

#![forbid(unsafe_code)]

mod addr;
pub mod gdb;
pub mod hijack;
pub mod kallsyms;
pub mod memory;
pub mod paging;

pub use addr::{Gpa, Gva};
pub use memory::{FakeMemory, MemoryError, PhysMemory, RamFile, RamLayout, RamRegion};
pub use paging::{AddressSpace, PartialRead, TranslateError, Translation, VirtMemory};
