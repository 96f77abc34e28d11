//! What libvirt and QEMU print about a domain (HMP `info ramblock`, `xp` and `info registers
//! -a`, `virsh dominfo`, the domain XML) and the QEMU process's /proc/PID/maps: parsing them
//! never panics, whatever the bytes, and what comes out is consistent.
//! Seeds: seeds/libvirt_text (real outputs from a Debian 12 libvirt 9.0 / QEMU 7.2 domain).
//! Run: cargo fuzz run libvirt_text corpus/libvirt_text seeds/libvirt_text
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_libvirt::ramblock;
use palisade_libvirt::registers;
use palisade_libvirt::virsh;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for block in ramblock::parse_info_ramblock(&text) {
        assert!(!block.name.is_empty());
    }
    let maps = ramblock::parse_maps(&text);
    assert!(maps.iter().all(|m| m.start < m.end));
    for len in [1u64, 1 << 30] {
        assert!(ramblock::candidates(&maps, len).iter().all(|m| m.len() >= len && m.read_write));
    }
    let _ = ramblock::parse_xp_bytes(&text);
    if let Some(info) = virsh::parse_dominfo(&text) {
        assert_eq!(info.uuid.len(), 36);
    }
    let _ = virsh::parse_domain_xml(&text);
    let vcpus = registers::parse_info_registers(&text);
    assert!(vcpus.len() <= text.matches("CR3=").count());

});
