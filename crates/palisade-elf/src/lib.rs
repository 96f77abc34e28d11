//! Palisade's one ELF reader. [`Image`] is any ELF64 little-endian file: its sections by name
//! and whether it asks for a program interpreter (a kernel module's `.modinfo`, a dynamically
//! linked busybox). [`Object`] is an x86-64 relocatable object (`ET_REL`) with its symbols and
//! `RELA` relocations, as the monitor's loader links it. Every offset, size and index is checked
//! against the input; no input makes it panic (fuzzed: `fuzz/fuzz_targets/monitor_elf.rs`,
//! `guest_images.rs`). Owns no knowledge of what the sections mean.

#![forbid(unsafe_code)]

/// Section types the loader cares about.
pub const SHT_PROGBITS: u32 = 1;
/// Symbol table.
pub const SHT_SYMTAB: u32 = 2;
/// Relocations with addends.
pub const SHT_RELA: u32 = 4;
/// Zero-filled at load (`.bss`).
pub const SHT_NOBITS: u32 = 8;
/// Relocations without addends (x86-64 compilers never emit them).
pub const SHT_REL: u32 = 9;
/// Occupies memory at run time.
pub const SHF_WRITE: u64 = 0x1;
/// Loaded.
pub const SHF_ALLOC: u64 = 0x2;
/// Code.
pub const SHF_EXECINSTR: u64 = 0x4;

const EHDR_SIZE: usize = 64;
const SHDR_SIZE: usize = 64;
const SYM_SIZE: usize = 24;
const RELA_SIZE: usize = 24;
const SHN_UNDEF: u16 = 0;
const SHN_LORESERVE: u16 = 0xff00;
const SHN_ABS: u16 = 0xfff1;
const SHN_COMMON: u16 = 0xfff2;
const SHN_XINDEX: u16 = 0xffff;
const MAX_SECTIONS: usize = 4096;
const PT_INTERP: u32 = 3;

/// Why bytes are not an object the loader accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// Something lies outside the input.
    #[error("{what} at offset {offset:#x} (+{len:#x}) lies outside the {size:#x}-byte object")]
    OutOfBounds {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: u64,
        /// How much.
        len: u64,
        /// The object's size.
        size: usize,
    },
    /// Not an ELF file.
    #[error("not an ELF file (bad magic)")]
    BadMagic,
    /// Not 64-bit little-endian.
    #[error("not a 64-bit little-endian ELF object (class {class}, data {data})")]
    NotElf64Le {
        /// EI_CLASS.
        class: u8,
        /// EI_DATA.
        data: u8,
    },
    /// Not ET_REL.
    #[error("ELF type {0} is not a relocatable object (ET_REL = 1)")]
    NotRelocatable(u16),
    /// Not x86-64.
    #[error("ELF machine {0} is not x86-64 (62)")]
    NotX86_64(u16),
    /// Unexpected header entry size.
    #[error("{what} entries are {found} bytes, expected {expected}")]
    EntrySize {
        /// Which table.
        what: &'static str,
        /// Declared size.
        found: u64,
        /// What ELF64 requires.
        expected: usize,
    },
    /// Too many sections, or an extended section index.
    #[error("{0} sections is more than this loader accepts ({MAX_SECTIONS}) or uses extended numbering")]
    TooManySections(usize),
    /// A section index points nowhere.
    #[error("{what} refers to section {index}, but there are {count}")]
    BadSectionIndex {
        /// Who refers.
        what: &'static str,
        /// The index.
        index: u64,
        /// Number of sections.
        count: usize,
    },
    /// A name is not NUL-terminated inside its string table, or not UTF-8.
    #[error("{what} name at string offset {offset:#x} is unterminated or not UTF-8")]
    BadName {
        /// Whose name.
        what: &'static str,
        /// Offset into the string table.
        offset: u32,
    },
    /// More than one symbol table.
    #[error("the object has more than one symbol table")]
    SeveralSymbolTables,
    /// A `REL` section (x86-64 objects use `RELA`).
    #[error("section {0} holds REL relocations without addends, which x86-64 objects do not use")]
    RelSection(String),
    /// The file has no section of that name.
    #[error("no `{0}` section")]
    NoSection(String),
    /// A relocation names a symbol that does not exist.
    #[error("relocation {index} of section {section} names symbol {symbol}, but there are {count}")]
    BadSymbolIndex {
        /// The relocation section.
        section: String,
        /// The relocation's index.
        index: usize,
        /// The symbol index.
        symbol: u32,
        /// Number of symbols.
        count: usize,
    },
}

/// One section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section<'a> {
    /// Its name.
    pub name: &'a str,
    /// `sh_type`.
    pub kind: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_addralign` (0 and 1 mean none).
    pub align: u64,
    /// `sh_size` (also for `NOBITS`, which has no bytes).
    pub size: u64,
    /// Its bytes in the file (empty for `NOBITS`).
    pub data: &'a [u8],
    /// `sh_link`.
    pub link: u32,
    /// `sh_info`.
    pub info: u32,
}

impl Section<'_> {
    /// Loaded at run time.
    pub fn is_alloc(&self) -> bool {
        self.flags & SHF_ALLOC != 0
    }
}

/// Where a symbol is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolPlace {
    /// Undefined here: imported.
    Undefined,
    /// An absolute value.
    Absolute,
    /// A common block (not accepted by the loader: build with `-fno-common`).
    Common,
    /// Defined in this section, at `value` from its start.
    Section(usize),
}

/// One symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol<'a> {
    /// Its name (empty for section symbols).
    pub name: &'a str,
    /// `st_value`.
    pub value: u64,
    /// `st_size`.
    pub size: u64,
    /// Where it is defined.
    pub place: SymbolPlace,
    /// `STB_*` (0 local, 1 global, 2 weak).
    pub binding: u8,
    /// `STT_*` (0 none, 1 object, 2 func, 3 section, 4 file).
    pub kind: u8,
}

/// One `Elf64_Rela`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rela {
    /// Offset in the target section.
    pub offset: u64,
    /// Symbol index.
    pub symbol: u32,
    /// `R_X86_64_*`.
    pub kind: u32,
    /// Addend.
    pub addend: i64,
}

/// The relocations that apply to one section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaSection<'a> {
    /// The relocation section's name.
    pub name: &'a str,
    /// Index of the section they patch.
    pub target: usize,
    /// The entries.
    pub entries: Vec<Rela>,
}

/// A parsed relocatable object.
#[derive(Debug, Clone)]
pub struct Object<'a> {
    /// Every section header, by index (index 0 is the null section).
    pub sections: Vec<Section<'a>>,
    /// The symbol table, by index (index 0 is the null symbol); empty without one.
    pub symbols: Vec<Symbol<'a>>,
    /// Every `RELA` section.
    pub relocations: Vec<RelaSection<'a>>,
}

fn slice<'a>(bytes: &'a [u8], what: &'static str, offset: u64, len: u64) -> Result<&'a [u8], ElfError> {
    let oob = || ElfError::OutOfBounds { what, offset, len, size: bytes.len() };
    let start = usize::try_from(offset).map_err(|_| oob())?;
    let len_us = usize::try_from(len).map_err(|_| oob())?;
    let end = start.checked_add(len_us).ok_or_else(oob)?;
    bytes.get(start..end).ok_or_else(oob)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn name_at<'a>(strtab: &'a [u8], offset: u32, what: &'static str) -> Result<&'a str, ElfError> {
    let bad = || ElfError::BadName { what, offset };
    let rest = strtab.get(offset as usize..).ok_or_else(bad)?;
    let end = rest.iter().position(|&c| c == 0).ok_or_else(bad)?;
    std::str::from_utf8(&rest[..end]).map_err(|_| bad())
}

/// The fields of the ELF header this reader uses, checked for magic, class and byte order.
#[derive(Debug, Clone, Copy)]
struct Header {
    e_type: u16,
    machine: u16,
    phoff: u64,
    phentsize: u16,
    phnum: u16,
    shoff: u64,
    shentsize: u16,
    shnum: usize,
    shstrndx: u16,
}

fn header(bytes: &[u8]) -> Result<Header, ElfError> {
    let ehdr = slice(bytes, "ELF header", 0, EHDR_SIZE as u64)?;
    if &ehdr[..4] != b"\x7fELF" {
        return Err(ElfError::BadMagic);
    }
    if ehdr[4] != 2 || ehdr[5] != 1 {
        return Err(ElfError::NotElf64Le { class: ehdr[4], data: ehdr[5] });
    }
    Ok(Header {
        e_type: u16_at(ehdr, 16),
        machine: u16_at(ehdr, 18),
        phoff: u64_at(ehdr, 32),
        phentsize: u16_at(ehdr, 54),
        phnum: u16_at(ehdr, 56),
        shoff: u64_at(ehdr, 40),
        shentsize: u16_at(ehdr, 58),
        shnum: usize::from(u16_at(ehdr, 60)),
        shstrndx: u16_at(ehdr, 62),
    })
}

/// Every section header of the file, by index.
fn sections<'a>(bytes: &'a [u8], h: &Header) -> Result<Vec<Section<'a>>, ElfError> {
    if h.shnum == 0 {
        return Ok(Vec::new());
    }
    if usize::from(h.shentsize) != SHDR_SIZE {
        return Err(ElfError::EntrySize { what: "section header", found: h.shentsize.into(), expected: SHDR_SIZE });
    }
    if h.shnum > MAX_SECTIONS || h.shstrndx == SHN_XINDEX {
        return Err(ElfError::TooManySections(h.shnum));
    }
    let table = slice(bytes, "section header table", h.shoff, (h.shnum * SHDR_SIZE) as u64)?;
    let raw: Vec<&[u8]> = table.chunks_exact(SHDR_SIZE).collect();
    let shstr_index = usize::from(h.shstrndx);
    let shstr_hdr = raw.get(shstr_index).ok_or(ElfError::BadSectionIndex {
        what: "e_shstrndx",
        index: shstr_index as u64,
        count: h.shnum,
    })?;
    let shstrtab = section_bytes(bytes, shstr_hdr, "section name table")?;
    let mut out = Vec::with_capacity(h.shnum);
    for sh in &raw {
        out.push(Section {
            name: name_at(shstrtab, u32_at(sh, 0), "section")?,
            kind: u32_at(sh, 4),
            flags: u64_at(sh, 8),
            size: u64_at(sh, 32),
            link: u32_at(sh, 40),
            info: u32_at(sh, 44),
            align: u64_at(sh, 48),
            data: section_bytes(bytes, sh, "section")?,
        });
    }
    Ok(out)
}

/// Any ELF64 little-endian file (executable, shared object, relocatable object, module).
#[derive(Debug, Clone)]
pub struct Image<'a> {
    bytes: &'a [u8],
    header: Header,
    /// Every section header, by index (index 0 is the null section).
    pub sections: Vec<Section<'a>>,
}

impl<'a> Image<'a> {
    /// Parses the header and the section table of `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Image<'a>, ElfError> {
        let header = header(bytes)?;
        let sections = sections(bytes, &header)?;
        Ok(Image { bytes, header, sections })
    }

    /// The contents of the section called `name`.
    pub fn section(&self, name: &str) -> Result<&'a [u8], ElfError> {
        self.sections
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.data)
            .ok_or_else(|| ElfError::NoSection(name.to_owned()))
    }

    /// Whether the file asks for a program interpreter (is dynamically linked).
    pub fn has_interpreter(&self) -> Result<bool, ElfError> {
        let h = &self.header;
        if h.phnum == 0 {
            return Ok(false);
        }
        let entry = u64::from(h.phentsize);
        if entry < 4 {
            return Err(ElfError::EntrySize { what: "program header", found: entry, expected: 56 });
        }
        let table = slice(self.bytes, "program header table", h.phoff, entry * u64::from(h.phnum))?;
        Ok(table.chunks_exact(entry as usize).any(|ph| u32_at(ph, 0) == PT_INTERP))
    }
}

impl<'a> Object<'a> {
    /// Parses `bytes` as an x86-64 ELF64 relocatable object.
    pub fn parse(bytes: &'a [u8]) -> Result<Object<'a>, ElfError> {
        let h = header(bytes)?;
        if h.e_type != 1 {
            return Err(ElfError::NotRelocatable(h.e_type));
        }
        if h.machine != 62 {
            return Err(ElfError::NotX86_64(h.machine));
        }
        let sections = sections(bytes, &h)?;
        let symbols = parse_symbols(&sections)?;
        let mut relocations = Vec::new();
        for s in &sections {
            match s.kind {
                SHT_REL => return Err(ElfError::RelSection(s.name.to_owned())),
                SHT_RELA => relocations.push(parse_rela(s, sections.len(), symbols.len())?),
                _ => {}
            }
        }
        Ok(Object { sections, symbols, relocations })
    }

    /// The undefined (imported) symbols' names, without duplicates, sorted.
    pub fn imports(&self) -> Vec<&'a str> {
        let mut names: Vec<&str> = self
            .symbols
            .iter()
            .skip(1)
            .filter(|s| s.place == SymbolPlace::Undefined && !s.name.is_empty())
            .map(|s| s.name)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

fn section_bytes<'a>(bytes: &'a [u8], h: &[u8], what: &'static str) -> Result<&'a [u8], ElfError> {
    if u32_at(h, 4) == SHT_NOBITS || u32_at(h, 4) == 0 {
        return Ok(&[]);
    }
    slice(bytes, what, u64_at(h, 24), u64_at(h, 32))
}

fn parse_symbols<'a>(sections: &[Section<'a>]) -> Result<Vec<Symbol<'a>>, ElfError> {
    let mut tables = sections.iter().filter(|s| s.kind == SHT_SYMTAB);
    let Some(symtab) = tables.next() else { return Ok(Vec::new()) };
    if tables.next().is_some() {
        return Err(ElfError::SeveralSymbolTables);
    }
    let strtab = sections.get(symtab.link as usize).ok_or(ElfError::BadSectionIndex {
        what: "the symbol table's string table link",
        index: symtab.link.into(),
        count: sections.len(),
    })?;
    if symtab.data.len() % SYM_SIZE != 0 {
        return Err(ElfError::EntrySize { what: "symbol", found: symtab.data.len() as u64, expected: SYM_SIZE });
    }
    let mut out = Vec::with_capacity(symtab.data.len() / SYM_SIZE);
    for s in symtab.data.chunks_exact(SYM_SIZE) {
        let info = s[4];
        let shndx = u16_at(s, 6);
        let place = match shndx {
            SHN_UNDEF => SymbolPlace::Undefined,
            SHN_ABS => SymbolPlace::Absolute,
            SHN_COMMON => SymbolPlace::Common,
            i if i >= SHN_LORESERVE => {
                return Err(ElfError::BadSectionIndex { what: "a symbol", index: i.into(), count: sections.len() })
            }
            i if usize::from(i) >= sections.len() => {
                return Err(ElfError::BadSectionIndex { what: "a symbol", index: i.into(), count: sections.len() })
            }
            i => SymbolPlace::Section(usize::from(i)),
        };
        out.push(Symbol {
            name: name_at(strtab.data, u32_at(s, 0), "symbol")?,
            value: u64_at(s, 8),
            size: u64_at(s, 16),
            place,
            binding: info >> 4,
            kind: info & 0xf,
        });
    }
    Ok(out)
}

fn parse_rela<'a>(s: &Section<'a>, nsections: usize, nsymbols: usize) -> Result<RelaSection<'a>, ElfError> {
    if !s.data.len().is_multiple_of(RELA_SIZE) {
        return Err(ElfError::EntrySize { what: "relocation", found: s.data.len() as u64, expected: RELA_SIZE });
    }
    let target = s.info as usize;
    if target == 0 || target >= nsections {
        return Err(ElfError::BadSectionIndex { what: "a relocation section", index: s.info.into(), count: nsections });
    }
    let mut entries = Vec::with_capacity(s.data.len() / RELA_SIZE);
    for (index, r) in s.data.chunks_exact(RELA_SIZE).enumerate() {
        let info = u64_at(r, 8);
        let symbol = (info >> 32) as u32;
        if symbol as usize >= nsymbols.max(1) {
            return Err(ElfError::BadSymbolIndex { section: s.name.to_owned(), index, symbol, count: nsymbols });
        }
        entries.push(Rela { offset: u64_at(r, 0), symbol, kind: info as u32, addend: u64_at(r, 16) as i64 });
    }
    Ok(RelaSection { name: s.name, target, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_binary_itself_is_readable_as_an_image() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let image = Image::parse(&exe).unwrap();
        // Rust test binaries on Debian are dynamically linked against glibc.
        assert!(image.has_interpreter().unwrap());
        assert!(!image.section(".text").unwrap().is_empty());
        assert_eq!(image.section(".modinfo"), Err(ElfError::NoSection(".modinfo".into())));
        assert!(matches!(Object::parse(&exe), Err(ElfError::NotRelocatable(3))), "a PIE is ET_DYN");
    }

    #[test]
    fn garbage_and_truncations_are_errors_not_panics() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            Image::parse(b"hello").unwrap_err(),
            ElfError::OutOfBounds { what: "ELF header", offset: 0, len: 64, size: 5 }
        );
        for cut in [64, 100, 1000, 4096] {
            if let Ok(image) = Image::parse(&exe[..cut]) {
                let _ = image.has_interpreter();
            }
        }
        let mut corrupt = exe[..8192].to_vec();
        corrupt[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Image::parse(&corrupt).is_err(), "a section table past the end");
        corrupt[0x3c..0x3e].copy_from_slice(&0u16.to_le_bytes());
        corrupt[0x20..0x28].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
        assert!(Image::parse(&corrupt).unwrap().has_interpreter().is_err(), "a program table past the end");
    }
}
