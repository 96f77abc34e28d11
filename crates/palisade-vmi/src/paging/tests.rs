use super::*;
use crate::memory::FakeMemory;

const P: u64 = PRESENT | WRITABLE;
const MEM: u64 = 64 << 20;

/// Page tables built in a [`FakeMemory`], tables allocated from 1 MiB upwards.
struct Tables {
    mem: FakeMemory,
    root: u64,
    next: u64,
    la57: bool,
}

impl Tables {
    fn new(la57: bool) -> Tables {
        let mem = FakeMemory::new(MEM);
        Tables { mem, root: 0x10_0000, next: 0x10_1000, la57 }
    }

    fn alloc(&mut self) -> u64 {
        let t = self.next;
        self.next += 0x1000;
        t
    }

    fn set(&self, table: u64, index: u64, entry: u64) {
        self.mem.write(Gpa(table + index * 8), &entry.to_le_bytes()).unwrap();
    }

    fn get(&self, table: u64, index: u64) -> u64 {
        self.mem.read_u64(Gpa(table + index * 8)).unwrap()
    }

    /// Maps `gva` to `gpa` with a leaf at `leaf` level, `flags` on the leaf; intermediate
    /// tables present+writable(+user if the leaf is user).
    fn map(&mut self, gva: u64, gpa: u64, leaf: Level, flags: u64) {
        let mut level = if self.la57 { Level::Pml5 } else { Level::Pml4 };
        let mut table = self.root;
        loop {
            let index = (gva >> level.shift()) & 0x1ff;
            if level == leaf {
                let ps = if leaf == Level::Pt { 0 } else { PAGE_SIZE_BIT };
                self.set(table, index, gpa | flags | ps);
                return;
            }
            let e = self.get(table, index);
            table = if e & PRESENT != 0 {
                e & ADDR_4K
            } else {
                let t = self.alloc();
                self.set(table, index, t | P | (flags & USER));
                t
            };
            level = level.next().unwrap();
        }
    }

    fn space(&self) -> AddressSpace {
        AddressSpace::new(self.root, self.la57)
    }

    fn translate(&self, gva: u64) -> Result<Translation, TranslateError> {
        self.space().translate(&self.mem, Gva(gva))
    }
}

const KERNEL: u64 = 0xffff_ffff_8100_0000;

#[test]
fn four_k_page_translates_with_offset_and_rights() {
    let mut t = Tables::new(false);
    t.map(KERNEL, 0x20_0000, Level::Pt, P | NX);
    let tr = t.translate(KERNEL + 0x123).unwrap();
    assert_eq!(tr.gpa, Gpa(0x20_0123));
    assert_eq!(tr.page_size, PageSize::Size4K);
    assert!(tr.writable && tr.nx && !tr.user);
}

#[test]
fn two_mib_page_ignores_pat_bit_and_high_flag_bits() {
    let mut t = Tables::new(false);
    // Bit 12 (PAT) and protection-key bits 62:59 set: neither is address.
    let flags = P | (1 << 12) | (0xf << 59);
    t.map(KERNEL, 0x40_0000, Level::Pd, flags);
    let tr = t.translate(KERNEL + 0x1f_ffff).unwrap();
    assert_eq!(tr.gpa, Gpa(0x5f_ffff));
    assert_eq!(tr.page_size, PageSize::Size2M);
    assert!(!tr.nx);
}

#[test]
fn one_gib_page_translates() {
    let mut t = Tables::new(false);
    let direct_map = 0xffff_8880_0000_0000;
    t.map(direct_map, 0x4000_0000, Level::Pdpt, P | NX);
    let tr = t.translate(direct_map + 0x3fff_fff0).unwrap();
    assert_eq!(tr.gpa, Gpa(0x7fff_fff0));
    assert_eq!(tr.page_size, PageSize::Size1G);
}

#[test]
fn physical_address_is_masked_to_52_bits() {
    let mut t = Tables::new(false);
    // An entry with every address bit set, up to 51.
    t.map(KERNEL, 0x000f_ffff_ffff_f000, Level::Pt, P | NX | (0x7ff << 52));
    assert_eq!(t.translate(KERNEL + 8).unwrap().gpa, Gpa(0x000f_ffff_ffff_f008));
}

#[test]
fn five_level_paging_uses_pml5() {
    let mut t = Tables::new(true);
    // A 57-bit canonical address not canonical for 48 bits.
    let gva = 0xff11_0000_0000_0000u64;
    t.map(gva, 0x30_0000, Level::Pt, P);
    assert_eq!(t.translate(gva + 5).unwrap().gpa, Gpa(0x30_0005));
    let four = AddressSpace::new(t.root, false).translate(&t.mem, Gva(gva));
    assert!(matches!(four, Err(TranslateError::NonCanonical { bits: 48, .. })));
}

#[test]
fn non_canonical_address_is_refused() {
    let t = Tables::new(true);
    let err = t.translate(0x0100_0000_0000_0000).unwrap_err();
    assert!(matches!(err, TranslateError::NonCanonical { bits: 57, .. }), "{err}");
}

#[test]
fn cr3_pcid_and_flag_bits_are_ignored() {
    let mut t = Tables::new(false);
    t.map(KERNEL, 0x20_0000, Level::Pt, P);
    let cr3 = t.root | 0x7ff | (1 << 63);
    let s = AddressSpace::from_registers(cr3, 0);
    assert_eq!(s.root, Gpa(t.root));
    assert!(!s.la57);
    assert!(AddressSpace::from_registers(cr3, CR4_LA57).la57);
    assert_eq!(s.translate(&t.mem, Gva(KERNEL)).unwrap().gpa, Gpa(0x20_0000));
}

#[test]
fn not_present_names_each_level() {
    for (la57, leaf_levels) in [
        (false, &[Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt][..]),
        (true, &[Level::Pml5, Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt][..]),
    ] {
        for &missing in leaf_levels {
            let mut t = Tables::new(la57);
            t.map(KERNEL, 0x20_0000, Level::Pt, P);
            // Walk to the `missing` level's table and clear the entry.
            let mut level = if la57 { Level::Pml5 } else { Level::Pml4 };
            let mut table = t.root;
            while level != missing {
                table = t.get(table, (KERNEL >> level.shift()) & 0x1ff) & ADDR_4K;
                level = level.next().unwrap();
            }
            let index = (KERNEL >> missing.shift()) & 0x1ff;
            t.set(table, index, 0x1234_5000); // present bit clear, junk address
            match t.translate(KERNEL) {
                Err(TranslateError::NotPresent { level, index: i, entry_at, .. }) => {
                    assert_eq!(level, missing);
                    assert_eq!(u64::from(i), index);
                    assert_eq!(entry_at, Gpa(table + index * 8));
                }
                other => panic!("{missing}: {other:?}"),
            }
        }
    }
}

#[test]
fn page_size_bit_in_pml4_is_reserved() {
    let t = Tables::new(false);
    t.set(t.root, 511, 0x20_0000 | P | PAGE_SIZE_BIT);
    assert!(matches!(t.translate(KERNEL), Err(TranslateError::Reserved { level: Level::Pml4, .. })));
}

#[test]
fn table_outside_ram_is_a_memory_error_not_a_panic() {
    let t = Tables::new(false);
    t.set(t.root, 511, 0x000f_ffff_ffff_f000 | P);
    let err = t.translate(KERNEL).unwrap_err();
    assert!(matches!(err, TranslateError::Memory { level: Level::Pdpt, .. }), "{err}");
}

#[test]
fn rights_combine_over_levels() {
    let mut t = Tables::new(false);
    t.map(0x40_0000, 0x20_0000, Level::Pt, P | USER);
    assert!(t.translate(0x40_0000).unwrap().user);
    // Clear the user bit on the PML4 entry: no longer user-accessible.
    let e = t.get(t.root, 0);
    t.set(t.root, 0, (e & !USER) | NX);
    let tr = t.translate(0x40_0000).unwrap();
    assert!(!tr.user && tr.nx);
}

#[test]
fn read_crosses_page_boundaries_between_discontiguous_frames() {
    let mut t = Tables::new(false);
    t.map(KERNEL, 0x30_0000, Level::Pt, P);
    t.map(KERNEL + 0x1000, 0x20_0000, Level::Pt, P);
    t.mem.write(Gpa(0x30_0ffe), &[1, 2]).unwrap();
    t.mem.write(Gpa(0x20_0000), &[3, 4]).unwrap();
    let vm = VirtMemory::new(&t.mem, t.space());
    assert_eq!(vm.read_vec(Gva(KERNEL + 0xffe), 4).unwrap(), vec![1, 2, 3, 4]);
    vm.write(Gva(KERNEL + 0xfff), &[9, 9]).unwrap();
    assert_eq!(t.mem.read_vec(Gpa(0x30_0fff), 1).unwrap(), vec![9]);
    assert_eq!(t.mem.read_vec(Gpa(0x20_0000), 1).unwrap(), vec![9]);
}

#[test]
fn partial_read_reports_unmapped_pages_as_holes() {
    let mut t = Tables::new(false);
    // Pages 0 and 3 mapped, 1 and 2 not.
    t.map(KERNEL, 0x30_0000, Level::Pt, P);
    t.map(KERNEL + 0x3000, 0x31_0000, Level::Pt, P);
    t.mem.write(Gpa(0x30_0000), &[0xaa; 0x1000]).unwrap();
    t.mem.write(Gpa(0x31_0000), &[0xbb; 0x1000]).unwrap();
    let vm = VirtMemory::new(&t.mem, t.space());
    let mut buf = vec![0xff; 0x3800];
    let r = vm.read(Gva(KERNEL + 0x800), &mut buf);
    assert_eq!(r.holes.len(), 1);
    assert_eq!((r.holes[0].offset, r.holes[0].len), (0x800, 0x2000));
    assert_eq!(r.holes[0].cause.gva(), Gva(KERNEL + 0x1000));
    assert!(matches!(r.holes[0].cause, TranslateError::NotPresent { level: Level::Pt, .. }));
    assert_eq!(r.bytes_missing(), 0x2000);
    assert!(buf[..0x800].iter().all(|&b| b == 0xaa));
    assert!(buf[0x800..0x2800].iter().all(|&b| b == 0));
    assert!(buf[0x2800..].iter().all(|&b| b == 0xbb));
    // The strict read fails at the first hole.
    let err = vm.read_exact(Gva(KERNEL + 0x800), &mut buf).unwrap_err();
    assert_eq!(err.gva(), Gva(KERNEL + 0x1000));
}

#[test]
fn write_to_partly_unmapped_range_changes_nothing() {
    let mut t = Tables::new(false);
    t.map(KERNEL, 0x30_0000, Level::Pt, P);
    let vm = VirtMemory::new(&t.mem, t.space());
    assert!(vm.write(Gva(KERNEL + 0xfff), &[7, 7]).is_err());
    assert_eq!(t.mem.read_vec(Gpa(0x30_0fff), 1).unwrap(), vec![0]);
}

#[test]
fn large_page_read_is_one_piece() {
    let mut t = Tables::new(false);
    t.map(KERNEL, 0x20_0000, Level::Pd, P);
    t.mem.write(Gpa(0x20_0000 + 0x1_0000), &[5; 0x3000]).unwrap();
    let vm = VirtMemory::new(&t.mem, t.space());
    let v = vm.read_vec(Gva(KERNEL + 0x1_0000), 0x3000).unwrap();
    assert!(v.iter().all(|&b| b == 5));
}

#[test]
fn arbitrary_table_contents_never_panic() {
    // A seeded fill of the root and every table it could point at.
    let mut rng = palisade_rng::Rng::new(0x9e37_79b9_7f4a_7c15);
    for la57 in [false, true] {
        let t = Tables::new(la57);
        for page in 0..64u64 {
            let mut buf = vec![0u8; 4096];
            for c in buf.chunks_mut(8) {
                // Keep some entries pointing inside RAM so walks go deep.
                let v = rng.next_u64();
                let v = if v & 1 == 0 { (v & 0x3f_f000) | 0x10_0000 | (v & 0x8000_0000_0000_0087) } else { v };
                c.copy_from_slice(&v.to_le_bytes());
            }
            t.mem.write(Gpa(0x10_0000 + page * 4096), &buf).unwrap();
        }
        let vm = VirtMemory::new(&t.mem, t.space());
        for _ in 0..2000 {
            let gva = rng.next_u64();
            let _ = vm.translate(Gva(gva));
            let mut b = [0u8; 64];
            let _ = vm.read(Gva(gva), &mut b);
        }
        let mut big = vec![0u8; 0x10000];
        let _ = vm.read(Gva(u64::MAX - 0x8000), &mut big);
    }
}
