//! The cpio `newc` format (what the Linux kernel unpacks as an initramfs), written and read in
//! Rust.
//!
//! Each entry is a 110-byte ASCII header (`070701` then thirteen 8-digit hex fields), the
//! NUL-terminated name, padding to a 4-byte boundary, the data, padding to a 4-byte boundary.
//! The archive ends with an entry named `TRAILER!!!`. The reader exists to check the writer and
//! never panics on any input.

use std::io::Write;

const MAGIC: &[u8; 6] = b"070701";
const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";

/// File type bits of `st_mode`.
pub const S_IFDIR: u32 = 0o040000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Symbolic link (its data is the target).
pub const S_IFLNK: u32 = 0o120000;
/// Character device.
pub const S_IFCHR: u32 = 0o020000;
const S_IFMT: u32 = 0o170000;

/// Why writing or reading a cpio archive failed.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    /// The underlying writer failed.
    #[error("could not write the archive")]
    Write(#[source] std::io::Error),
    /// A name is empty, absolute, contains a NUL or is the trailer name.
    #[error("invalid entry name {0:?}")]
    InvalidName(String),
    /// An entry's data does not fit the format's 32-bit size field.
    #[error("entry {0:?} is too large for the newc format")]
    TooLarge(String),
    /// The archive is truncated or malformed at `offset`.
    #[error("malformed archive at byte {offset}: {detail}")]
    Malformed {
        /// Byte offset of the problem.
        offset: usize,
        /// What is wrong.
        detail: &'static str,
    },
}

/// One archive member as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, without a leading `/`.
    pub name: String,
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    /// Inode number.
    pub ino: u32,
    /// Link count.
    pub nlink: u32,
    /// Device major/minor for character and block devices.
    pub rdev: (u32, u32),
    /// File contents, or the target of a symbolic link.
    pub data: Vec<u8>,
}

impl Entry {
    /// The file type bits of `mode`.
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }
}

/// Writes a `newc` archive entry by entry. Call [`CpioWriter::finish`] to write the trailer.
#[derive(Debug)]
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    written: usize,
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        CpioWriter { out, next_ino: 1, written: 0 }
    }

    /// Adds a directory with permissions `perm` (e.g. `0o755`).
    pub fn dir(&mut self, name: &str, perm: u32) -> Result<(), CpioError> {
        self.entry(name, S_IFDIR | (perm & 0o7777), 2, (0, 0), &[])
    }

    /// Adds a regular file with permissions `perm`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<(), CpioError> {
        self.entry(name, S_IFREG | (perm & 0o7777), 1, (0, 0), data)
    }

    /// Adds a symbolic link `name` pointing to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> Result<(), CpioError> {
        self.entry(name, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// Adds a character device node.
    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> Result<(), CpioError> {
        self.entry(name, S_IFCHR | (perm & 0o7777), 1, (major, minor), &[])
    }

    /// Writes the trailer and returns the writer.
    pub fn finish(mut self) -> Result<W, CpioError> {
        self.raw_entry(TRAILER, 0, 0, 1, (0, 0), &[])?;
        self.out.flush().map_err(CpioError::Write)?;
        Ok(self.out)
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) -> Result<(), CpioError> {
        if name.is_empty() || name.starts_with('/') || name.contains('\0') || name == TRAILER {
            return Err(CpioError::InvalidName(name.to_string()));
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.raw_entry(name, ino, mode, nlink, rdev, data)
    }

    fn raw_entry(
        &mut self,
        name: &str,
        ino: u32,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<(), CpioError> {
        let size = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge(name.to_string()))?;
        let name_size = u32::try_from(name.len() + 1).map_err(|_| CpioError::TooLarge(name.to_string()))?;
        // Fields: ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor
        // namesize check. mtime 0 keeps archives reproducible.
        let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, name_size, 0];
        let mut header = String::with_capacity(HEADER_LEN);
        header.push_str("070701");
        for field in fields {
            header.push_str(&format!("{field:08X}"));
        }
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), CpioError> {
        self.out.write_all(bytes).map_err(CpioError::Write)?;
        self.written += bytes.len();
        Ok(())
    }

    fn pad(&mut self) -> Result<(), CpioError> {
        let pad = (4 - self.written % 4) % 4;
        self.put(&[0u8; 3][..pad])
    }
}

/// Reads every entry of a `newc` archive up to its trailer. Never panics.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, CpioError> {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    loop {
        let malformed = |offset, detail| CpioError::Malformed { offset, detail };
        let header = bytes.get(pos..pos + HEADER_LEN).ok_or(malformed(pos, "truncated header"))?;
        if &header[..6] != MAGIC {
            return Err(malformed(pos, "bad magic (not newc)"));
        }
        let mut fields = [0u32; 13];
        for (i, field) in fields.iter_mut().enumerate() {
            let hex = &header[6 + i * 8..14 + i * 8];
            let text = std::str::from_utf8(hex).map_err(|_| malformed(pos, "non-ASCII header field"))?;
            *field = u32::from_str_radix(text, 16).map_err(|_| malformed(pos, "non-hex header field"))?;
        }
        let [ino, mode, _uid, _gid, nlink, _mtime, size, _, _, rmaj, rmin, name_size, _check] = fields;
        let name_start = pos + HEADER_LEN;
        let name_end = name_start.checked_add(name_size as usize).ok_or(malformed(pos, "name size overflows"))?;
        let raw_name = bytes.get(name_start..name_end).ok_or(malformed(name_start, "truncated name"))?;
        let (last, name_bytes) = raw_name.split_last().ok_or(malformed(name_start, "empty name"))?;
        if *last != 0 {
            return Err(malformed(name_start, "name not NUL-terminated"));
        }
        let name = std::str::from_utf8(name_bytes).map_err(|_| malformed(name_start, "name not UTF-8"))?;
        let data_start = align4(name_end);
        let data_end = data_start.checked_add(size as usize).ok_or(malformed(pos, "size overflows"))?;
        if name == TRAILER {
            return Ok(entries);
        }
        let data = bytes.get(data_start..data_end).ok_or(malformed(data_start, "truncated data"))?;
        entries.push(Entry { name: name.to_string(), mode, ino, nlink, rdev: (rmaj, rmin), data: data.to_vec() });
        pos = align4(data_end);
    }
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build() -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("bin", 0o755).unwrap();
        w.file("bin/busybox", 0o755, b"ELF!x").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.char_device("dev/console", 0o600, 5, 1).unwrap();
        w.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn written_archive_parses_back_with_its_fields() {
        let bytes = build();

        let entries = parse(&bytes).unwrap();

        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["bin", "bin/busybox", "bin/sh", "dev/console", "init"]);
        assert_eq!(entries[0].file_type(), S_IFDIR);
        assert_eq!(entries[0].nlink, 2);
        assert_eq!(entries[1].mode, S_IFREG | 0o755);
        assert_eq!(entries[1].data, b"ELF!x");
        assert_eq!(entries[2].file_type(), S_IFLNK);
        assert_eq!(entries[2].data, b"busybox");
        assert_eq!(entries[3].mode, S_IFCHR | 0o600);
        assert_eq!(entries[3].rdev, (5, 1));
        let inos: Vec<u32> = entries.iter().map(|e| e.ino).collect();
        assert_eq!(inos, [1, 2, 3, 4, 5], "each entry gets its own inode");
    }

    #[test]
    fn header_is_ascii_hex_and_every_member_is_4_byte_aligned() {
        let bytes = build();

        // First header: magic, ino 1, directory mode, name size 4 ("bin\0").
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(&bytes[6..14], b"00000001");
        assert_eq!(&bytes[14..22], b"000041ED");
        assert_eq!(&bytes[94..102], b"00000004");
        // 110-byte header + "bin\0" = 114, padded to 116: the next header starts there.
        assert_eq!(&bytes[114..116], &[0, 0]);
        assert_eq!(&bytes[116..122], b"070701");
        // The archive as a whole ends aligned, with the trailer.
        assert_eq!(bytes.len() % 4, 0);
        let tail = String::from_utf8_lossy(&bytes[bytes.len() - 16..]);
        assert!(tail.contains("TRAILER!!!"), "{tail:?}");
    }

    #[test]
    fn bad_names_are_rejected() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(matches!(w.file("/init", 0o755, b""), Err(CpioError::InvalidName(_))));
        assert!(matches!(w.file("", 0o755, b""), Err(CpioError::InvalidName(_))));
        assert!(matches!(w.file("TRAILER!!!", 0o644, b""), Err(CpioError::InvalidName(_))));
    }

    #[test]
    fn reader_never_panics_on_truncated_or_corrupt_input() {
        let bytes = build();
        // The last 3 bytes are the trailer's padding, which (like the kernel) the reader does not
        // require; every shorter prefix lacks part of the trailer and must be an error.
        for cut in 0..bytes.len() - 3 {
            assert!(parse(&bytes[..cut]).is_err(), "prefix of {cut} bytes parsed");
        }
        let mut corrupt = bytes.clone();
        for i in (0..corrupt.len()).step_by(7) {
            corrupt[i] = corrupt[i].wrapping_add(0x5a);
            let _ = parse(&corrupt);
        }
        let mut huge = bytes;
        huge[54..62].copy_from_slice(b"FFFFFFFF"); // file size of the first entry
        assert!(parse(&huge).is_err());
    }
}
