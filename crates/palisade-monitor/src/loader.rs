//! The payload loader (paper Algorithms 1 and 2): lays out a relocatable object's sections in
//! one allocation, resolves its symbols and applies every relocation for a given load address.
//!
//! ```text
//!   offset 0        text     (SHF_ALLOC|SHF_EXECINSTR)        -> read-only + executable
//!   page-aligned    rodata   (SHF_ALLOC, not write, not exec) -> read-only, NX
//!   page-aligned    data     (SHF_ALLOC|SHF_WRITE, incl. bss) -> read-write, NX
//!   page-aligned    mem-S    (the section named MEM_S_SECTION) -> read-write, NX, shared with the host
//! ```
//!
//! Undefined symbols come from a resolver (the guest kernel's symbol table); defined ones are
//! relative to the load address. Relocation types: `R_X86_64_NONE`, `_64`, `_PC32`, `_PLT32`
//! (no PLT: the callee is within ±2 GiB), `_32`, `_32S`, `_PC64`. Any other type is an error
//! naming it, and 32-bit results are range-checked.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::elf::{Object, SymbolPlace, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS, SHT_PROGBITS};

/// The page size segments are aligned to.
pub const PAGE: u64 = 4096;
/// The section the payload's shared region (mem-S) lives in.
pub const MEM_S_SECTION: &str = ".bss.palisade_mem_s";

/// Why an object cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// An imported symbol is not in the kernel.
    #[error("the guest kernel has no symbol `{0}`, which the payload needs")]
    MissingSymbol(String),
    /// A relocation type the loader does not implement.
    #[error("relocation type {name} ({kind}) at {section}+{offset:#x} is not supported")]
    UnsupportedRelocation {
        /// `R_X86_64_*` name, or "unknown".
        name: &'static str,
        /// Its number.
        kind: u32,
        /// The patched section.
        section: String,
        /// Offset in it.
        offset: u64,
    },
    /// A 32-bit relocation's value does not fit.
    #[error("{name} at {section}+{offset:#x}: value {value:#x} does not fit in 32 bits")]
    Overflow {
        /// The relocation type.
        name: &'static str,
        /// The patched section.
        section: String,
        /// Offset in it.
        offset: u64,
        /// The value (as i128 to show both signs).
        value: i128,
    },
    /// A relocation patches bytes outside its section.
    #[error("relocation at {section}+{offset:#x} writes outside the section")]
    OutOfSection {
        /// The patched section.
        section: String,
        /// Offset in it.
        offset: u64,
    },
    /// A symbol is defined in a section that is not loaded.
    #[error("symbol `{0}` is defined in a section that is not loaded")]
    NotLoaded(String),
    /// Common symbols need a linker's allocation.
    #[error("symbol `{0}` is a common symbol (build with -fno-common)")]
    Common(String),
    /// An allocated section of a type the loader does not place.
    #[error("section {name} has type {kind}, which the loader does not place")]
    SectionType {
        /// The section.
        name: String,
        /// `sh_type`.
        kind: u32,
    },
    /// Alignment above a page, or not a power of two.
    #[error("section {name} asks for alignment {align:#x} (at most a page, a power of two)")]
    Alignment {
        /// The section.
        name: String,
        /// `sh_addralign`.
        align: u64,
    },
    /// The image would be absurdly large.
    #[error("the image would be {0:#x} bytes, more than 64 MiB")]
    TooLarge(u64),
    /// The load address is not page-aligned.
    #[error("load address {0:#x} is not page-aligned")]
    Unaligned(u64),
}

/// Which part of the image a section goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Segment {
    /// Code.
    Text,
    /// Read-only data.
    Rodata,
    /// Read-write data and bss.
    Data,
    /// The shared region.
    MemS,
}

/// Where each loaded section sits, as offsets from the load address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Offset of each section by index (`None`: not loaded).
    pub placement: Vec<Option<u64>>,
    /// Each segment's page-aligned range (empty segments have an empty range).
    pub segments: BTreeMap<Segment, Range<u64>>,
    /// Total size (a whole number of pages).
    pub size: u64,
}

impl Layout {
    /// Lays out the object's allocated sections.
    pub fn new(obj: &Object<'_>) -> Result<Layout, LoadError> {
        let mut placement = vec![None; obj.sections.len()];
        let mut segments = BTreeMap::new();
        let mut at = 0u64;
        for seg in [Segment::Text, Segment::Rodata, Segment::Data, Segment::MemS] {
            let start = at;
            for (i, s) in obj.sections.iter().enumerate() {
                if !s.is_alloc() || segment_of(s.name, s.flags) != seg {
                    continue;
                }
                if s.kind != SHT_PROGBITS && s.kind != SHT_NOBITS {
                    return Err(LoadError::SectionType { name: s.name.to_owned(), kind: s.kind });
                }
                let align = s.align.max(1);
                if !align.is_power_of_two() || align > PAGE {
                    return Err(LoadError::Alignment { name: s.name.to_owned(), align: s.align });
                }
                at = at.next_multiple_of(align);
                placement[i] = Some(at);
                at = at.checked_add(s.size).filter(|&e| e <= MAX_IMAGE).ok_or(LoadError::TooLarge(u64::MAX))?;
            }
            at = at.next_multiple_of(PAGE);
            segments.insert(seg, start..at);
        }
        Ok(Layout { placement, segments, size: at })
    }

    /// A segment's range (offsets from the load address).
    pub fn segment(&self, seg: Segment) -> Range<u64> {
        self.segments.get(&seg).cloned().unwrap_or(0..0)
    }
}

const MAX_IMAGE: u64 = 64 << 20;

fn segment_of(name: &str, flags: u64) -> Segment {
    if name == MEM_S_SECTION {
        Segment::MemS
    } else if flags & SHF_EXECINSTR != 0 {
        Segment::Text
    } else if flags & SHF_WRITE != 0 {
        Segment::Data
    } else {
        Segment::Rodata
    }
}

/// A relocated image, ready to be written at `base`.
#[derive(Debug, Clone)]
pub struct Image {
    /// The load address.
    pub base: u64,
    /// The bytes (NOBITS sections and padding zero).
    pub bytes: Vec<u8>,
    /// Where the sections went.
    pub layout: Layout,
    /// Global defined symbols -> absolute address.
    pub exports: BTreeMap<String, u64>,
    /// Imported symbols -> the address they were resolved to.
    pub imports: BTreeMap<String, u64>,
}

impl Image {
    /// The absolute address of an exported symbol.
    pub fn export(&self, name: &str) -> Option<u64> {
        self.exports.get(name).copied()
    }
}

/// Lays out `obj` at `base` and relocates it; `resolve` answers imported symbols.
pub fn load(obj: &Object<'_>, base: u64, resolve: &dyn Fn(&str) -> Option<u64>) -> Result<Image, LoadError> {
    if !base.is_multiple_of(PAGE) {
        return Err(LoadError::Unaligned(base));
    }
    let layout = Layout::new(obj)?;
    let mut bytes = vec![0u8; layout.size as usize];
    for (s, place) in obj.sections.iter().zip(&layout.placement) {
        if let (Some(off), true) = (place, s.kind == SHT_PROGBITS) {
            let off = *off as usize;
            bytes[off..off + s.data.len()].copy_from_slice(s.data);
        }
    }

    // Symbol values (Algorithm 1): imports from the kernel, the rest relative to `base`.
    let mut values = Vec::with_capacity(obj.symbols.len());
    let mut imports = BTreeMap::new();
    let mut exports = BTreeMap::new();
    for sym in &obj.symbols {
        let value = match sym.place {
            SymbolPlace::Undefined if sym.name.is_empty() => 0,
            SymbolPlace::Undefined => {
                let v = resolve(sym.name).ok_or_else(|| LoadError::MissingSymbol(sym.name.to_owned()))?;
                imports.insert(sym.name.to_owned(), v);
                v
            }
            SymbolPlace::Absolute => sym.value,
            SymbolPlace::Common => return Err(LoadError::Common(sym.name.to_owned())),
            SymbolPlace::Section(i) => match layout.placement[i] {
                Some(off) => {
                    let v = base.wrapping_add(off).wrapping_add(sym.value);
                    if sym.binding != 0 && !sym.name.is_empty() {
                        exports.insert(sym.name.to_owned(), v);
                    }
                    v
                }
                // Symbols of sections that are not loaded (.comment...) are an error only if a
                // relocation of loaded bytes uses them.
                None => {
                    values.push(None);
                    continue;
                }
            },
        };
        values.push(Some(value));
    }

    // Relocations (Algorithm 2).
    for rs in &obj.relocations {
        let target = &obj.sections[rs.target];
        let Some(sec_off) = layout.placement[rs.target] else {
            continue; // relocations of sections that are not loaded (debug info) patch nothing
        };
        for r in &rs.entries {
            let s = match values.get(r.symbol as usize) {
                Some(Some(v)) => *v,
                Some(None) => {
                    let name = obj.symbols.get(r.symbol as usize).map_or("", |s| s.name);
                    return Err(LoadError::NotLoaded(name.to_owned()));
                }
                None => 0, // symbol 0 (no symbol)
            };
            let p = base.wrapping_add(sec_off).wrapping_add(r.offset);
            apply(&mut bytes, target.name, target.size, sec_off, r.offset, r.kind, s, r.addend, p)?;
        }
    }
    Ok(Image { base, bytes, layout, exports, imports })
}

/// `R_X86_64_*` names by number, for errors.
pub fn relocation_name(kind: u32) -> &'static str {
    match kind {
        0 => "R_X86_64_NONE",
        1 => "R_X86_64_64",
        2 => "R_X86_64_PC32",
        3 => "R_X86_64_GOT32",
        4 => "R_X86_64_PLT32",
        5 => "R_X86_64_COPY",
        6 => "R_X86_64_GLOB_DAT",
        7 => "R_X86_64_JUMP_SLOT",
        8 => "R_X86_64_RELATIVE",
        9 => "R_X86_64_GOTPCREL",
        10 => "R_X86_64_32",
        11 => "R_X86_64_32S",
        12 => "R_X86_64_16",
        13 => "R_X86_64_PC16",
        14 => "R_X86_64_8",
        15 => "R_X86_64_PC8",
        19 => "R_X86_64_TLSGD",
        20 => "R_X86_64_TLSLD",
        21 => "R_X86_64_DTPOFF32",
        22 => "R_X86_64_GOTTPOFF",
        23 => "R_X86_64_TPOFF32",
        24 => "R_X86_64_PC64",
        25 => "R_X86_64_GOTOFF64",
        26 => "R_X86_64_GOTPC32",
        41 => "R_X86_64_GOTPCRELX",
        42 => "R_X86_64_REX_GOTPCRELX",
        _ => "unknown",
    }
}

#[allow(clippy::too_many_arguments)]
fn apply(
    bytes: &mut [u8],
    section: &str,
    section_size: u64,
    sec_off: u64,
    offset: u64,
    kind: u32,
    s: u64,
    a: i64,
    p: u64,
) -> Result<(), LoadError> {
    let name = relocation_name(kind);
    let width = match kind {
        0 => return Ok(()),
        1 | 24 => 8,
        2 | 4 | 10 | 11 => 4,
        _ => {
            return Err(LoadError::UnsupportedRelocation { name, kind, section: section.to_owned(), offset });
        }
    };
    let outside = || LoadError::OutOfSection { section: section.to_owned(), offset };
    if !matches!(offset.checked_add(width), Some(end) if end <= section_size) {
        return Err(outside());
    }
    let at = (sec_off + offset) as usize;
    let sa = i128::from(s) + i128::from(a);
    let value: i128 = match kind {
        1 => sa,
        24 | 2 | 4 => sa - i128::from(p),
        _ => sa,
    };
    // Addresses are 64-bit: S + A wraps like the CPU's arithmetic.
    let wrapped = value as u64;
    let overflow = || LoadError::Overflow { name, section: section.to_owned(), offset, value: value_signed(wrapped) };
    match kind {
        1 | 24 => bytes[at..at + 8].copy_from_slice(&wrapped.to_le_bytes()),
        10 => {
            let v = u32::try_from(wrapped).map_err(|_| overflow())?;
            bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        _ => {
            let v = i32::try_from(wrapped as i64).map_err(|_| overflow())?;
            bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
    Ok(())
}

fn value_signed(v: u64) -> i128 {
    i128::from(v as i64)
}

#[cfg(test)]
mod tests;
