//! Guest memory is attacker-controlled: any bytes as guest RAM, symbol recovery never panics.
//! Seeds: `fuzz/seeds/kallsyms/` (synthetic table sets in scripts/kallsyms.c layouts, and the
//! real token table + index of Debian's 6.1.0-56 cloud kernel).
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_vmi::{FakeMemory, Gpa, PhysMemory};

fuzz_target!(|data: &[u8]| {
    if data.is_empty() || data.len() > 4 << 20 {
        return;
    }
    let mem = FakeMemory::new((data.len() as u64).div_ceil(4096) * 4096);
    if mem.write(Gpa(0), data).is_ok() {
        let _ = palisade_vmi::kallsyms::recover(&mem);
    }
});
