//! A real QEMU guest for the gdb / paging / hijack tests, started by `palisade-guest`: Debian's
//! cloud kernel and a busybox initramfs (both fetched with apt), RAM in a /dev/shm file, TCG
//! with `-cpu max` (so the kernel runs with 5-level paging). The guest's own /proc/kallsyms
//! dump (ttyS1) is the tests' only symbol source. A missing QEMU fails the test loudly: CI runs
//! as root with qemu-system-x86 installed.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use palisade_guest::Guest;
use palisade_vmi::{Gpa, RamFile, RamLayout, RamRegion};

pub use palisade_testkit::guest::TIMEOUT;

pub const MEM_MIB: u64 = 512;
/// Printed on the console when the workload's read(2) loop starts.
pub const LOOP_MARKER: &str = "PALISADE-VMI-LOOP";

/// A workload calling read(2) every 20 ms: `iterations` times, or forever if `None`.
pub fn read_loop(iterations: Option<u32>) -> Vec<String> {
    let cond = match iterations {
        Some(n) => format!("[ $i -lt {n} ]"),
        None => "true".to_owned(),
    };
    vec![
        format!("echo {LOOP_MARKER}"),
        "i=0".to_owned(),
        // The shell's `read` is read(2); busybox `cat` would use sendfile(2).
        format!("while {cond}; do read -r up < /proc/uptime; i=$((i+1)); sleep 0.02; done"),
    ]
}

/// A booted guest and its symbols.
pub struct TestGuest {
    pub guest: Guest,
    pub symbols: HashMap<String, u64>,
}

impl TestGuest {
    /// Boots a TCG guest with `vcpus` vCPUs running `workload` after its kallsyms dump; returns
    /// once the workload has started.
    pub fn boot(name: &str, vcpus: u32, workload: Vec<String>) -> TestGuest {
        // TCG with `-cpu max`: the 5-level paging path is the one to prove.
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let (mut guest, dump) = palisade_testkit::guest::boot(&format!("vmi-{name}"), vcpus, MEM_MIB, workload, tmp);
        let mut symbols = HashMap::new();
        for line in dump.lines() {
            let mut w = line.split_whitespace();
            if let (Some(addr), Some(_), Some(name), None) = (w.next(), w.next(), w.next(), w.next()) {
                if let Ok(a) = u64::from_str_radix(addr, 16) {
                    symbols.insert(name.to_owned(), a);
                }
            }
        }
        guest.wait_for_console(LOOP_MARKER, TIMEOUT).unwrap_or_else(|e| panic!("workload: {e:#?}"));
        TestGuest { guest, symbols }
    }

    pub fn symbol(&self, name: &str) -> u64 {
        *self.symbols.get(name).unwrap_or_else(|| panic!("no {name} in the guest's /proc/kallsyms"))
    }

    /// The guest's RAM file with the layout `palisade-guest` reports.
    pub fn ram(&self) -> RamFile {
        let regions = self
            .guest
            .ram_layout()
            .iter()
            .map(|r| RamRegion { start: Gpa(r.gpa), len: r.len, file_offset: r.file_offset })
            .collect();
        let layout = RamLayout::new(regions).expect("palisade-guest's RAM layout");
        assert_eq!(layout, RamLayout::q35(MEM_MIB << 20), "palisade-guest and RamLayout::q35 agree");
        RamFile::open(self.guest.ram_path(), layout).expect("guest RAM file")
    }
}
