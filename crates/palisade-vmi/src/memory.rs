//! Guest physical memory.
//!
//! (skeleton: `PhysMemory` is the contract other modules use; the RAM-file implementation and the
//! in-memory fake live here.)

use crate::Gpa;

/// Errors reading or writing guest physical memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The range is not backed by guest RAM (beyond the end, or inside the PCI hole).
    #[error("{gpa} (+{len} bytes) is outside guest RAM")]
    OutOfRange {
        /// Start of the access.
        gpa: Gpa,
        /// Its length.
        len: usize,
    },
    /// The RAM file could not be read or written.
    #[error("guest RAM file access at {gpa} failed")]
    Io {
        /// Start of the access.
        gpa: Gpa,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Guest physical memory, read and written by guest physical address.
pub trait PhysMemory {
    /// Fills `buf` from guest physical memory starting at `gpa`; all or nothing.
    fn read(&self, gpa: Gpa, buf: &mut [u8]) -> Result<(), MemoryError>;
    /// Writes `buf` to guest physical memory starting at `gpa`; all or nothing.
    fn write(&self, gpa: Gpa, buf: &[u8]) -> Result<(), MemoryError>;
    /// The guest RAM regions as (start, length) in guest physical address order.
    fn regions(&self) -> Vec<(Gpa, u64)>;
}
