//! Whether a recovered kernel is the one the vCPUs run. RAM can hold several complete kernel
//! images whose tables pass every check at their own physical address: the previous boot's
//! after a reboot inside the same QEMU process (nothing clears RAM), or one planted by a guest
//! with root. Only the live kernel's `_text` translates, through a vCPU's page tables, to the
//! physical base its tables were found at.

use std::fmt;

use super::KernelSymbols;
use crate::paging::{AddressSpace, TranslateError};
use crate::{Gpa, PhysMemory};

/// Where `_text` landed in one of the address spaces tried.
#[derive(Debug)]
pub struct TextWalk {
    /// The page-table root walked.
    pub space: AddressSpace,
    /// The guest physical address `_text` maps to, or why it does not map.
    pub outcome: Result<Gpa, TranslateError>,
}

impl fmt::Display for TextWalk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Ok(gpa) => write!(f, "root {}: maps to {gpa}", self.space.root),
            Err(e) => write!(f, "root {}: {e}", self.space.root),
        }
    }
}

/// A kernel is not the one a vCPU with the given registers runs.
#[derive(Debug, thiserror::Error)]
#[error("_text ({virt}) does not map to the kernel's physical base {phys} under CR3 {cr3:#x} ({})",
    .walks.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct NotRunning {
    /// `_text`.
    pub virt: crate::Gva,
    /// Where the kernel's tables say `_text` is.
    pub phys: Gpa,
    /// The vCPU's CR3.
    pub cr3: u64,
    /// Each page-table root tried and where `_text` landed.
    pub walks: Vec<TextWalk>,
}

impl KernelSymbols {
    /// Checks that this kernel is the one a vCPU with control registers `cr3` and `cr4` runs:
    /// `_text` translates to [`KernelSymbols::phys_base`] through its page tables. Returns the
    /// address space that proved it. Under KPTI a vCPU in user mode holds the user PGD, which
    /// does not map `_text`; the kernel PGD is 4 KiB below it ([`AddressSpace::kernel_roots`]).
    pub fn runs_under(&self, mem: &(impl PhysMemory + ?Sized), cr3: u64, cr4: u64) -> Result<AddressSpace, NotRunning> {
        let mut walks = Vec::new();
        for space in AddressSpace::kernel_roots(cr3, cr4) {
            let outcome = space.translate(mem, self.virt_base).map(|t| t.gpa);
            if matches!(outcome, Ok(gpa) if gpa == self.phys_base) {
                return Ok(space);
            }
            walks.push(TextWalk { space, outcome });
        }
        Err(NotRunning { virt: self.virt_base, phys: self.phys_base, cr3, walks })
    }
}
