//! The guest's machine: its configuration, its RAM layout and the QEMU command line for it.
//!
//! Machine type `q35`. QEMU 7.2 (`pc_q35_init`) splits RAM around the PCI hole like this:
//! a guest with less than 2816 MiB (`0xb000_0000`) has all of it at guest-physical 0; a bigger
//! one gets 2 GiB at 0 and the rest at 4 GiB. The RAM file is that RAM in order: the part below
//! 4 GiB at file offset 0, the part above it at file offset `below_4g`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::error::GuestError;
use crate::initramfs::IP_PARAM;

/// Default [`GuestConfig::kvm_probe_cache`]: on tmpfs, so a host reboot forgets it.
pub const DEFAULT_KVM_PROBE_CACHE: &str = "/run/palisade/kvm-probe.json";

/// Start of guest-physical memory above the PCI hole.
pub const HIGH_RAM_START: u64 = 4 << 30;
/// q35: guests with at least this much RAM get only [`Q35_SPLIT_LOWMEM`] below 4 GiB.
pub const Q35_LOWMEM_LIMIT: u64 = 0xb000_0000;
/// q35: RAM below 4 GiB for guests of [`Q35_LOWMEM_LIMIT`] or more.
pub const Q35_SPLIT_LOWMEM: u64 = 0x8000_0000;

/// One contiguous piece of guest RAM: where it sits in guest-physical space and in the RAM file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamRegion {
    /// First guest-physical address.
    pub gpa: u64,
    /// Length in bytes.
    pub len: u64,
    /// Offset of `gpa` in the RAM file.
    pub file_offset: u64,
}

/// The RAM regions of a q35 guest with `mem_bytes` of RAM (see the module documentation).
pub fn q35_ram_layout(mem_bytes: u64) -> Vec<RamRegion> {
    let below_4g = if mem_bytes >= Q35_LOWMEM_LIMIT { Q35_SPLIT_LOWMEM } else { mem_bytes };
    let mut regions = vec![RamRegion { gpa: 0, len: below_4g, file_offset: 0 }];
    if mem_bytes > below_4g {
        regions.push(RamRegion { gpa: HIGH_RAM_START, len: mem_bytes - below_4g, file_offset: below_4g });
    }
    regions
}

/// Which accelerator QEMU runs the guest with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation (`-accel kvm -cpu host`).
    Kvm,
    /// QEMU's emulator (`-accel tcg -cpu max`; `max` turns on 5-level paging).
    Tcg,
}

/// How to pick the accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelPolicy {
    /// KVM if a test guest really boots with it (probed once per process), else TCG.
    #[default]
    Auto,
    /// KVM, whether or not it works.
    Kvm,
    /// TCG.
    Tcg,
}

/// The accelerator chosen for a guest and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    /// The accelerator.
    pub accel: Accel,
    /// Why: the probe's result, or that it was requested.
    pub reason: String,
}

/// A virtio-net NIC backed by a host tap device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicConfig {
    /// Host tap name (QEMU creates it if it does not exist; at most 15 bytes).
    pub tap: String,
    /// Guest MAC address, `xx:xx:xx:xx:xx:xx`.
    pub mac: String,
    /// Address the guest's init gives `eth0`, passed as `palisade.ip=` on the kernel command line.
    pub ip: Option<Ipv4Net>,
}

/// Everything needed to start a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestConfig {
    /// Guest name: 1-40 of `[a-z0-9_-]`; names the RAM file and the run directory.
    pub name: String,
    /// The kernel (`vmlinuz`).
    pub kernel: PathBuf,
    /// The initramfs.
    pub initramfs: PathBuf,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Accelerator policy.
    pub accel: AccelPolicy,
    /// Optional NIC.
    pub nic: Option<NicConfig>,
    /// Raw disk images, attached as virtio-blk devices in order (`/dev/vda`, `/dev/vdb`, ...;
    /// the guest needs the `virtio_blk` module, see [`crate::initramfs::VIRTIO_BLK_MODULES`]).
    pub disks: Vec<PathBuf>,
    /// Kernel command-line words after the defaults (`console=ttyS0 panic=-1 quiet`).
    pub extra_cmdline: Vec<String>,
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// Directory of the RAM file (a tmpfs, so the file is the RAM itself).
    pub ram_dir: PathBuf,
    /// How long the KVM probe waits for the ready marker.
    pub kvm_probe_timeout: Duration,
    /// Where the KVM probe's verdict is kept for later processes of the same host boot
    /// (`None`: probe in every process).
    pub kvm_probe_cache: Option<PathBuf>,
    /// The id of the controller instance that owns this guest, written on QEMU's command line
    /// (see [`owner_arg`]) so that a reaper can tell its own guests from everyone else's.
    pub owner: Option<String>,
}

impl GuestConfig {
    /// Like [`GuestConfig::new`] for `kernel`'s `vmlinuz`, with the command-line words that
    /// kernel needs ([`crate::KernelImage::boot_cmdline`]).
    pub fn for_kernel(
        name: impl Into<String>,
        kernel: &crate::KernelImage,
        initramfs: impl Into<PathBuf>,
    ) -> Result<Self, crate::GuestError> {
        let mut config = GuestConfig::new(name, &kernel.vmlinuz, initramfs);
        config.extra_cmdline = kernel.boot_cmdline()?;
        Ok(config)
    }

    /// A one-vCPU, 512 MiB guest with the accelerator chosen automatically and no NIC.
    pub fn new(name: impl Into<String>, kernel: impl Into<PathBuf>, initramfs: impl Into<PathBuf>) -> Self {
        GuestConfig {
            name: name.into(),
            kernel: kernel.into(),
            initramfs: initramfs.into(),
            memory_mib: 512,
            vcpus: 1,
            accel: AccelPolicy::Auto,
            nic: None,
            disks: Vec::new(),
            extra_cmdline: Vec::new(),
            qemu: PathBuf::from("qemu-system-x86_64"),
            ram_dir: PathBuf::from("/dev/shm"),
            kvm_probe_timeout: Duration::from_secs(15),
            kvm_probe_cache: Some(PathBuf::from(DEFAULT_KVM_PROBE_CACHE)),
            owner: None,
        }
    }

    /// Guest RAM in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mib << 20
    }

    /// The RAM file: `<ram_dir>/palisade-<name>.ram`.
    pub fn ram_path(&self) -> PathBuf {
        self.ram_dir.join(format!("palisade-{}.ram", self.name))
    }

    /// Checks the fields QEMU or the host would otherwise reject obscurely.
    pub fn validate(&self) -> Result<(), GuestError> {
        let invalid = |msg: String| Err(GuestError::InvalidConfig(msg));
        let name_ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if self.name.is_empty() || self.name.len() > 40 || !self.name.chars().all(name_ok) {
            return invalid(format!("guest name {:?} must be 1-40 of [a-z0-9_-]", self.name));
        }
        if !(64..=1 << 20).contains(&self.memory_mib) {
            return invalid(format!("memory {} MiB is outside 64 MiB..1 TiB", self.memory_mib));
        }
        if !(1..=64).contains(&self.vcpus) {
            return invalid(format!("{} vCPUs is outside 1..64", self.vcpus));
        }
        for (what, path) in [("kernel", &self.kernel), ("initramfs", &self.initramfs)] {
            if !path.is_file() {
                return invalid(format!("{what} `{}` is not a file", path.display()));
            }
            // QEMU reads a comma in -initrd as a list separator, with no escape.
            if path.to_string_lossy().contains(',') {
                return invalid(format!("{what} path `{}` contains a comma", path.display()));
            }
        }
        for disk in &self.disks {
            if !disk.is_file() {
                return invalid(format!("disk image `{}` is not a file", disk.display()));
            }
            if disk.to_string_lossy().contains(',') {
                return invalid(format!("disk image path `{}` contains a comma", disk.display()));
            }
        }
        if let Some(nic) = &self.nic {
            let tap_ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
            if nic.tap.is_empty() || nic.tap.len() > 15 || !nic.tap.chars().all(tap_ok) {
                return invalid(format!("tap name {:?} must be 1-15 of [A-Za-z0-9._-]", nic.tap));
            }
            let octets: Vec<&str> = nic.mac.split(':').collect();
            let hex_octet = |o: &&str| o.len() == 2 && o.chars().all(|c| c.is_ascii_hexdigit());
            if octets.len() != 6 || !octets.iter().all(hex_octet) {
                return invalid(format!("MAC {:?} is not xx:xx:xx:xx:xx:xx", nic.mac));
            }
        }
        if let Some(word) = self.extra_cmdline.iter().find(|w| w.is_empty() || w.contains(char::is_whitespace)) {
            return invalid(format!("kernel command-line word {word:?} is empty or contains whitespace"));
        }
        Ok(())
    }

    /// The kernel command line. KASLR stays on: `nokaslr` is never added.
    pub fn kernel_cmdline(&self) -> String {
        let mut words: Vec<String> = ["console=ttyS0", "panic=-1", "quiet"].map(String::from).to_vec();
        if let Some(ip) = self.nic.as_ref().and_then(|n| n.ip) {
            words.push(format!("{IP_PARAM}={ip}"));
        }
        words.extend(self.extra_cmdline.iter().cloned());
        words.join(" ")
    }
}

/// Where a running guest's sockets and files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPaths {
    /// QMP unix socket.
    pub qmp: PathBuf,
    /// gdbstub unix socket.
    pub gdb: PathBuf,
    /// ttyS0 log.
    pub console: PathBuf,
    /// ttyS1 file (the kallsyms dump).
    pub kallsyms: PathBuf,
    /// QEMU's own stdout and stderr.
    pub qemu_log: PathBuf,
    /// The guest RAM file.
    pub ram: PathBuf,
}

impl RunPaths {
    /// The paths for a guest whose run directory is `dir`.
    pub fn new(dir: &Path, ram: PathBuf) -> Self {
        RunPaths {
            qmp: dir.join("qmp.sock"),
            gdb: dir.join("gdb.sock"),
            console: dir.join("ttyS0.log"),
            kallsyms: dir.join("ttyS1.kallsyms"),
            qemu_log: dir.join("qemu.log"),
            ram,
        }
    }
}

/// QEMU's arguments (without the program name) for `config` under `accel`.
pub fn qemu_args(config: &GuestConfig, accel: Accel, paths: &RunPaths) -> Vec<String> {
    let mem = config.memory_mib;
    let (accel_arg, cpu) = match accel {
        Accel::Kvm => ("kvm", "host"),
        Accel::Tcg => ("tcg", "max"),
    };
    let mut args: Vec<String> = vec![
        "-name".into(),
        opt(&config.name),
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        "-no-reboot".into(),
        "-accel".into(),
        accel_arg.into(),
        "-cpu".into(),
        cpu.into(),
        "-smp".into(),
        config.vcpus.to_string(),
        "-m".into(),
        format!("{mem}M"),
        "-object".into(),
        format!("memory-backend-file,id=ram0,size={mem}M,mem-path={},share=on", opt_path(&paths.ram)),
        "-machine".into(),
        "q35,memory-backend=ram0".into(),
        "-kernel".into(),
        config.kernel.to_string_lossy().into_owned(),
        "-initrd".into(),
        config.initramfs.to_string_lossy().into_owned(),
        "-append".into(),
        config.kernel_cmdline(),
        "-chardev".into(),
        format!("socket,id=qmp0,path={},server=on,wait=off", opt_path(&paths.qmp)),
        "-mon".into(),
        "chardev=qmp0,mode=control".into(),
        "-chardev".into(),
        format!("socket,id=gdb0,path={},server=on,wait=off", opt_path(&paths.gdb)),
        "-gdb".into(),
        "chardev:gdb0".into(),
        "-chardev".into(),
        format!("file,id=ttyS0,path={}", opt_path(&paths.console)),
        "-serial".into(),
        "chardev:ttyS0".into(),
        "-chardev".into(),
        format!("file,id=ttyS1,path={}", opt_path(&paths.kallsyms)),
        "-serial".into(),
        "chardev:ttyS1".into(),
    ];
    if let Some(nic) = &config.nic {
        args.push("-netdev".into());
        args.push(format!("tap,id=n0,ifname={},script=no,downscript=no", nic.tap));
        args.push("-device".into());
        // csum=off: the guest computes its own checksums. Offloaded ones would reach Open
        // vSwitch's userspace datapath unfilled, and TCP to the guest's peers would fail.
        args.push(format!("virtio-net-pci,netdev=n0,mac={},csum=off", nic.mac));
    }
    if let Some(owner) = &config.owner {
        args.push("-object".into());
        args.push(owner_arg(owner));
    }
    for (i, disk) in config.disks.iter().enumerate() {
        args.push("-drive".into());
        args.push(format!("file={},format=raw,if=none,id=disk{i},cache=writeback", opt_path(disk)));
        args.push("-device".into());
        args.push(format!("virtio-blk-pci,drive=disk{i}"));
    }
    args
}

/// The `-object` argument that marks a QEMU process as owned by controller instance `owner`: an
/// inert secret object the guest never sees, readable in `/proc/<pid>/cmdline`.
pub fn owner_arg(owner: &str) -> String {
    format!("secret,id=palisade-owner,data={}", opt(owner))
}

/// A value inside a QEMU `-opt key=value,...` list: commas are doubled.
fn opt(value: &str) -> String {
    value.replace(',', ",,")
}

fn opt_path(path: &Path) -> String {
    opt(&path.to_string_lossy())
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
