use super::*;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn region(start: u64, len: u64, file_offset: u64) -> RamRegion {
    RamRegion { start: Gpa(start), len, file_offset }
}

/// A RAM file whose byte at file offset `o` is `o % 251`, with `layout`.
fn ram_file(layout: RamLayout, size: u64) -> (tempfile::NamedTempFile, RamFile) {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let bytes: Vec<u8> = (0..size).map(|o| (o % 251) as u8).collect();
    std::fs::write(tmp.path(), &bytes).unwrap();
    let ram = RamFile::open(tmp.path(), layout).unwrap();
    (tmp, ram)
}

#[test]
fn q35_small_guest_is_all_below_4g() {
    let l = RamLayout::q35(512 * MIB);
    assert_eq!(l.regions(), &[region(0, 512 * MIB, 0)]);
    // Just under the split threshold: still one region, up to 0xb000_0000.
    let l = RamLayout::q35(0xb000_0000 - MIB);
    assert_eq!(l.regions().len(), 1);
}

#[test]
fn q35_large_guest_splits_at_2g() {
    let l = RamLayout::q35(4 * GIB);
    assert_eq!(l.regions(), &[region(0, 2 * GIB, 0), region(HIGH_RAM_START, 2 * GIB, 2 * GIB)]);
    assert_eq!(l.total(), 4 * GIB);
    let l = RamLayout::q35(0xb000_0000);
    assert_eq!(l.regions()[0].len, 0x8000_0000);
    assert_eq!(l.regions()[1].len, 0x3000_0000);
}

#[test]
fn pc_large_guest_splits_at_3g() {
    let l = RamLayout::pc(4 * GIB);
    assert_eq!(l.regions(), &[region(0, 3 * GIB, 0), region(HIGH_RAM_START, GIB, 3 * GIB)]);
    assert_eq!(RamLayout::pc(3 * GIB).regions().len(), 1);
}

#[test]
fn layout_rejects_overlap_empty_and_overflow() {
    assert_eq!(
        RamLayout::new(vec![region(0x1000, 0x2000, 0), region(0x2000, 0x1000, 0x2000)]),
        Err(LayoutError::Overlap(Gpa(0x1000), Gpa(0x2000)))
    );
    assert_eq!(RamLayout::new(vec![region(0, 0, 0)]), Err(LayoutError::Empty(Gpa(0))));
    assert_eq!(RamLayout::new(vec![region(u64::MAX - 1, 4, 0)]), Err(LayoutError::Overflow(Gpa(u64::MAX - 1))));
}

#[test]
fn ram_file_reads_through_the_hole_layout() {
    // 16 KiB below a "hole", 8 KiB above it at 0x10000 (file offset 0x4000).
    let layout = RamLayout::new(vec![region(0, 0x4000, 0), region(0x10000, 0x2000, 0x4000)]).unwrap();
    let (_tmp, ram) = ram_file(layout, 0x6000);
    let mut b = [0u8; 4];
    ram.read(Gpa(0x10000), &mut b).unwrap();
    let expect: Vec<u8> = (0x4000u64..0x4004).map(|o| (o % 251) as u8).collect();
    assert_eq!(&b[..], &expect[..]);
    assert_eq!(ram.regions(), vec![(Gpa(0), 0x4000), (Gpa(0x10000), 0x2000)]);
}

#[test]
fn access_straddling_the_hole_or_past_the_end_is_out_of_range() {
    let layout = RamLayout::new(vec![region(0, 0x4000, 0), region(0x10000, 0x2000, 0x4000)]).unwrap();
    let (_tmp, ram) = ram_file(layout, 0x6000);
    let mut b = [0u8; 8];
    for gpa in [0x3ffc, 0x4000, 0xfffc, 0x11ffc, 0x12000, u64::MAX - 3] {
        let err = ram.read(Gpa(gpa), &mut b).unwrap_err();
        assert!(matches!(err, MemoryError::OutOfRange { gpa: g, len: 8 } if g == Gpa(gpa)), "{gpa:#x}");
    }
    // A failed write changes nothing (checked before any I/O).
    assert!(ram.write(Gpa(0x3ffc), &[0xee; 8]).is_err());
    assert_eq!(ram.read_u32(Gpa(0x3ffc)).unwrap().to_le_bytes()[0], (0x3ffc % 251) as u8);
}

#[test]
fn read_spanning_two_adjacent_regions_joins_them() {
    // Adjacent in guest physical space, but stored in swapped order in the file.
    let layout = RamLayout::new(vec![region(0, 0x1000, 0x1000), region(0x1000, 0x1000, 0)]).unwrap();
    let (_tmp, ram) = ram_file(layout, 0x2000);
    let v = ram.read_vec(Gpa(0xffe), 4).unwrap();
    let expect = [0x1ffe % 251, 0x1fff % 251, 0, 1].map(|x: u64| x as u8);
    assert_eq!(v, expect);
}

#[test]
fn ram_file_write_is_visible_in_the_file() {
    let (tmp, ram) = ram_file(RamLayout::flat(0x2000), 0x2000);
    ram.write(Gpa(0x1ffc), &0xdead_beefu32.to_le_bytes()).unwrap();
    assert_eq!(ram.read_u32(Gpa(0x1ffc)).unwrap(), 0xdead_beef);
    let bytes = std::fs::read(tmp.path()).unwrap();
    assert_eq!(&bytes[0x1ffc..], &[0xef, 0xbe, 0xad, 0xde]);
}

#[test]
fn ram_file_shorter_than_layout_is_refused() {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), [0u8; 100]).unwrap();
    let err = RamFile::open(tmp.path(), RamLayout::flat(4096)).unwrap_err();
    assert!(matches!(err, RamFileError::TooShort { needed: 4096, actual: 100, .. }));
}

#[test]
fn little_endian_helpers() {
    let m = FakeMemory::new(0x3000);
    m.write(Gpa(0xffc), &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    assert_eq!(m.read_u64(Gpa(0xffc)).unwrap(), 0x0807_0605_0403_0201);
    assert_eq!(m.read_u32(Gpa(0xffe)).unwrap(), 0x0605_0403);
    assert_eq!(m.read_u16(Gpa(0x1002)).unwrap(), 0x0807);
}

#[test]
fn fake_memory_is_sparse_zero_and_bounded() {
    let m = FakeMemory::with_layout(RamLayout::q35(4 * GIB));
    assert_eq!(m.read_u64(Gpa(HIGH_RAM_START + GIB)).unwrap(), 0);
    m.write(Gpa(HIGH_RAM_START), &[9]).unwrap();
    assert_eq!(m.read_vec(Gpa(HIGH_RAM_START), 2).unwrap(), vec![9, 0]);
    assert!(matches!(m.read_u64(Gpa(0x9000_0000)), Err(MemoryError::OutOfRange { .. })));
    assert!(m.read_u64(Gpa(HIGH_RAM_START + 2 * GIB - 4)).is_err());
}

#[test]
fn process_memory_reads_and_writes_a_live_process_at_its_host_addresses() {
    // This process stands in for QEMU: a buffer is "guest RAM" at its own host address.
    let mut buf: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    let host = buf.as_ptr() as u64;
    let layout = RamLayout::flat(buf.len() as u64).offset_by(host).unwrap();
    let ram = RamFile::process_memory(std::process::id(), layout).unwrap();

    let mut got = vec![0u8; 100];
    ram.read(Gpa(4000), &mut got).unwrap();
    assert_eq!(got, buf[4000..4100]);
    ram.write(Gpa(10), b"palisade").unwrap();
    // The write went to this process's memory (read back through the same file, then directly).
    let mut back = [0u8; 8];
    ram.read(Gpa(10), &mut back).unwrap();
    assert_eq!(&back, b"palisade");
    assert_eq!(&std::hint::black_box(&mut buf)[10..18], b"palisade");
    assert!(matches!(ram.read(Gpa(8190), &mut [0u8; 4]), Err(MemoryError::OutOfRange { .. })));
}

#[test]
fn offset_by_moves_file_offsets_and_refuses_overflow() {
    let moved = RamLayout::q35(3 << 30).offset_by(0x7f00_0000_0000).unwrap();
    assert_eq!(moved.regions()[0].file_offset, 0x7f00_0000_0000);
    assert_eq!(moved.regions()[1].file_offset, 0x7f00_0000_0000 + Q35_LOWMEM_SPLIT);
    assert!(matches!(RamLayout::flat(4096).offset_by(u64::MAX), Err(LayoutError::Overflow(_))));
}
