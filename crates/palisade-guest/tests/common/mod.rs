//! Shared fixtures for the QEMU integration tests: the real Debian cloud kernel and an initramfs
//! built by this crate. They need root (the apt cache and /dev/shm) and QEMU; a missing piece
//! fails the test with what to install, never skips it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use palisade_guest::initramfs::{self, InitramfsSpec};
use palisade_guest::{GuestConfig, KernelImage};

/// Boot to the ready marker under TCG takes a few seconds; this leaves room for a loaded CI box.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

#[allow(unused_imports)] // each test binary uses some of the shared fixtures
pub use palisade_testkit::guest::{cache_dir, require_qemu};

pub fn init_tracing() {
    let _ =
        tracing_subscriber::fmt().with_env_filter("palisade_guest=info").with_ansi(false).with_test_writer().try_init();
}

/// The tests' kernel (`PALISADE_GUEST_KERNEL`, the cloud kernel by default), fetched once per
/// test binary.
pub fn kernel() -> &'static KernelImage {
    static KERNEL: OnceLock<KernelImage> = OnceLock::new();
    KERNEL.get_or_init(|| {
        let started = Instant::now();
        let kernel = KernelImage::fetch(&palisade_testkit::guest::kernel(), &cache_dir())
            .unwrap_or_else(|e| panic!("kernel fetch: {e:#?}"));
        eprintln!("kernel {} ready in {:?}", kernel.package, started.elapsed());
        kernel
    })
}

/// Builds an initramfs with the virtio-net modules and `workload` at `CARGO_TARGET_TMPDIR/<file>`.
pub fn initramfs(file: &str, workload: Vec<String>) -> PathBuf {
    let kernel = kernel();
    let started = Instant::now();
    let busybox = initramfs::static_busybox(&cache_dir()).unwrap_or_else(|e| panic!("busybox: {e:#?}"));
    let modules = kernel.module_closure(initramfs::VIRTIO_NET_MODULES).unwrap_or_else(|e| panic!("modules: {e:#?}"));
    let spec = InitramfsSpec { busybox, modules, workload, files: Vec::new() };
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    let built = initramfs::build(&spec, &out).unwrap_or_else(|e| panic!("initramfs: {e:#?}"));
    eprintln!(
        "initramfs {} ({} bytes, {} applets) built in {:?}",
        out.display(),
        built.size,
        built.applets,
        started.elapsed()
    );
    out
}

/// A guest name unique to this process and `tag`.
pub fn guest_name(tag: &str) -> String {
    format!("t{}-{tag}", std::process::id())
}

pub fn config(tag: &str, initramfs: &Path) -> GuestConfig {
    GuestConfig::for_kernel(guest_name(tag), kernel(), initramfs).expect("guest config")
}

/// The address of `symbol` in a /proc/kallsyms text.
pub fn symbol_address(kallsyms: &str, symbol: &str) -> Option<u64> {
    kallsyms.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let addr = fields.next()?;
        let _kind = fields.next()?;
        (fields.next()? == symbol).then(|| u64::from_str_radix(addr, 16).ok()).flatten()
    })
}

/// Whether process `pid` still exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(false)
}
