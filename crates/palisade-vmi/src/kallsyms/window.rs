//! A checked, growable copy of one stretch of guest RAM: every access is bounds-checked and
//! answers `None` outside what was read, so no guest byte can make the parser panic.

use crate::{Gpa, MemoryError, PhysMemory};

/// Guest memory is read in pieces of this size.
pub(crate) const CHUNK: usize = 2 << 20;

/// A copy of guest RAM `[base, base + bytes.len())`, inside one RAM region.
#[derive(Debug)]
pub(crate) struct Window {
    base: u64,
    bytes: Vec<u8>,
    /// The RAM region the window may grow within: `[start, end)`.
    region: (u64, u64),
}

impl Window {
    /// An empty window at `at`, inside `region` (start, length).
    pub(crate) fn new(at: u64, region: (Gpa, u64)) -> Self {
        let start = region.0 .0;
        let end = start.saturating_add(region.1);
        Window { base: at.clamp(start, end), bytes: Vec::new(), region: (start, end) }
    }

    /// Grows the window to cover `[lo, hi)`, clamped to its region. Bytes outside the region stay
    /// unreadable (accessors answer `None`).
    pub(crate) fn cover(&mut self, mem: &impl PhysMemory, lo: u64, hi: u64) -> Result<(), MemoryError> {
        let lo = lo.clamp(self.region.0, self.region.1);
        let hi = hi.clamp(self.region.0, self.region.1);
        let cur_end = self.end();
        let (new_lo, new_hi) =
            if self.bytes.is_empty() { (lo, hi.max(lo)) } else { (lo.min(self.base), hi.max(cur_end)) };
        if new_lo == self.base && new_hi == cur_end && !self.bytes.is_empty() {
            return Ok(());
        }
        let mut grown = Vec::new();
        if self.bytes.is_empty() {
            grown = read_range(mem, new_lo, new_hi)?;
        } else {
            grown.extend(read_range(mem, new_lo, self.base)?);
            grown.extend_from_slice(&self.bytes);
            grown.extend(read_range(mem, cur_end, new_hi)?);
        }
        self.base = new_lo;
        self.bytes = grown;
        Ok(())
    }

    /// First address past the window.
    pub(crate) fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }

    /// First address of the window.
    pub(crate) fn start(&self) -> u64 {
        self.base
    }

    /// The `len` bytes at `gpa`, if all inside the window.
    pub(crate) fn slice(&self, gpa: u64, len: u64) -> Option<&[u8]> {
        let from = usize::try_from(gpa.checked_sub(self.base)?).ok()?;
        let to = from.checked_add(usize::try_from(len).ok()?)?;
        self.bytes.get(from..to)
    }

    fn array<const N: usize>(&self, gpa: u64) -> Option<[u8; N]> {
        self.slice(gpa, N as u64)?.try_into().ok()
    }

    pub(crate) fn u8(&self, gpa: u64) -> Option<u8> {
        self.array::<1>(gpa).map(|b| b[0])
    }

    pub(crate) fn u32(&self, gpa: u64) -> Option<u32> {
        self.array(gpa).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&self, gpa: u64) -> Option<u64> {
        self.array(gpa).map(u64::from_le_bytes)
    }
}

/// Reads `[lo, hi)` in `CHUNK` pieces.
fn read_range(mem: &impl PhysMemory, lo: u64, hi: u64) -> Result<Vec<u8>, MemoryError> {
    let len = usize::try_from(hi.saturating_sub(lo)).unwrap_or(usize::MAX);
    let mut out = vec![0u8; len];
    for (i, piece) in out.chunks_mut(CHUNK).enumerate() {
        mem.read(Gpa(lo + (i * CHUNK) as u64), piece)?;
    }
    Ok(out)
}

/// Rounds `x` up to a multiple of 8 (the `.balign 8` of scripts/kallsyms.c on 64-bit).
pub(crate) fn align8(x: u64) -> Option<u64> {
    x.checked_add(7).map(|v| v & !7)
}
