//! Bytes Palisade reads about guests without trusting them: cpio archives, ELF kernel modules
//! (their `.modinfo`) and QMP messages from QEMU. Any bytes, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = palisade_guest::cpio::parse(data);
    let _ = palisade_guest::modinfo(data);
    if let Ok(image) = palisade_elf::Image::parse(data) {
        let _ = image.has_interpreter();
        let _ = image.section(".modinfo");
    }
    for line in data.split(|b| *b == b'\n') {
        let _ = palisade_guest::qmp::parse_message(line);
    }
});
