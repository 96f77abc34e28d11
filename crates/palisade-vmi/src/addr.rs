//! Typed guest addresses: a guest physical address can never be passed where a guest virtual
//! one is expected.

use std::fmt;

/// A guest physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Gpa(pub u64);

/// A guest virtual address (kernel or user, as the guest's page tables map it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Gva(pub u64);

impl Gpa {
    /// The address `n` bytes further on, or `None` on overflow.
    pub fn checked_add(self, n: u64) -> Option<Gpa> {
        self.0.checked_add(n).map(Gpa)
    }
}

impl Gva {
    /// The address `n` bytes further on, or `None` on overflow.
    pub fn checked_add(self, n: u64) -> Option<Gva> {
        self.0.checked_add(n).map(Gva)
    }
}

impl fmt::Display for Gpa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gpa {:#x}", self.0)
    }
}

impl fmt::Display for Gva {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gva {:#x}", self.0)
    }
}
