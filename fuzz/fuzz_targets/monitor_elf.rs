//! Relocatable objects are untrusted input to the monitor's loader: parsing and loading any
//! bytes must never panic. Seeds: seeds/monitor_elf (the payload object, a gcc-built object
//! with every supported relocation type, a kernel-model C object).
//! Run: cargo fuzz run monitor_elf corpus/monitor_elf seeds/monitor_elf
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_monitor::elf::Object;
use palisade_monitor::loader::load;

fuzz_target!(|data: &[u8]| {
    if let Ok(obj) = Object::parse(data) {
        let _ = obj.imports();
        for base in [0xffff_ffff_c000_0000u64, 0x1000, 0xffff_ffff_ffff_f000] {
            let _ = load(&obj, base, &|name| (name.len() % 3 != 0).then_some(0xffff_ffff_8100_0000));
        }
    }
});
