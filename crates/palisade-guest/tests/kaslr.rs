//! KASLR stays on: two boots of the same kernel and initramfs place `_text` differently.

mod common;

use std::time::Duration;

use palisade_guest::initramfs::READY_MARKER;
use palisade_guest::Guest;

fn boot_text_address(tag: &str, initrd: &std::path::Path) -> u64 {
    let mut guest = Guest::start(&common::config(tag, initrd)).unwrap_or_else(|e| panic!("start: {e:#?}"));
    guest.wait_for_console(READY_MARKER, common::BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e:#?}"));
    let kallsyms = guest.kallsyms_dump(Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e:#?}"));
    let cmdline = guest.console_text().unwrap();
    guest.stop().unwrap();
    assert!(!cmdline.contains("nokaslr"));
    common::symbol_address(&kallsyms, "_text").expect("_text in kallsyms")
}

#[test]
fn two_boots_place_the_kernel_at_different_addresses() {
    common::init_tracing();
    common::require_qemu();
    let initrd = common::initramfs("kaslr-test.cpio", Vec::new());

    let first = boot_text_address("kaslr1", &initrd);
    let second = boot_text_address("kaslr2", &initrd);

    eprintln!("_text: {first:#x} then {second:#x}");
    assert_ne!(first, second, "_text did not move between boots: KASLR is off");
    for text in [first, second] {
        assert!((0xffff_ffff_8000_0000..0xffff_ffff_c000_0000).contains(&text), "_text {text:#x}");
    }
}
