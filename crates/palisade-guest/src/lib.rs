//! Palisade's test and lab guests: images and real QEMU processes.
//!
//! Owns fetching Debian's cloud kernel (apt download + unpack, never installed), building the
//! busybox initramfs (cpio written in Rust), building bootable Debian disk images (qcow2,
//! systemd-boot, no mounts; see `DiskImage`), and starting, watching and stopping QEMU guests
//! (shared RAM file, QMP, gdbstub socket, serial files, KVM-or-TCG). Does not look inside guest
//! memory or drive vCPUs (see `palisade-vmi`) and does not wire taps into OVS (`palisade-lab`).
//!
//! ```text
//!   KernelImage::fetch_cloud ──► vmlinuz, modules ──┐
//!   initramfs::static_busybox ──► busybox ──────────┼─► initramfs::build ──► initrd.cpio
//!                                                   ▼
//!   GuestConfig ──► Guest::start ──► accel::choose (KVM probe, once) ──► qemu-system-x86_64
//!                        │                    /dev/shm/palisade-<name>.ram  (RAM, share=on)
//!                        ├─ qmp::Qmp ◄──────► qmp.sock
//!                        ├─ gdb_path() ─────► gdb.sock   (for palisade-vmi)
//!                        └─ console / kallsyms ◄─ ttyS0.log / ttyS1 file
//! ```

#![forbid(unsafe_code)]

pub mod accel;
mod apt;
pub mod cpio;
mod disk;
mod error;
mod guest;
pub mod initramfs;
mod kernel;
mod machine;
pub mod qmp;

pub use disk::{DiskError, DiskImage, DiskSpec, PartUuid};
pub use error::GuestError;
pub use guest::{Guest, GuestExit};
pub use initramfs::{Initramfs, InitramfsSpec};
pub use kernel::{
    modinfo, Flavour, KernelChoice, KernelChoiceError, KernelImage, ModuleFile, CLOUD_KERNEL_METAPACKAGE,
    DEFAULT_CACHE_DIR,
};
pub use machine::{
    owner_arg, q35_ram_layout, qemu_args, Accel, AccelChoice, AccelPolicy, GuestConfig, NicConfig, RamRegion, RunPaths,
    DEFAULT_KVM_PROBE_CACHE, HIGH_RAM_START, Q35_LOWMEM_LIMIT, Q35_SPLIT_LOWMEM,
};
pub use qmp::{Qmp, QmpError, VmStatus};
