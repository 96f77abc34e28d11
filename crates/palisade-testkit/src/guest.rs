//! A small real guest for the introspection and monitor tests: a Debian kernel (the cloud kernel
//! unless `PALISADE_GUEST_KERNEL` names another, e.g. `6.12-amd64`) and a busybox initramfs
//! (both fetched with apt into the guest cache), RAM in a /dev/shm file, TCG. A missing QEMU
//! fails the test loudly: CI runs as root with qemu-system-x86 installed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use palisade_guest::{initramfs, AccelPolicy, Guest, GuestConfig, KernelChoice, KernelImage};

/// Long enough for a TCG boot and a kallsyms dump on a loaded 2-core CI machine.
pub const TIMEOUT: Duration = Duration::from_secs(300);

/// The kernel and busybox cache: `PALISADE_GUEST_CACHE` or palisade-guest's default.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("PALISADE_GUEST_CACHE")
        .map_or_else(|| PathBuf::from(palisade_guest::DEFAULT_CACHE_DIR), PathBuf::from)
}

/// Fails the test unless QEMU can be run.
pub fn require_qemu() {
    let out = std::process::Command::new("qemu-system-x86_64").arg("--version").output();
    match out {
        Ok(o) if o.status.success() => {}
        other => panic!(
            "qemu-system-x86_64 cannot be run ({other:?}); install it with `apt-get install qemu-system-x86` \
             (scripts/setup.sh)"
        ),
    }
}

/// The kernel the tests' guests boot: `PALISADE_GUEST_KERNEL` (`[SERIES-]FLAVOUR` or a
/// `linux-image-*` package, see [`KernelChoice`]) or Debian's cloud kernel.
pub fn kernel() -> KernelChoice {
    match std::env::var("PALISADE_GUEST_KERNEL") {
        Ok(text) if !text.is_empty() => text.parse().unwrap_or_else(|e| panic!("PALISADE_GUEST_KERNEL: {e}")),
        _ => KernelChoice::default(),
    }
}

/// [`kernel`] and an initramfs without a NIC running `workload`, written to `initrd`.
pub fn images(workload: Vec<String>, initrd: &Path) -> KernelImage {
    images_of(&kernel(), workload, initrd)
}

/// Like [`images`] with the kernel `choice`.
pub fn images_of(choice: &KernelChoice, workload: Vec<String>, initrd: &Path) -> KernelImage {
    require_qemu();
    let (kernel, _) = initramfs::images(choice, &cache_dir(), workload, false, initrd)
        .unwrap_or_else(|e| panic!("guest images ({choice}): {e:#?}"));
    kernel
}

/// Boots guest `name` under TCG (`-cpu max`, so 5-level paging where the kernel uses it) with
/// `vcpus` vCPUs and `memory_mib` of RAM, running `workload`; returns it with the guest's own
/// /proc/kallsyms dump, taken before the workload starts. `tmp` holds the initramfs.
pub fn boot(name: &str, vcpus: u32, memory_mib: u64, workload: Vec<String>, tmp: &Path) -> (Guest, String) {
    boot_kernel(&kernel(), name, vcpus, memory_mib, workload, tmp)
}

/// Like [`boot`] with the kernel `choice`.
pub fn boot_kernel(
    choice: &KernelChoice,
    name: &str,
    vcpus: u32,
    memory_mib: u64,
    workload: Vec<String>,
    tmp: &Path,
) -> (Guest, String) {
    let initrd = tmp.join(format!("{name}.cpio"));
    let kernel = images_of(choice, workload, &initrd);
    let mut config = GuestConfig::for_kernel(format!("{name}-{}", std::process::id()), &kernel, &initrd)
        .unwrap_or_else(|e| panic!("guest config: {e:#?}"));
    config.memory_mib = memory_mib;
    config.vcpus = vcpus;
    config.accel = AccelPolicy::Tcg;
    let mut guest = Guest::start(&config).unwrap_or_else(|e| panic!("start: {e:#?}"));
    let dump = guest.kallsyms_dump(TIMEOUT).unwrap_or_else(|e| panic!("kallsyms dump: {e:#?}"));
    (guest, dump)
}

/// The core-kernel lines of a /proc/kallsyms text, as symbol recovery yields them: module, bpf
/// and ftrace entries carry a `[owner]` and are not in the core table.
pub fn core_kallsyms(text: &str) -> Vec<String> {
    text.lines().map(str::trim_end).filter(|l| l.len() > 19 && !l.contains('[')).map(str::to_owned).collect()
}

/// Asserts that recovered symbols, as /proc/kallsyms lines, equal the guest's [`core_kallsyms`]
/// line for line, naming the first that differs.
pub fn assert_same_kallsyms(got: &[String], want: &[String]) {
    assert_eq!(got.len(), want.len(), "core symbol count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "symbol {i}");
    }
}
