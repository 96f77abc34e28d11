//! The busybox initramfs Palisade boots its test guests with, written as a cpio `newc` archive
//! by [`crate::cpio`] (no external tool).
//!
//! The guest's `/init`, in order: mounts proc, sys and devtmpfs; sets `kptr_restrict` to 0;
//! prints [`READY_MARKER`] on ttyS0; writes the whole `/proc/kallsyms` to ttyS1 followed by
//! [`KALLSYMS_END_MARKER`] (before any module is loaded, so the dump holds the kernel image's
//! symbols only); loads the bundled modules; brings `eth0` up with the address given on the
//! kernel command line as `palisade.ip=ADDR/PREFIX` if the NIC exists; runs the workload (shell
//! lines, in a subshell, output on ttyS0); prints [`WORKLOAD_DONE_MARKER`] with its status;
//! `poweroff -f`.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::apt;
use crate::cpio::CpioWriter;
use crate::error::GuestError;
use crate::kernel::ModuleFile;
use palisade_elf::Image;

/// Printed on ttyS0 once the guest's init runs: `PALISADE-GUEST-READY <uname -r>`.
pub const READY_MARKER: &str = "PALISADE-GUEST-READY";
/// Written on ttyS1 after the last `/proc/kallsyms` line.
pub const KALLSYMS_END_MARKER: &str = "PALISADE-KALLSYMS-END";
/// Printed on ttyS0 after the workload: `PALISADE-WORKLOAD-DONE status=<exit status>`.
pub const WORKLOAD_DONE_MARKER: &str = "PALISADE-WORKLOAD-DONE";
/// Printed on ttyS0 once `eth0` is configured: `PALISADE-NET-UP <address>`.
pub const NET_UP_MARKER: &str = "PALISADE-NET-UP";
/// Kernel command-line parameter the init reads eth0's address from.
pub const IP_PARAM: &str = "palisade.ip";
/// The modules a virtio-net NIC needs (with their dependencies resolved from the modules).
pub const VIRTIO_NET_MODULES: &[&str] = &["virtio_pci", "virtio_net"];
/// The modules a virtio-blk disk needs.
pub const VIRTIO_BLK_MODULES: &[&str] = &["virtio_pci", "virtio_blk"];

/// The Debian package a static busybox comes from when the host's is dynamic.
const BUSYBOX_STATIC_PACKAGE: &str = "busybox-static";

/// What goes into an initramfs.
#[derive(Debug, Clone)]
pub struct InitramfsSpec {
    /// A statically linked busybox (see [`static_busybox`]).
    pub busybox: PathBuf,
    /// Kernel modules, in load order (see [`crate::KernelImage::module_closure`]).
    pub modules: Vec<ModuleFile>,
    /// Shell lines the init runs after the kallsyms dump.
    pub workload: Vec<String>,
    /// Further host files copied in (a program and its shared libraries, say).
    pub files: Vec<ExtraFile>,
}

/// A host file placed in the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// Its path in the guest, absolute (`/usr/bin/fio`).
    pub guest: String,
    /// The file on the host.
    pub host: PathBuf,
    /// Permission bits.
    pub mode: u32,
}

/// A dynamically linked host program and every shared library `ldd` resolves for it, each at
/// the same path in the guest (host and guest share the distribution's libc).
pub fn host_program(program: &Path) -> Result<Vec<ExtraFile>, GuestError> {
    let program = std::fs::canonicalize(program).map_err(|e| GuestError::io("find", program, e))?;
    let listing = apt::run(&["ldd", &program.to_string_lossy()], None)?;
    let mut files =
        vec![ExtraFile { guest: program.to_string_lossy().into_owned(), host: program.clone(), mode: 0o755 }];
    for line in listing.lines() {
        if line.contains("not found") {
            return Err(GuestError::MissingFile { what: "shared library of a program for the guest", path: program });
        }
        // `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)` or `/lib64/ld-linux-x86-64.so.2 (0x...)`.
        let path =
            line.split("=>").last().and_then(|rest| rest.split_whitespace().next()).filter(|p| p.starts_with('/'));
        if let Some(path) = path {
            files.push(ExtraFile { guest: path.to_owned(), host: PathBuf::from(path), mode: 0o755 });
        }
    }
    Ok(files)
}

/// Shell lines that prove the guest healthy: `iterations` rounds of reading files and hashing
/// busybox, each printing `PALISADE-WORKLOAD <i>/<iterations>` on the console.
pub fn health_workload(iterations: u32) -> Vec<String> {
    vec![
        format!("for i in $(seq 1 {iterations}); do"),
        "  cat /proc/meminfo /proc/stat /proc/interrupts > /dev/null || exit 1".to_string(),
        "  md5sum /bin/busybox > /dev/null || exit 1".to_string(),
        format!("  echo \"PALISADE-WORKLOAD $i/{iterations}\""),
        "done".to_string(),
    ]
}

/// Returns a statically linked busybox: the host's `/bin/busybox` if it is static, otherwise
/// the one from Debian's `busybox-static` package, fetched into `cache_dir`.
pub fn static_busybox(cache_dir: &Path) -> Result<PathBuf, GuestError> {
    let host = Path::new("/bin/busybox");
    if host.exists() && is_static(host)? {
        return Ok(host.to_path_buf());
    }
    let unpacked = apt::fetch_unpacked(BUSYBOX_STATIC_PACKAGE, cache_dir)?;
    let busybox = unpacked.join("bin/busybox");
    if !busybox.exists() {
        return Err(GuestError::MissingFile { what: "busybox in busybox-static", path: busybox });
    }
    if !is_static(&busybox)? {
        return Err(GuestError::BusyboxNotStatic { path: busybox });
    }
    Ok(busybox)
}

fn is_static(path: &Path) -> Result<bool, GuestError> {
    let bytes = std::fs::read(path).map_err(|e| GuestError::io("read", path, e))?;
    let elf = Image::parse(&bytes).map_err(|source| GuestError::Elf { path: path.to_path_buf(), source })?;
    let dynamic = elf.has_interpreter().map_err(|source| GuestError::Elf { path: path.to_path_buf(), source })?;
    Ok(!dynamic)
}

/// What [`build`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initramfs {
    /// The archive.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// How many busybox applet links it holds.
    pub applets: usize,
}

/// Writes the initramfs described by `spec` to `out` (uncompressed `newc`).
pub fn build(spec: &InitramfsSpec, out: &Path) -> Result<Initramfs, GuestError> {
    let busybox_bytes = std::fs::read(&spec.busybox).map_err(|e| GuestError::io("read", &spec.busybox, e))?;
    let busybox_str = spec.busybox.to_string_lossy();
    let applets = apt::run(&[&busybox_str, "--list-full"], None)?;
    let applets: Vec<&str> = applets.lines().map(str::trim).filter(|a| !a.is_empty() && *a != "bin/busybox").collect();

    // Written beside `out` and renamed over it, so a guest booting from `out` never reads a
    // half-written archive and concurrent builders do not interleave.
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| GuestError::io("create a temporary file in", dir, e))?;
    let file = tmp.reopen().map_err(|e| GuestError::io("open", tmp.path(), e))?;
    let mut w = CpioWriter::new(BufWriter::new(file));
    const BASE_DIRS: [&str; 12] =
        ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "etc", "lib", "lib/modules"];
    for dir in BASE_DIRS {
        w.dir(dir, 0o755).map_err(GuestError::Cpio)?;
    }
    // The kernel opens /dev/console for init's stdio before init could mount devtmpfs.
    w.char_device("dev/console", 0o600, 5, 1).map_err(GuestError::Cpio)?;
    w.file("bin/busybox", 0o755, &busybox_bytes).map_err(GuestError::Cpio)?;
    for applet in &applets {
        let depth = applet.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        w.symlink(applet, &target).map_err(GuestError::Cpio)?;
    }
    for module in &spec.modules {
        let bytes = module.read()?;
        w.file(&format!("lib/modules/{}.ko", module.name), 0o644, &bytes).map_err(GuestError::Cpio)?;
    }
    let mut dirs: std::collections::BTreeSet<String> = BASE_DIRS.iter().map(|d| d.to_string()).collect();
    for file in &spec.files {
        let rel = file.guest.trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(GuestError::InvalidConfig(format!(
                "initramfs path {:?} is not a clean absolute path",
                file.guest
            )));
        }
        let bytes = std::fs::read(&file.host).map_err(|e| GuestError::io("read", &file.host, e))?;
        let mut prefix = String::new();
        for component in rel.split('/').collect::<Vec<_>>().split_last().map(|(_, d)| d).unwrap_or_default() {
            prefix = if prefix.is_empty() { component.to_string() } else { format!("{prefix}/{component}") };
            if dirs.insert(prefix.clone()) {
                w.dir(&prefix, 0o755).map_err(GuestError::Cpio)?;
            }
        }
        w.file(rel, file.mode, &bytes).map_err(GuestError::Cpio)?;
    }
    w.file("init", 0o755, init_script(spec).as_bytes()).map_err(GuestError::Cpio)?;
    let writer = w.finish().map_err(GuestError::Cpio)?;
    let file = writer.into_inner().map_err(|e| GuestError::io("write", tmp.path(), e.into_error()))?;
    file.sync_all().map_err(|e| GuestError::io("write", tmp.path(), e))?;
    let perms = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    std::fs::set_permissions(tmp.path(), perms).map_err(|e| GuestError::io("set permissions of", tmp.path(), e))?;
    tmp.persist(out).map_err(|e| GuestError::io("rename the archive to", out, e.error))?;
    let size = std::fs::metadata(out).map_err(|e| GuestError::io("stat", out, e))?.len();
    Ok(Initramfs { path: out.to_path_buf(), size, applets: applets.len() })
}

/// Debian's cloud kernel (fetched into `cache_dir` once) and an initramfs running `workload`,
/// written to `out`; with `nic` it carries the virtio-net modules. The one way the lab runtime
/// gets bootable images.
pub fn cloud_images(
    cache_dir: &Path,
    workload: Vec<String>,
    nic: bool,
    out: &Path,
) -> Result<(crate::KernelImage, Initramfs), GuestError> {
    images(&crate::KernelChoice::default(), cache_dir, workload, nic, out)
}

/// Like [`cloud_images`] for any kernel: the one way tests, benchmarks and the lab runtime get
/// bootable images.
pub fn images(
    kernel: &crate::KernelChoice,
    cache_dir: &Path,
    workload: Vec<String>,
    nic: bool,
    out: &Path,
) -> Result<(crate::KernelImage, Initramfs), GuestError> {
    let kernel = crate::KernelImage::fetch(kernel, cache_dir)?;
    let modules = if nic { kernel.module_closure(VIRTIO_NET_MODULES)? } else { Vec::new() };
    let spec = InitramfsSpec { busybox: static_busybox(cache_dir)?, modules, workload, files: Vec::new() };
    let initramfs = build(&spec, out)?;
    Ok((kernel, initramfs))
}

/// The `/init` shell script for `spec`.
pub fn init_script(spec: &InitramfsSpec) -> String {
    let modules: Vec<&str> = spec.modules.iter().map(|m| m.name.as_str()).collect();
    let workload = spec.workload.iter().map(|l| format!("  {l}\n")).collect::<String>();
    format!(
        r#"#!/bin/sh
# Palisade test guest init (generated by palisade-guest).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo 0 > /proc/sys/kernel/kptr_restrict
echo "{READY_MARKER} $(uname -r)"
stty -F /dev/ttyS1 raw -echo 2>/dev/null
{{ cat /proc/kallsyms; echo "{KALLSYMS_END_MARKER}"; }} > /dev/ttyS1
echo "PALISADE-KALLSYMS-SENT $(wc -l < /proc/kallsyms)"
for m in {modules}; do
  insmod "/lib/modules/$m.ko" || echo "PALISADE-INSMOD-FAILED $m"
done
ip_addr=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in {IP_PARAM}=*) ip_addr="${{arg#{IP_PARAM}=}}" ;; esac
done
ip link set lo up
if [ -n "$ip_addr" ] && [ -e /sys/class/net/eth0 ]; then
  ip addr add "$ip_addr" dev eth0 && ip link set eth0 up && echo "{NET_UP_MARKER} $ip_addr"
fi
(
  :
{workload})
echo "{WORKLOAD_DONE_MARKER} status=$?"
sync
poweroff -f
"#,
        modules = modules.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_script_orders_ready_dump_modules_workload_poweroff() {
        let spec = InitramfsSpec {
            busybox: PathBuf::from("/bin/busybox"),
            modules: vec![
                ModuleFile { name: "failover".into(), path: PathBuf::from("f.ko") },
                ModuleFile { name: "virtio_net".into(), path: PathBuf::from("v.ko") },
            ],
            workload: vec!["echo hello".into()],
            files: Vec::new(),
        };

        let script = init_script(&spec);

        let at = |needle: &str| script.find(needle).unwrap_or_else(|| panic!("{needle:?} missing:\n{script}"));
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(at("mount -t devtmpfs") < at("kptr_restrict"));
        assert!(at("kptr_restrict") < at(READY_MARKER));
        assert!(at(READY_MARKER) < at("cat /proc/kallsyms"));
        assert!(at("/dev/ttyS1") < at("for m in failover virtio_net;"));
        assert!(at("for m in") < at("  echo hello\n"));
        assert!(at("  echo hello\n") < at(WORKLOAD_DONE_MARKER));
        assert!(at(WORKLOAD_DONE_MARKER) < at("poweroff -f"));
        assert!(script.contains(r#"ip_addr="${arg#palisade.ip=}""#), "{script}");
    }

    #[test]
    fn a_host_program_comes_with_its_libraries_and_their_directories() {
        let files = host_program(Path::new("/usr/bin/env")).unwrap();
        assert_eq!(files[0].guest, "/usr/bin/env");
        assert!(files.iter().any(|f| f.guest.ends_with("/libc.so.6")), "{files:?}");
        assert!(files.iter().any(|f| f.guest.contains("ld-linux")), "{files:?}");

        let dir = tempfile::tempdir().unwrap();
        let spec = InitramfsSpec {
            busybox: PathBuf::from("/bin/busybox"),
            modules: Vec::new(),
            workload: Vec::new(),
            files: files.clone(),
        };
        let out = dir.path().join("x.cpio");
        build(&spec, &out).unwrap();
        let archive = std::fs::read(&out).unwrap();
        let has = |name: &str| {
            archive.windows(name.len() + 1).any(|w| &w[..name.len()] == name.as_bytes() && w[name.len()] == 0)
        };
        let libc = files.iter().find(|f| f.guest.ends_with("/libc.so.6")).unwrap().guest.trim_start_matches('/');
        assert!(has(libc), "{libc} missing");
        assert!(has(libc.rsplit_once('/').unwrap().0), "the directory of {libc} is missing");

        let bad =
            InitramfsSpec { files: vec![ExtraFile { guest: "/usr/../etc/x".into(), ..files[0].clone() }], ..spec };
        assert!(build(&bad, &out).unwrap_err().to_string().contains("/usr/../etc/x"));
    }

    #[test]
    fn health_workload_counts_its_iterations() {
        let lines = health_workload(7).join("\n");
        assert!(lines.contains("seq 1 7"));
        assert!(lines.contains("PALISADE-WORKLOAD $i/7"));
    }
}
