//! Where a QEMU process keeps guest RAM: HMP's `info ramblock` table (block names, offsets,
//! sizes; Debian's QEMU 7.2 does not print host addresses) and the process's
//! `/proc/PID/maps`, both parsed by checked parsers that never panic on any input.

/// One RAM block as `info ramblock` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamBlock {
    /// Block name, e.g. `pc.ram`.
    pub name: String,
    /// Host page size in bytes.
    pub page_size: u64,
    /// Offset in QEMU's ram_addr space.
    pub offset: u64,
    /// Bytes in use.
    pub used: u64,
    /// Bytes reserved.
    pub total: u64,
}

/// The blocks of an `info ramblock` output; lines that are not block rows (the header, blank
/// lines) are skipped, and a row that does not parse is skipped too (it cannot be guest RAM
/// we could use).
pub fn parse_info_ramblock(text: &str) -> Vec<RamBlock> {
    text.lines().filter_map(parse_block_row).collect()
}

fn parse_block_row(line: &str) -> Option<RamBlock> {
    // `   pc.ram    4 KiB  0x0000000000000000 0x0000000040000000 0x0000000040000000`; a block
    // name may contain spaces only in theory, so the numbers are taken from the end.
    let words: Vec<&str> = line.split_whitespace().collect();
    let n = words.len();
    if n < 6 {
        return None;
    }
    let hex = |w: &str| u64::from_str_radix(w.strip_prefix("0x")?, 16).ok();
    let (offset, used, total) = (hex(words[n - 3])?, hex(words[n - 2])?, hex(words[n - 1])?);
    let page_size = parse_size(words[n - 5], words[n - 4])?;
    let name = words[..n - 5].join(" ");
    (!name.is_empty()).then_some(RamBlock { name, page_size, offset, used, total })
}

/// `4 KiB`, `2 MiB`, `1 GiB` as QEMU's `size_to_str` prints page sizes.
fn parse_size(number: &str, unit: &str) -> Option<u64> {
    let value: u64 = number.parse().ok()?;
    let shift = match unit {
        "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => return None,
    };
    value.checked_mul(1 << shift)
}

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First host address.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// Readable and writable.
    pub read_write: bool,
    /// Shared (`s`) rather than private (`p`).
    pub shared: bool,
    /// Offset in the mapped file.
    pub file_offset: u64,
    /// The file (`/dev/shm/x`, `/memfd:pc.ram (deleted)`), or `None` for anonymous memory.
    pub path: Option<String>,
}

impl Mapping {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether it is empty (never, for a kernel-reported mapping).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The mappings of a `/proc/PID/maps` text; malformed lines are skipped.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_maps_line).collect()
}

fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (range, perms, offset) = (fields.next()?, fields.next()?, fields.next()?);
    let (_dev, _inode) = (fields.next()?, fields.next()?);
    let path = fields.next().map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned);
    let (start, end) = range.split_once('-')?;
    let (start, end) = (u64::from_str_radix(start, 16).ok()?, u64::from_str_radix(end, 16).ok()?);
    let perms = perms.as_bytes();
    if end <= start || perms.len() != 4 {
        return None;
    }
    Some(Mapping {
        start,
        end,
        read_write: perms[0] == b'r' && perms[1] == b'w',
        shared: perms[3] == b's',
        file_offset: u64::from_str_radix(offset, 16).ok()?,
        // Pseudo-mappings such as `[heap]` are not files.
        path: path.filter(|p| !p.starts_with('[')),
    })
}

/// Host addresses where a RAM block of `len` bytes may start: the start of every readable and
/// writable mapping at least that long (anonymous memory, a shared file or a memfd), largest
/// first. QEMU maps each RAM block as one mapping of its own, so the block starts where one
/// starts; which one is decided by content (see `crate::attach`), never by size alone.
pub fn candidates(maps: &[Mapping], len: u64) -> Vec<&Mapping> {
    let mut found: Vec<&Mapping> = maps.iter().filter(|m| m.read_write && m.len() >= len).collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.len()));
    found
}

/// The bytes of an HMP `xp /Nxb ADDR` output (`0000000001000000: 0x24 0x28 ...` lines).
pub fn parse_xp_bytes(text: &str) -> Vec<u8> {
    text.lines()
        .filter_map(|l| l.split_once(": ").map(|(_, rest)| rest))
        .flat_map(|rest| rest.split_whitespace())
        .filter_map(|w| u8::from_str_radix(w.strip_prefix("0x")?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAMBLOCK: &str = "              Block Name    PSize              Offset               Used              Total
                  pc.ram    4 KiB  0x0000000000000000 0x0000000040000000 0x0000000040000000
           system.flash0    4 KiB  0x0000000040000000 0x000000000037c000 0x000000000037c000
    /rom@etc/acpi/tables    4 KiB  0x0000000040500000 0x0000000000020000 0x0000000000200000
0000:00:01.0:00.0/virtio-net-pci.rom    4 KiB  0x00000000404c0000 0x0000000000040000 0x0000000000040000
";

    #[test]
    fn info_ramblock_rows_parse_and_the_header_does_not() {
        let blocks = parse_info_ramblock(RAMBLOCK);
        assert_eq!(blocks.len(), 4);
        assert_eq!(
            blocks[0],
            RamBlock { name: "pc.ram".into(), page_size: 4096, offset: 0, used: 1 << 30, total: 1 << 30 }
        );
        assert_eq!(blocks[3].name, "0000:00:01.0:00.0/virtio-net-pci.rom");
        assert_eq!(parse_info_ramblock("pc.ram 4 KiB 0x0 0x10 zz\n\n  x 3 TiB 0x0 0x1 0x1"), vec![]);
    }

    #[test]
    fn maps_lines_parse_with_and_without_a_path() {
        let text = "7f7aebe00000-7f7b2be00000 rw-p 00000000 00:00 0 \n\
                    7f00000000-7f40000000 rw-s 00000000 00:1a 12 /memfd:pc.ram (deleted)\n\
                    55d0-55e0 r--p 00001000 08:01 3 /usr/bin/qemu-system-x86_64\n\
                    7ffd0000-7ffd1000 rw-p 00000000 00:00 0                          [stack]\n\
                    garbage\n\
                    20-10 rw-p 0 0 0\n";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 4);
        assert_eq!((maps[0].len(), maps[0].path.clone(), maps[0].read_write), (1 << 30, None, true));
        assert_eq!(maps[1].path.as_deref(), Some("/memfd:pc.ram (deleted)"));
        assert!(maps[1].shared);
        assert!(!maps[2].read_write);
        assert_eq!(maps[3].path, None);
        // Both 1 GiB read-write mappings may hold a 1 GiB block; the stack may not.
        let c: Vec<u64> = candidates(&maps, 1 << 30).iter().map(|m| m.start).collect();
        assert_eq!(c, vec![0x7f7aebe00000, 0x7f00000000]);
        assert!(candidates(&maps, 2 << 30).is_empty());
    }

    #[test]
    fn xp_output_reads_as_bytes() {
        let text = "0000000001000000: 0x24 0x28 0x48 0x89 0xd1 0x8b 0x77 0x78\n0000000001000008: 0x00 0xff\n";
        assert_eq!(parse_xp_bytes(text), vec![0x24, 0x28, 0x48, 0x89, 0xd1, 0x8b, 0x77, 0x78, 0, 0xff]);
        assert_eq!(parse_xp_bytes("Cannot access memory\n"), Vec::<u8>::new());
    }
}
