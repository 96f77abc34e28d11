//! A real QEMU guest for the monitor tests, started by `palisade-guest`: Debian's cloud kernel
//! and a busybox initramfs (both fetched with apt), RAM in a /dev/shm file, TCG. A missing QEMU
//! fails the test loudly: CI runs as root with qemu-system-x86 installed.

#![allow(dead_code)]

use std::path::Path;

use palisade_guest::Guest;
use palisade_monitor::{Action, Rule, Syscall};
use palisade_vmi::{Gpa, RamFile, RamLayout, RamRegion};

pub use palisade_testkit::guest::TIMEOUT;

pub const MEM_MIB: u64 = 512;

/// A booted guest and its own /proc/kallsyms dump (taken before anything was injected).
pub struct TestGuest {
    pub guest: Guest,
    pub kallsyms_lines: usize,
}

impl TestGuest {
    /// Boots a TCG guest with `vcpus` vCPUs running `workload`; returns once `marker` shows.
    pub fn boot(name: &str, vcpus: u32, workload: Vec<String>, marker: &str) -> TestGuest {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let (guest, dump) = palisade_testkit::guest::boot(&format!("mon-{name}"), vcpus, MEM_MIB, workload, tmp);
        let kallsyms_lines = dump.lines().filter(|l| !l.trim().is_empty()).count();
        let mut tg = TestGuest { guest, kallsyms_lines };
        tg.wait(marker);
        tg
    }

    /// Waits for a console line containing `marker`; panics with the console otherwise.
    pub fn wait(&mut self, marker: &str) -> String {
        self.guest.wait_for_console(marker, TIMEOUT).unwrap_or_else(|e| {
            let console = std::fs::read_to_string(self.guest.console_path()).unwrap_or_default();
            panic!("waiting for {marker}: {e}\nconsole:\n{console}")
        })
    }

    /// The console so far.
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.guest.console_path()).unwrap_or_default()
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
        RamFile::open(self.guest.ram_path(), layout).expect("guest RAM file")
    }
}

/// Rule 1 records every file operation under /tmp/pal/; rule 2 blocks `cat` opening
/// /etc/shadow: the policy of the kernel table and the libvirt proof.
pub fn record_and_block_shadow() -> Vec<Rule> {
    let openat = Syscall::by_name("openat").map(|s| s.nr);
    vec![
        Rule { id: 1, nr: None, subject: None, object: Some("/tmp/pal/".into()), action: Action::Record },
        Rule {
            id: 2,
            nr: openat,
            subject: Some("cat".into()),
            object: Some("/etc/shadow".into()),
            action: Action::Block,
        },
    ]
}

/// What follows `key` on the first console line that holds it.
pub fn value_after(console: &str, key: &str) -> Option<String> {
    console.lines().find_map(|l| l.split(key).nth(1)).map(|v| v.trim().to_owned())
}
