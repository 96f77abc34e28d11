//! VMs that are real QEMU guests: what Palisade boots for them.
//!
//! A VM with a `guest:` section is started by the controller under QEMU (KVM where it works,
//! TCG otherwise) with its RAM in a shared file, so Palisade can introspect it from outside.

use serde::{Deserialize, Serialize};

/// Smallest guest memory Palisade boots, in MiB (the cloud kernel plus initramfs need it).
pub const MIN_MEMORY_MB: u32 = 128;
/// Largest guest memory, in MiB.
pub const MAX_MEMORY_MB: u32 = 16384;
/// Most vCPUs per guest.
pub const MAX_VCPUS: u8 = 8;

/// The guest kernel to boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GuestKernel {
    /// Debian's `linux-image-cloud-amd64`, fetched with apt and unpacked (not installed).
    #[default]
    DebianCloud,
}

/// How to boot a VM as a QEMU guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSpec {
    /// Kernel image.
    #[serde(default)]
    pub kernel: GuestKernel,
    /// Guest RAM in MiB.
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// Virtual CPUs.
    #[serde(default = "default_vcpus")]
    pub vcpus: u8,
}

fn default_memory() -> u32 {
    512
}

fn default_vcpus() -> u8 {
    1
}

impl GuestSpec {
    /// Problems with the spec, as (field, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&self.memory_mb) {
            out.push((
                "guest.memory_mb",
                format!("{} MiB is outside {MIN_MEMORY_MB}..={MAX_MEMORY_MB}", self.memory_mb),
            ));
        }
        if !(1..=MAX_VCPUS).contains(&self.vcpus) {
            out.push(("guest.vcpus", format!("{} vCPUs is outside 1..={MAX_VCPUS}", self.vcpus)));
        }
        out
    }
}
