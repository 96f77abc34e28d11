//! x86-64 virtual-to-physical translation by walking the guest's page tables.
//!
//! 4-level (48-bit) and 5-level (LA57, 57-bit) paging, 1 GiB and 2 MiB pages. Page-table
//! entries are guest-controlled bytes: every entry is masked and checked, never trusted, and no
//! table contents make the walk panic. Physical addresses are taken as 52 bits (the
//! architectural maximum); bits 62:52 (ignored / protection keys) and 63 (NX) are never part of
//! an address.
//!
//! [`VirtMemory`] reads guest virtual memory across page boundaries; pages that are not mapped
//! come back as holes of a [`PartialRead`] rather than failing the whole read.

use std::fmt;

use crate::{Gpa, Gva, MemoryError, PhysMemory};

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const PAGE_SIZE_BIT: u64 = 1 << 7;
const NX: u64 = 1 << 63;
/// Bits 51:12 of an entry: the next table or the 4 KiB frame.
const ADDR_4K: u64 = 0x000f_ffff_ffff_f000;
/// Bits 51:21: a 2 MiB frame (bit 12 is PAT there, not address).
const ADDR_2M: u64 = 0x000f_ffff_ffe0_0000;
/// Bits 51:30: a 1 GiB frame.
const ADDR_1G: u64 = 0x000f_ffff_c000_0000;
/// CR4.LA57.
pub const CR4_LA57: u64 = 1 << 12;

/// A level of the page-table hierarchy, top to bottom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// PML5 (only with LA57).
    Pml5,
    /// PML4.
    Pml4,
    /// Page-directory-pointer table (can map 1 GiB pages).
    Pdpt,
    /// Page directory (can map 2 MiB pages).
    Pd,
    /// Page table (maps 4 KiB pages).
    Pt,
}

impl Level {
    fn shift(self) -> u32 {
        match self {
            Level::Pml5 => 48,
            Level::Pml4 => 39,
            Level::Pdpt => 30,
            Level::Pd => 21,
            Level::Pt => 12,
        }
    }

    fn next(self) -> Option<Level> {
        match self {
            Level::Pml5 => Some(Level::Pml4),
            Level::Pml4 => Some(Level::Pdpt),
            Level::Pdpt => Some(Level::Pd),
            Level::Pd => Some(Level::Pt),
            Level::Pt => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Pml5 => "PML5",
            Level::Pml4 => "PML4",
            Level::Pdpt => "PDPT",
            Level::Pd => "PD",
            Level::Pt => "PT",
        })
    }
}

/// Size of the page a translation landed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB.
    Size4K,
    /// 2 MiB.
    Size2M,
    /// 1 GiB.
    Size1G,
}

impl PageSize {
    /// The page size in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 1 << 12,
            PageSize::Size2M => 1 << 21,
            PageSize::Size1G => 1 << 30,
        }
    }
}

/// Where a guest virtual address lands, and with which rights (combined over all levels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The guest physical address.
    pub gpa: Gpa,
    /// The page it lies in.
    pub page_size: PageSize,
    /// Writable at every level.
    pub writable: bool,
    /// User-accessible at every level.
    pub user: bool,
    /// Not executable (NX set at some level).
    pub nx: bool,
}

/// Why a guest virtual address could not be translated.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The address is not canonical for the paging mode.
    #[error("{gva} is not canonical for {bits}-bit paging")]
    NonCanonical {
        /// The address.
        gva: Gva,
        /// 48 or 57.
        bits: u32,
    },
    /// An entry on the walk is not present.
    #[error("{gva} is not mapped: {level} entry {index} (at {entry_at}) is not present")]
    NotPresent {
        /// The address.
        gva: Gva,
        /// The level whose entry is clear.
        level: Level,
        /// The entry's index in its table.
        index: u16,
        /// The entry's guest physical address.
        entry_at: Gpa,
    },
    /// An entry sets the page-size bit where the architecture reserves it (PML5, PML4).
    #[error("{gva}: {level} entry {index} = {entry:#x} sets a reserved page-size bit")]
    Reserved {
        /// The address.
        gva: Gva,
        /// The level.
        level: Level,
        /// The entry's index.
        index: u16,
        /// The entry's value.
        entry: u64,
    },
    /// The address maps to guest physical memory that cannot be read or written.
    #[error("{gva} maps to {gpa}, which is not accessible")]
    Data {
        /// The address.
        gva: Gva,
        /// Where it maps.
        gpa: Gpa,
        /// Why.
        #[source]
        source: MemoryError,
    },
    /// A table could not be read from guest physical memory.
    #[error("{gva}: cannot read the {level} table")]
    Memory {
        /// The address.
        gva: Gva,
        /// The level being read.
        level: Level,
        /// Why.
        #[source]
        source: MemoryError,
    },
}

impl TranslateError {
    /// The address that failed.
    pub fn gva(&self) -> Gva {
        match self {
            TranslateError::NonCanonical { gva, .. }
            | TranslateError::NotPresent { gva, .. }
            | TranslateError::Reserved { gva, .. }
            | TranslateError::Data { gva, .. }
            | TranslateError::Memory { gva, .. } => *gva,
        }
    }
}

/// A guest address space: the root of its page tables and the paging mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressSpace {
    /// Guest physical address of the top-level table (CR3 without PCID and flag bits).
    pub root: Gpa,
    /// 5-level paging (CR4.LA57).
    pub la57: bool,
}

impl AddressSpace {
    /// From the CR3 value and whether CR4.LA57 is set. PCID (bits 11:0) and the no-flush and
    /// LAM bits (63:52) are dropped.
    pub fn new(cr3: u64, la57: bool) -> AddressSpace {
        AddressSpace { root: Gpa(cr3 & ADDR_4K), la57 }
    }

    /// From the CR3 and CR4 register values.
    pub fn from_registers(cr3: u64, cr4: u64) -> AddressSpace {
        AddressSpace::new(cr3, cr4 & CR4_LA57 != 0)
    }

    /// The address spaces a vCPU with `cr3` and `cr4` may reach the kernel through: CR3's own
    /// root, and the root 4 KiB below it. With KPTI, PGDs are 8 KiB-aligned pairs (the user PGD
    /// 4 KiB above the kernel's) and a vCPU in user mode holds the user one, which does not map
    /// the kernel image. One entry when CR3 already holds the lower half of a pair.
    pub fn kernel_roots(cr3: u64, cr4: u64) -> Vec<AddressSpace> {
        let own = AddressSpace::from_registers(cr3, cr4);
        let pair = AddressSpace::from_registers(cr3 & !0x1fff, cr4);
        if own == pair {
            vec![own]
        } else {
            vec![own, pair]
        }
    }

    /// Translates `gva` by walking the page tables in `mem`.
    pub fn translate<M: PhysMemory + ?Sized>(&self, mem: &M, gva: Gva) -> Result<Translation, TranslateError> {
        let bits = if self.la57 { 57 } else { 48 };
        // Canonical: bits 63:bits-1 all equal.
        let top = (gva.0 as i64) >> (bits - 1);
        if top != 0 && top != -1 {
            return Err(TranslateError::NonCanonical { gva, bits });
        }
        let mut level = if self.la57 { Level::Pml5 } else { Level::Pml4 };
        let mut table = self.root.0;
        let (mut writable, mut user, mut nx) = (true, true, false);
        loop {
            let index = ((gva.0 >> level.shift()) & 0x1ff) as u16;
            let entry_at = Gpa(table + u64::from(index) * 8);
            let entry = mem.read_u64(entry_at).map_err(|source| TranslateError::Memory { gva, level, source })?;
            if entry & PRESENT == 0 {
                return Err(TranslateError::NotPresent { gva, level, index, entry_at });
            }
            writable &= entry & WRITABLE != 0;
            user &= entry & USER != 0;
            nx |= entry & NX != 0;
            let large = entry & PAGE_SIZE_BIT != 0;
            let leaf = match (level, large) {
                (Level::Pml5 | Level::Pml4, true) => {
                    return Err(TranslateError::Reserved { gva, level, index, entry });
                }
                (Level::Pdpt, true) => Some((ADDR_1G, PageSize::Size1G)),
                (Level::Pd, true) => Some((ADDR_2M, PageSize::Size2M)),
                (Level::Pt, _) => Some((ADDR_4K, PageSize::Size4K)),
                _ => None,
            };
            if let Some((mask, page_size)) = leaf {
                let offset = gva.0 & (page_size.bytes() - 1);
                return Ok(Translation { gpa: Gpa((entry & mask) | offset), page_size, writable, user, nx });
            }
            table = entry & ADDR_4K;
            match level.next() {
                Some(next) => level = next,
                // Unreachable: the PT level always returns above.
                None => return Err(TranslateError::Reserved { gva, level, index, entry }),
            }
        }
    }
}

/// A hole in a [`PartialRead`]: `len` bytes at `offset` in the buffer were not readable and
/// are left zero.
#[derive(Debug)]
pub struct Hole {
    /// Offset of the hole in the caller's buffer.
    pub offset: usize,
    /// Its length.
    pub len: usize,
    /// Why the first page of the hole could not be read.
    pub cause: TranslateError,
}

/// The outcome of a best-effort virtual read: what could not be read, page run by page run.
/// No holes means the buffer is complete.
#[derive(Debug, Default)]
pub struct PartialRead {
    /// Unreadable ranges of the buffer, in order; neighbouring unreadable pages are merged.
    pub holes: Vec<Hole>,
}

impl PartialRead {
    /// Whether every byte was read.
    pub fn is_complete(&self) -> bool {
        self.holes.is_empty()
    }

    /// Bytes that could not be read.
    pub fn bytes_missing(&self) -> usize {
        self.holes.iter().map(|h| h.len).sum()
    }
}

/// Guest virtual memory of one address space, over guest physical memory.
#[derive(Debug)]
pub struct VirtMemory<'m, M: PhysMemory + ?Sized> {
    mem: &'m M,
    space: AddressSpace,
}

impl<'m, M: PhysMemory + ?Sized> VirtMemory<'m, M> {
    /// Virtual memory of `space`, reading physical memory from `mem`.
    pub fn new(mem: &'m M, space: AddressSpace) -> Self {
        VirtMemory { mem, space }
    }

    /// The address space.
    pub fn space(&self) -> AddressSpace {
        self.space
    }

    /// Translates one address.
    pub fn translate(&self, gva: Gva) -> Result<Translation, TranslateError> {
        self.space.translate(self.mem, gva)
    }

    /// Calls `f(buf_offset, gpa, len)` for each physically contiguous piece of
    /// `[gva, gva+len)`, one translation per page (large pages in one piece).
    fn for_each_piece(
        &self,
        gva: Gva,
        len: usize,
        mut f: impl FnMut(usize, Result<(Gpa, usize), TranslateError>) -> Result<(), TranslateError>,
    ) -> Result<(), TranslateError> {
        let mut done = 0usize;
        while done < len {
            let at = Gva(gva.0.wrapping_add(done as u64));
            match self.translate(at) {
                Ok(t) => {
                    let left_in_page = t.page_size.bytes() - (at.0 & (t.page_size.bytes() - 1));
                    let n = left_in_page.min((len - done) as u64) as usize;
                    f(done, Ok((t.gpa, n)))?;
                    done += n;
                }
                Err(e) => {
                    let n = (4096 - (at.0 & 0xfff)).min((len - done) as u64) as usize;
                    f(done, Err(e))?;
                    done += n;
                }
            }
        }
        Ok(())
    }

    /// Fills `buf` from `gva`; fails on the first page that cannot be read.
    pub fn read_exact(&self, gva: Gva, buf: &mut [u8]) -> Result<(), TranslateError> {
        self.for_each_piece(gva, buf.len(), |off, piece| {
            let (gpa, n) = piece?;
            self.mem.read(gpa, &mut buf[off..off + n]).map_err(|source| TranslateError::Data {
                gva: Gva(gva.0.wrapping_add(off as u64)),
                gpa,
                source,
            })
        })
    }

    /// Fills `buf` from `gva` as far as pages are mapped; unreadable pages are left zero and
    /// reported as holes.
    pub fn read(&self, gva: Gva, buf: &mut [u8]) -> PartialRead {
        let mut result = PartialRead::default();
        let _ = self.for_each_piece(gva, buf.len(), |off, piece| {
            let failed = match piece {
                Ok((gpa, n)) => match self.mem.read(gpa, &mut buf[off..off + n]) {
                    Ok(()) => None,
                    Err(source) => {
                        Some((n, TranslateError::Data { gva: Gva(gva.0.wrapping_add(off as u64)), gpa, source }))
                    }
                },
                Err(e) => {
                    let n = (4096 - ((gva.0.wrapping_add(off as u64)) & 0xfff) as usize).min(buf.len() - off);
                    Some((n, e))
                }
            };
            if let Some((n, cause)) = failed {
                buf[off..off + n].fill(0);
                match result.holes.last_mut() {
                    Some(h) if h.offset + h.len == off => h.len += n,
                    _ => result.holes.push(Hole { offset: off, len: n, cause }),
                }
            }
            Ok(())
        });
        result
    }

    /// Reads `len` bytes at `gva` into a new vector; all or nothing.
    pub fn read_vec(&self, gva: Gva, len: usize) -> Result<Vec<u8>, TranslateError> {
        let mut buf = vec![0; len];
        self.read_exact(gva, &mut buf)?;
        Ok(buf)
    }

    /// Reads a little-endian `u64` at `gva`.
    pub fn read_u64(&self, gva: Gva) -> Result<u64, TranslateError> {
        let mut b = [0; 8];
        self.read_exact(gva, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes `buf` at `gva` (data only: under TCG, code must be patched through the gdb stub).
    /// Every page is translated before anything is written.
    pub fn write(&self, gva: Gva, buf: &[u8]) -> Result<(), TranslateError> {
        let mut pieces = Vec::new();
        self.for_each_piece(gva, buf.len(), |off, piece| {
            pieces.push((off, piece?));
            Ok(())
        })?;
        for (off, (gpa, n)) in pieces {
            self.mem.write(gpa, &buf[off..off + n]).map_err(|source| TranslateError::Data {
                gva: Gva(gva.0.wrapping_add(off as u64)),
                gpa,
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
