//! Guest physical memory.
//!
//! [`PhysMemory`] is the contract the rest of the crate reads guest memory through. Two
//! implementations: [`RamFile`], the shared RAM file of a QEMU guest started with
//! `-object memory-backend-file,...,share=on` (read with `pread`/`pwrite`, no mapping), and
//! [`FakeMemory`], sparse pages in memory for unit tests.
//!
//! A guest's RAM is not one flat range: on x86 PCs the RAM file's first part appears below the
//! PCI hole and the rest above 4 GiB. [`RamLayout`] says which guest physical range sits at
//! which file offset; an access that touches a hole or runs past the end is
//! [`MemoryError::OutOfRange`], and one that spans two adjacent regions is served from both.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

    /// Reads `len` bytes starting at `gpa` into a new vector.
    fn read_vec(&self, gpa: Gpa, len: usize) -> Result<Vec<u8>, MemoryError> {
        let mut buf = vec![0; len];
        self.read(gpa, &mut buf)?;
        Ok(buf)
    }
    /// Reads a little-endian `u64` at `gpa`.
    fn read_u64(&self, gpa: Gpa) -> Result<u64, MemoryError> {
        let mut b = [0; 8];
        self.read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Reads a little-endian `u32` at `gpa`.
    fn read_u32(&self, gpa: Gpa) -> Result<u32, MemoryError> {
        let mut b = [0; 4];
        self.read(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    /// Reads a little-endian `u16` at `gpa`.
    fn read_u16(&self, gpa: Gpa) -> Result<u16, MemoryError> {
        let mut b = [0; 2];
        self.read(gpa, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
}

/// One guest physical range backed by RAM: `len` bytes at `start`, stored in the RAM file
/// from `file_offset` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamRegion {
    /// First guest physical address of the region.
    pub start: Gpa,
    /// Its length in bytes.
    pub len: u64,
    /// Where its first byte sits in the RAM file.
    pub file_offset: u64,
}

/// Errors describing a guest RAM layout.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// A region has no bytes.
    #[error("RAM region at {0} is empty")]
    Empty(Gpa),
    /// A region's end does not fit in 64 bits (address or file offset).
    #[error("RAM region at {0} ends beyond the 64-bit address space")]
    Overflow(Gpa),
    /// Two regions overlap in guest physical addresses.
    #[error("RAM regions at {0} and {1} overlap")]
    Overlap(Gpa, Gpa),
}

/// The guest physical ranges of a guest's RAM, sorted by address and not overlapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RamLayout {
    regions: Vec<RamRegion>,
}

/// Below-4 GiB RAM limit of QEMU's q35 machine once RAM reaches 0xb000_0000 (2.75 GiB): from then
/// on the hole starts at 2 GiB, so that 1 GiB-aligned guest addresses map to 1 GiB-aligned host
/// addresses (`pc_q35_init`, QEMU 7.2, `gigabyte_align` of current machine types).
pub const Q35_LOWMEM_SPLIT: u64 = 0x8000_0000;
/// q35: RAM smaller than this stays entirely below 4 GiB (the hole is then 0xb000_0000..4 GiB,
/// room for 512 MiB of PCI MMIO and 256 MiB of PCIe MMCONFIG).
pub const Q35_LOWMEM_MAX: u64 = 0xb000_0000;
/// Below-4 GiB RAM limit of QEMU's i440fx `pc` machine once RAM reaches 0xe000_0000
/// (`pc_init1`, QEMU 7.2, `gigabyte_align`).
pub const PC_LOWMEM_SPLIT: u64 = 0xc000_0000;
/// pc: RAM smaller than this stays entirely below 4 GiB.
pub const PC_LOWMEM_MAX: u64 = 0xe000_0000;
/// Where RAM above the PCI hole starts on both machines.
pub const HIGH_RAM_START: u64 = 0x1_0000_0000;

impl RamLayout {
    /// Checks and sorts `regions`.
    pub fn new(mut regions: Vec<RamRegion>) -> Result<RamLayout, LayoutError> {
        regions.sort_by_key(|r| r.start);
        for r in &regions {
            if r.len == 0 {
                return Err(LayoutError::Empty(r.start));
            }
            if r.start.0.checked_add(r.len).is_none() || r.file_offset.checked_add(r.len).is_none() {
                return Err(LayoutError::Overflow(r.start));
            }
        }
        for w in regions.windows(2) {
            if w[0].start.0 + w[0].len > w[1].start.0 {
                return Err(LayoutError::Overlap(w[0].start, w[1].start));
            }
        }
        Ok(RamLayout { regions })
    }

    /// One region: `len` bytes at guest physical 0, file offset 0.
    pub fn flat(len: u64) -> RamLayout {
        RamLayout::split(len, len)
    }

    /// QEMU 7.2 `q35` with `ram_size` bytes of RAM in one memory backend: below 4 GiB at most
    /// [`Q35_LOWMEM_SPLIT`] bytes if `ram_size >= 0xb000_0000`, else all of it; the rest at
    /// 4 GiB, continuing in the file where the low part ends.
    pub fn q35(ram_size: u64) -> RamLayout {
        let low = if ram_size >= Q35_LOWMEM_MAX { Q35_LOWMEM_SPLIT } else { Q35_LOWMEM_MAX };
        RamLayout::split(ram_size, low)
    }

    /// QEMU 7.2 `pc` (i440fx): below 4 GiB at most [`PC_LOWMEM_SPLIT`] bytes if
    /// `ram_size >= 0xe000_0000`, else all of it; the rest at 4 GiB.
    pub fn pc(ram_size: u64) -> RamLayout {
        let low = if ram_size >= PC_LOWMEM_MAX { PC_LOWMEM_SPLIT } else { PC_LOWMEM_MAX };
        RamLayout::split(ram_size, low)
    }

    fn split(ram_size: u64, lowmem: u64) -> RamLayout {
        let below = ram_size.min(lowmem);
        let mut regions = Vec::new();
        if below > 0 {
            regions.push(RamRegion { start: Gpa(0), len: below, file_offset: 0 });
        }
        if ram_size > below {
            regions.push(RamRegion { start: Gpa(HIGH_RAM_START), len: ram_size - below, file_offset: below });
        }
        RamLayout { regions }
    }

    /// The same layout with every file offset moved by `by`: for RAM read through
    /// `/proc/PID/mem`, where a RAM block's offset 0 sits at the block's host address.
    pub fn offset_by(&self, by: u64) -> Result<RamLayout, LayoutError> {
        let regions = self
            .regions
            .iter()
            .map(|r| {
                let file_offset = r.file_offset.checked_add(by).ok_or(LayoutError::Overflow(r.start))?;
                Ok(RamRegion { file_offset, ..*r })
            })
            .collect::<Result<Vec<_>, LayoutError>>()?;
        RamLayout::new(regions)
    }

    /// The regions, in guest physical address order.
    pub fn regions(&self) -> &[RamRegion] {
        &self.regions
    }

    /// Total RAM bytes.
    pub fn total(&self) -> u64 {
        self.regions.iter().map(|r| r.len).sum()
    }

    /// Splits the access `[gpa, gpa+len)` into `(file_offset, buf_start, buf_len)` pieces, or
    /// `OutOfRange` if any byte is not RAM.
    fn pieces(&self, gpa: Gpa, len: usize) -> Result<Vec<(u64, usize, usize)>, MemoryError> {
        let out_of_range = || MemoryError::OutOfRange { gpa, len };
        let mut pieces = Vec::new();
        let mut done = 0usize;
        while done < len {
            let at = gpa.0.checked_add(done as u64).ok_or_else(out_of_range)?;
            // The last region starting at or below `at`.
            let idx = self.regions.partition_point(|r| r.start.0 <= at);
            let r = idx.checked_sub(1).map(|i| &self.regions[i]).ok_or_else(out_of_range)?;
            let off = at - r.start.0;
            if off >= r.len {
                return Err(out_of_range());
            }
            let n = (r.len - off).min((len - done) as u64) as usize;
            pieces.push((r.file_offset + off, done, n));
            done += n;
        }
        Ok(pieces)
    }
}

/// Errors opening a guest RAM file.
#[derive(Debug, thiserror::Error)]
pub enum RamFileError {
    /// The file could not be opened or inspected.
    #[error("cannot open guest RAM file {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is shorter than the layout says.
    #[error("guest RAM file {path} holds {actual} bytes, the layout needs {needed}")]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Bytes the layout reaches into the file.
        needed: u64,
        /// Bytes in the file.
        actual: u64,
    },
}

/// Guest RAM through QEMU's `memory-backend-file` (`share=on`) file, e.g. under /dev/shm.
///
/// Reads and writes go through positioned file I/O, so they see and change the guest's live
/// memory. Code patched this way is not seen by code QEMU's TCG already translated: patch code
/// through the gdb stub instead.
#[derive(Debug)]
pub struct RamFile {
    file: File,
    layout: RamLayout,
}

impl RamFile {
    /// Opens the RAM file at `path` read-write, with its guest physical `layout`.
    pub fn open(path: &Path, layout: RamLayout) -> Result<RamFile, RamFileError> {
        let open_err = |source| RamFileError::Open { path: path.to_owned(), source };
        let file = File::options().read(true).write(true).open(path).map_err(open_err)?;
        let actual = file.metadata().map_err(open_err)?.len();
        let needed = layout.regions.iter().map(|r| r.file_offset + r.len).max().unwrap_or(0);
        if actual < needed {
            return Err(RamFileError::TooShort { path: path.to_owned(), needed, actual });
        }
        Ok(RamFile { file, layout })
    }

    /// Guest RAM inside a running QEMU process `pid` through `/proc/PID/mem`, read-write (needs
    /// ptrace access to the process: root, or its owner without Yama restrictions). `layout`'s
    /// file offsets are host virtual addresses in that process (see [`RamLayout::offset_by`]);
    /// the file has no length, so nothing is checked here: an address outside the process's
    /// mappings fails at the access.
    pub fn process_memory(pid: u32, layout: RamLayout) -> Result<RamFile, RamFileError> {
        let path = PathBuf::from(format!("/proc/{pid}/mem"));
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| RamFileError::Open { path: path.clone(), source })?;
        Ok(RamFile { file, layout })
    }

    /// The guest physical layout.
    pub fn layout(&self) -> &RamLayout {
        &self.layout
    }
}

impl PhysMemory for RamFile {
    fn read(&self, gpa: Gpa, buf: &mut [u8]) -> Result<(), MemoryError> {
        for (off, start, n) in self.layout.pieces(gpa, buf.len())? {
            self.file
                .read_exact_at(&mut buf[start..start + n], off)
                .map_err(|source| MemoryError::Io { gpa, source })?;
        }
        Ok(())
    }

    fn write(&self, gpa: Gpa, buf: &[u8]) -> Result<(), MemoryError> {
        for (off, start, n) in self.layout.pieces(gpa, buf.len())? {
            self.file.write_all_at(&buf[start..start + n], off).map_err(|source| MemoryError::Io { gpa, source })?;
        }
        Ok(())
    }

    fn regions(&self) -> Vec<(Gpa, u64)> {
        self.layout.regions.iter().map(|r| (r.start, r.len)).collect()
    }
}

const FAKE_PAGE: u64 = 4096;

/// Guest physical memory held in process memory, for unit tests: the layout's RAM reads as
/// zero until written; only written pages take space.
#[derive(Debug)]
pub struct FakeMemory {
    layout: RamLayout,
    /// Keyed by file offset / 4096 (the layout's backing store), so aliasing works as in a file.
    pages: Mutex<BTreeMap<u64, Box<[u8]>>>,
}

impl FakeMemory {
    /// `size` bytes of RAM at guest physical 0.
    pub fn new(size: u64) -> FakeMemory {
        FakeMemory::with_layout(RamLayout::flat(size))
    }

    /// RAM as `layout` describes it (e.g. with a PCI hole).
    pub fn with_layout(layout: RamLayout) -> FakeMemory {
        FakeMemory { layout, pages: Mutex::new(BTreeMap::new()) }
    }

    fn pages(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Box<[u8]>>> {
        // A panic while holding the lock cannot leave a page half-typed: recover the data.
        self.pages.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FakeMemory {
    /// The pieces of `len` bytes at `gpa` as (page number, offset in the page, offset in the
    /// caller's buffer, length), each within one fake page.
    fn page_pieces(&self, gpa: Gpa, len: usize) -> Result<Vec<(u64, usize, usize, usize)>, MemoryError> {
        let mut out = Vec::new();
        for (off, start, n) in self.layout.pieces(gpa, len)? {
            let mut done = 0;
            while done < n {
                let o = off + done as u64;
                let in_page = (o % FAKE_PAGE) as usize;
                let k = (FAKE_PAGE as usize - in_page).min(n - done);
                out.push((o / FAKE_PAGE, in_page, start + done, k));
                done += k;
            }
        }
        Ok(out)
    }
}

impl PhysMemory for FakeMemory {
    fn read(&self, gpa: Gpa, buf: &mut [u8]) -> Result<(), MemoryError> {
        let pages = self.pages();
        for (page, in_page, at, k) in self.page_pieces(gpa, buf.len())? {
            let dst = &mut buf[at..at + k];
            match pages.get(&page) {
                Some(p) => dst.copy_from_slice(&p[in_page..in_page + k]),
                None => dst.fill(0),
            }
        }
        Ok(())
    }

    fn write(&self, gpa: Gpa, buf: &[u8]) -> Result<(), MemoryError> {
        let mut pages = self.pages();
        for (page, in_page, at, k) in self.page_pieces(gpa, buf.len())? {
            let page = pages.entry(page).or_insert_with(|| vec![0; FAKE_PAGE as usize].into_boxed_slice());
            page[in_page..in_page + k].copy_from_slice(&buf[at..at + k]);
        }
        Ok(())
    }

    fn regions(&self) -> Vec<(Gpa, u64)> {
        self.layout.regions.iter().map(|r| (r.start, r.len)).collect()
    }
}

#[cfg(test)]
mod tests;
