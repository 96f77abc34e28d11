//! Page tables are guest-controlled: walking any table contents must never panic.
//! The input fills guest RAM from physical 0; its first bytes pick CR3, the paging mode and the
//! addresses to translate. Seeds: seeds/page_walk (a 4-level walk to 0xffffffff81000000).
//! Run: cargo fuzz run page_walk corpus/page_walk seeds/page_walk
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_vmi::{AddressSpace, FakeMemory, Gpa, Gva, PhysMemory, VirtMemory};

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let word = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().unwrap_or([0; 8]));
    let (cr3, gva) = (word(0) & 0xf_ffff, word(8));
    let mem = FakeMemory::new(1 << 20);
    let _ = mem.write(Gpa(0), &data[16..data.len().min((1 << 20) + 16)]);
    for la57 in [false, true] {
        let vm = VirtMemory::new(&mem, AddressSpace::new(cr3, la57));
        for g in [gva, gva ^ (1 << 63), gva.wrapping_add(0xff8)] {
            let _ = vm.translate(Gva(g));
            let mut buf = [0u8; 8200];
            let _ = vm.read(Gva(g), &mut buf);
        }
    }
});
