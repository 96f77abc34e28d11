//! The RAM layout `Guest::ram_layout` reports is the one QEMU builds: checked against QEMU's
//! own memory tree (`info mtree`) for a small guest and for one large enough to be split around
//! the PCI hole.

mod common;

use palisade_guest::{Guest, RamRegion, HIGH_RAM_START};

/// The `ram-below-4g` / `ram-above-4g` aliases of `ram0` in `info mtree` output, e.g.
/// `0000000100000000-000000013fffffff (prio 0, ram): alias ram-above-4g @ram0 0000000080000000-00000000bfffffff`.
fn qemu_ram_aliases(mtree: &str) -> Vec<RamRegion> {
    let mut regions: Vec<RamRegion> = mtree
        .lines()
        .filter(|l| l.contains("alias ram-below-4g @ram0") || l.contains("alias ram-above-4g @ram0"))
        .map(|line| {
            let range = |text: &str| {
                let (start, end) = text.trim().split_once('-').unwrap();
                (u64::from_str_radix(start, 16).unwrap(), u64::from_str_radix(end.trim(), 16).unwrap())
            };
            let (gpa, gpa_end) = range(line.split_whitespace().next().unwrap());
            let (offset, _) = range(line.rsplit("@ram0").next().unwrap());
            RamRegion { gpa, len: gpa_end - gpa + 1, file_offset: offset }
        })
        .collect();
    regions.sort_by_key(|r| r.gpa);
    regions.dedup();
    regions
}

fn layout_as_qemu_builds_it(tag: &str, memory_mib: u64) -> (Vec<RamRegion>, Vec<RamRegion>) {
    let initrd = common::initramfs(&format!("{tag}.cpio"), vec!["sleep 600".into()]);
    let mut config = common::config(tag, &initrd);
    config.memory_mib = memory_mib;
    let mut guest = Guest::start(&config).unwrap_or_else(|e| panic!("start: {e:#?}"));
    let mtree = guest.qmp().unwrap().human_monitor_command("info mtree").unwrap();
    let ram_file = std::fs::metadata(guest.ram_path()).unwrap().len();
    let ours = guest.ram_layout();
    guest.stop().unwrap();
    assert_eq!(ram_file, memory_mib << 20);
    (ours, qemu_ram_aliases(&mtree))
}

#[test]
fn a_512_mib_guest_has_one_region_at_zero() {
    common::init_tracing();
    common::require_qemu();

    let (ours, qemus) = layout_as_qemu_builds_it("ram512", 512);

    assert_eq!(ours, qemus);
    assert_eq!(ours, [RamRegion { gpa: 0, len: 512 << 20, file_offset: 0 }]);
}

#[test]
fn a_3_gib_guest_is_split_at_2_gib_around_the_pci_hole() {
    common::init_tracing();
    common::require_qemu();

    let (ours, qemus) = layout_as_qemu_builds_it("ram3g", 3072);

    assert_eq!(ours, qemus);
    assert_eq!(ours.len(), 2);
    assert_eq!((ours[0].gpa, ours[0].len), (0, 2 << 30));
    assert_eq!((ours[1].gpa, ours[1].len, ours[1].file_offset), (HIGH_RAM_START, 1 << 30, 2 << 30));
}
