//! Just enough of ELF64 (little endian) to read a kernel module's `.modinfo` and to tell whether
//! a program is statically linked. Every read is bounds-checked; no input makes it panic.

const PT_INTERP: u32 = 3;

/// Why an ELF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Not an ELF64 little-endian file.
    #[error("not a 64-bit little-endian ELF file")]
    NotElf64,
    /// A header or table points outside the file.
    #[error("{0} lies outside the file")]
    OutOfBounds(&'static str),
    /// The section is absent.
    #[error("no `{0}` section")]
    NoSection(&'static str),
}

/// A checked view of an ELF64 little-endian image.
#[derive(Debug)]
pub struct Elf<'a> {
    bytes: &'a [u8],
}

impl<'a> Elf<'a> {
    /// Checks the identification bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        // 0x7f 'E' 'L' 'F', class 2 (64-bit), data 1 (little endian).
        if bytes.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) || bytes.len() < 64 {
            return Err(ElfError::NotElf64);
        }
        Ok(Elf { bytes })
    }

    /// Whether the image asks for a program interpreter (is dynamically linked).
    pub fn has_interpreter(&self) -> Result<bool, ElfError> {
        let phoff = self.u64(0x20)?;
        let phentsize = u64::from(self.u16(0x36)?);
        let phnum = u64::from(self.u16(0x38)?);
        for i in 0..phnum {
            let at = phoff.checked_add(i * phentsize).ok_or(ElfError::OutOfBounds("program header"))?;
            if self.u32(at)? == PT_INTERP {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The contents of the section called `name`.
    pub fn section(&self, name: &'static str) -> Result<&'a [u8], ElfError> {
        let shoff = self.u64(0x28)?;
        let shentsize = u64::from(self.u16(0x3a)?);
        let shnum = u64::from(self.u16(0x3c)?);
        let shstrndx = u64::from(self.u16(0x3e)?);
        let header = |i: u64| shoff.checked_add(i * shentsize).ok_or(ElfError::OutOfBounds("section header"));
        let strtab = self.section_bytes(header(shstrndx)?)?;
        for i in 0..shnum {
            let at = header(i)?;
            let name_off = self.u32(at)? as usize;
            let section_name = strtab.get(name_off..).ok_or(ElfError::OutOfBounds("section name"))?;
            let section_name = section_name.split(|b| *b == 0).next().unwrap_or_default();
            if section_name == name.as_bytes() {
                return self.section_bytes(at);
            }
        }
        Err(ElfError::NoSection(name))
    }

    fn section_bytes(&self, header: u64) -> Result<&'a [u8], ElfError> {
        let field = |off: u64| header.checked_add(off).ok_or(ElfError::OutOfBounds("section header"));
        let offset = self.u64(field(0x18)?)?;
        let size = self.u64(field(0x20)?)?;
        let end = offset.checked_add(size).ok_or(ElfError::OutOfBounds("section"))?;
        self.slice(offset, end, "section")
    }

    fn slice(&self, start: u64, end: u64, what: &'static str) -> Result<&'a [u8], ElfError> {
        let start = usize::try_from(start).map_err(|_| ElfError::OutOfBounds(what))?;
        let end = usize::try_from(end).map_err(|_| ElfError::OutOfBounds(what))?;
        self.bytes.get(start..end).ok_or(ElfError::OutOfBounds(what))
    }

    fn array<const N: usize>(&self, at: u64) -> Result<[u8; N], ElfError> {
        let end = at.checked_add(N as u64).ok_or(ElfError::OutOfBounds("header field"))?;
        let bytes = self.slice(at, end, "header field")?;
        bytes.try_into().map_err(|_| ElfError::OutOfBounds("header field"))
    }

    fn u16(&self, at: u64) -> Result<u16, ElfError> {
        self.array(at).map(u16::from_le_bytes)
    }

    fn u32(&self, at: u64) -> Result<u32, ElfError> {
        self.array(at).map(u32::from_le_bytes)
    }

    fn u64(&self, at: u64) -> Result<u64, ElfError> {
        self.array(at).map(u64::from_le_bytes)
    }
}

/// The `key=value` strings of a module's `.modinfo` section.
pub fn modinfo(module: &[u8]) -> Result<Vec<(String, String)>, ElfError> {
    let section = Elf::parse(module)?.section(".modinfo")?;
    Ok(section
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let text = std::str::from_utf8(entry).ok()?;
            let (key, value) = text.split_once('=')?;
            Some((key.to_string(), value.to_string()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_binary_itself_is_readable() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();

        let elf = Elf::parse(&exe).unwrap();

        // Rust test binaries on Debian are dynamically linked against glibc.
        assert!(elf.has_interpreter().unwrap());
        assert!(!elf.section(".text").unwrap().is_empty());
        assert!(matches!(elf.section(".modinfo"), Err(ElfError::NoSection(".modinfo"))));
    }

    #[test]
    fn garbage_and_truncations_are_errors_not_panics() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(matches!(Elf::parse(b"hello"), Err(ElfError::NotElf64)));
        for cut in [64, 100, 1000, 4096] {
            if let Ok(elf) = Elf::parse(&exe[..cut]) {
                let _ = elf.has_interpreter();
                assert!(elf.section(".text").is_err());
            }
        }
        let mut corrupt = exe[..8192].to_vec();
        corrupt[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        corrupt[0x20..0x28].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
        let elf = Elf::parse(&corrupt).unwrap();
        assert!(elf.section(".modinfo").is_err());
        assert!(elf.has_interpreter().is_err());
    }
}
