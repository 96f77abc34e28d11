//! A libvirt test bed (issue #15): an isolated libvirt network (no `<forward>`: nothing leaves
//! the host) and domains booted by libvirt (`qemu:///system`) from a disk image through their
//! own firmware and bootloader, with libvirt's default memory backing. Everything is named after
//! the test binary (`paltest-<tag>-<pid>`) and removed when the [`Bed`] is dropped; leftovers of
//! a crashed run of the same tag are removed first. Nothing else on the host is touched.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_guest::{AccelPolicy, DiskImage, DiskSpec, GuestConfig, KernelChoice};
use palisade_host::{CommandRunner, SystemRunner};

/// Domains per bed (each has a fixed MAC and DHCP address).
const MAX_DOMAINS: u8 = 8;

/// Runs `virsh -c qemu:///system ARGS` and returns its output whatever the exit status.
fn virsh(args: &[&str]) -> Output {
    let mut argv = vec!["virsh", "-q", "-c", "qemu:///system"];
    argv.extend_from_slice(args);
    SystemRunner.output(&palisade_host::argv(&argv), None).unwrap_or_else(|e| panic!("{}", palisade_host::chain(&e)))
}

/// Like [`virsh`], panicking with its stderr unless it succeeds.
fn virsh_ok(args: &[&str]) -> String {
    let out = virsh(args);
    assert!(out.status.success(), "virsh {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kvm` when KVM runs guests on this host (palisade-guest's probe, cached per host boot),
/// else `qemu` (TCG), with the reason.
pub fn virt_type() -> (&'static str, String) {
    let dir = std::env::temp_dir().join(format!("palisade-virt-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("probe dir");
    let initrd = dir.join("probe.cpio");
    let kernel = crate::guest::images(Vec::new(), &initrd);
    let mut config = GuestConfig::for_kernel("virt-probe", &kernel, &initrd).expect("probe config");
    config.accel = AccelPolicy::Auto;
    let choice = palisade_guest::accel::choose(&config);
    let _ = std::fs::remove_dir_all(&dir);
    match choice.accel {
        palisade_guest::Accel::Kvm => ("kvm", choice.reason),
        palisade_guest::Accel::Tcg => ("qemu", choice.reason),
    }
}

/// An isolated network and the domains on it.
#[derive(Debug)]
pub struct Bed {
    prefix: String,
    network: String,
    subnet: u8,
    dir: PathBuf,
    domains: Vec<String>,
    virt_type: &'static str,
}

/// How a bed's domain is made.
#[derive(Debug, Clone)]
pub struct DomainOptions {
    /// vCPUs.
    pub vcpus: u32,
    /// RAM in MiB.
    pub memory_mib: u64,
    /// RAM in a shared memfd (`<memoryBacking><source type='memfd'/>`) instead of libvirt's
    /// default anonymous memory.
    pub memfd: bool,
    /// The image's kernel to boot (its default boot entry if `None`).
    pub release: Option<String>,
}

impl Default for DomainOptions {
    fn default() -> Self {
        DomainOptions { vcpus: 2, memory_mib: 1024, memfd: false, release: None }
    }
}

/// A domain of a [`Bed`].
#[derive(Debug, Clone)]
pub struct Domain {
    /// libvirt's name for it.
    pub name: String,
    /// Its address on the bed's network.
    pub ip: String,
    /// The root login key.
    pub key: PathBuf,
    /// Its serial console, written by libvirt.
    pub console: PathBuf,
}

impl Bed {
    /// A bed for test binary `tag` (lowercase letters, at most 6): network `paltest-<tag>-<pid>`
    /// on 192.168.`subnet`.0/24 (`subnet` distinct per tag among the suite's beds). Panics with
    /// a hint if libvirt cannot be reached (`scripts/setup.sh` starts it).
    pub fn new(tag: &str, subnet: u8) -> Bed {
        assert!(tag.len() <= 6 && tag.chars().all(|c| c.is_ascii_lowercase()), "bad bed tag {tag:?}");
        let version = virsh(&["version"]);
        assert!(
            version.status.success(),
            "libvirt (qemu:///system) cannot be reached: {}; scripts/setup.sh installs and starts it",
            String::from_utf8_lossy(&version.stderr).trim()
        );
        reap(&format!("paltest-{tag}-"));
        let prefix = format!("paltest-{tag}-{}", std::process::id());
        let dir = PathBuf::from("/var/lib/libvirt/images").join(&prefix);
        std::fs::create_dir_all(&dir).expect("bed directory");
        let (virt_type, reason) = virt_type();
        eprintln!("libvirt bed {prefix}: domains run as type {virt_type} ({reason})");
        let network = format!("{prefix}-net");
        let bridge = format!("pv{tag}{}", std::process::id() % 100_000);
        let hosts: String = (0..MAX_DOMAINS)
            .map(|i| format!("<host mac='{}' ip='192.168.{subnet}.{}'/>", mac(subnet, i), 10 + i))
            .collect();
        let xml = format!(
            "<network><name>{network}</name><bridge name='{bridge}' stp='off'/>\
             <ip address='192.168.{subnet}.1' netmask='255.255.255.0'><dhcp>\
             <range start='192.168.{subnet}.100' end='192.168.{subnet}.150'/>{hosts}</dhcp></ip></network>"
        );
        let file = dir.join("network.xml");
        std::fs::write(&file, xml).expect("network xml");
        virsh_ok(&["net-define", file.to_str().unwrap()]);
        virsh_ok(&["net-start", &network]);
        Bed { prefix, network, subnet, dir, domains: Vec::new(), virt_type }
    }

    /// Defines and starts domain `name` (`<prefix>-<name>`) from a copy-on-write overlay of
    /// `image` booting `options.release`, logging in as root with the image's key; returns once
    /// its sshd answers.
    pub fn start(&mut self, name: &str, image: &DiskImage, options: DomainOptions) -> Domain {
        let DomainOptions { vcpus, memory_mib, memfd, release } = options;
        let i = self.domains.len() as u8;
        assert!(i < MAX_DOMAINS, "at most {MAX_DOMAINS} domains per bed");
        let full = format!("{}-{name}", self.prefix);
        let overlay = self.dir.join(format!("{name}.qcow2"));
        let release = release.as_deref().unwrap_or(&image.default_release);
        image.overlay(&overlay, release).unwrap_or_else(|e| panic!("overlay: {}", palisade_host::chain(&e)));
        let console = self.dir.join(format!("{name}.console"));
        let cpu = if self.virt_type == "kvm" {
            "<cpu mode='host-passthrough'/>".to_owned()
        } else {
            "<cpu mode='custom'><model>qemu64</model></cpu>".to_owned()
        };
        let backing =
            if memfd { "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>" } else { "" };
        let xml = format!(
            "<domain type='{vt}'><name>{full}</name><memory unit='MiB'>{memory_mib}</memory><vcpu>{vcpus}</vcpu>{backing}\
             <os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type>\
             <firmware><feature enabled='no' name='secure-boot'/></firmware></os>\
             <features><acpi/></features>{cpu}<devices>\
             <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>\
             <target dev='vda' bus='virtio'/></disk>\
             <interface type='network'><source network='{net}'/><mac address='{mac}'/><model type='virtio'/></interface>\
             <serial type='file'><source path='{console}'/></serial><console type='file'><source path='{console}'/></console>\
             </devices></domain>",
            vt = self.virt_type,
            disk = overlay.display(),
            net = self.network,
            mac = mac(self.subnet, i),
            console = console.display(),
        );
        let file = self.dir.join(format!("{name}.xml"));
        std::fs::write(&file, xml).expect("domain xml");
        virsh_ok(&["define", file.to_str().unwrap()]);
        self.domains.push(full.clone());
        virsh_ok(&["start", &full]);
        let domain = Domain {
            name: full,
            ip: format!("192.168.{}.{}", self.subnet, 10 + i),
            key: image.ssh_key.clone(),
            console,
        };
        domain.wait_ssh(Duration::from_secs(600));
        domain
    }
}

impl Bed {
    /// Stops (destroys) `domain` now; it stays defined until the bed is dropped.
    pub fn stop(&self, domain: &Domain) {
        virsh(&["destroy", &domain.name]);
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for d in &self.domains {
            virsh(&["destroy", d]);
            virsh(&["undefine", "--nvram", d]);
        }
        virsh(&["net-destroy", &self.network]);
        virsh(&["net-undefine", &self.network]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes domains and networks named `<prefix><pid>-...` whose test process is gone.
fn reap(prefix: &str) {
    let dead = |name: &str| {
        let pid = name.strip_prefix(prefix).and_then(|rest| rest.split('-').next()).and_then(|p| p.parse::<u32>().ok());
        pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    };
    let list = |args: &[&str]| -> Vec<String> {
        String::from_utf8_lossy(&virsh(args).stdout)
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    };
    for d in list(&["list", "--all", "--name"]).into_iter().filter(|n| dead(n)) {
        virsh(&["destroy", &d]);
        virsh(&["undefine", "--nvram", &d]);
    }
    for n in list(&["net-list", "--all", "--name"]).into_iter().filter(|n| dead(n)) {
        virsh(&["net-destroy", &n]);
        virsh(&["net-undefine", &n]);
    }
    if let Ok(entries) = std::fs::read_dir("/var/lib/libvirt/images") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead(&name) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

fn mac(subnet: u8, i: u8) -> String {
    format!("52:54:00:7a:{subnet:02x}:{i:02x}")
}

/// A shell kept busy in a domain ([`Domain::keep_busy`]); stops (after its current round) when
/// dropped.
#[derive(Debug)]
pub struct Busy {
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a command run over SSH printed.
#[derive(Debug)]
pub struct Ssh {
    /// Exit status (`None`: killed or ssh failed to run).
    pub status: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Domain {
    /// Runs `command` as root in the domain over SSH (a host key is not checked: the bed's
    /// domains are throwaway and on an isolated network).
    pub fn ssh(&self, command: &str) -> Ssh {
        let key = self.key.to_str().unwrap();
        let target = format!("root@{}", self.ip);
        let argv = [
            "ssh",
            "-i",
            key,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=5",
            &target,
            command,
        ];
        let out = SystemRunner
            .output(&palisade_host::argv(&argv), None)
            .unwrap_or_else(|e| panic!("{}", palisade_host::chain(&e)));
        Ssh {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Waits until `true` runs over SSH; panics with the console's end after `timeout`.
    pub fn wait_ssh(&self, timeout: Duration) {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if self.ssh("true").status == Some(0) {
                eprintln!("{}: sshd answers after {:?}", self.name, t.elapsed());
                return;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        let console = std::fs::read_to_string(&self.console).unwrap_or_default();
        let tail: Vec<&str> = console.lines().rev().take(30).collect();
        panic!(
            "{}: no SSH after {timeout:?}; console ends:\n{}",
            self.name,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    /// Keeps a shell in the domain making system calls (a read every 0.1 s) until the returned
    /// guard is dropped: a guest at rest makes few, and hijacked calls start from one.
    pub fn keep_busy(&self) -> Busy {
        let running = Arc::new(AtomicBool::new(true));
        let (flag, dom) = (running.clone(), self.clone());
        let thread = std::thread::spawn(move || {
            while flag.load(Ordering::Relaxed) {
                dom.ssh("for i in $(seq 1 20); do read -r u < /proc/uptime; sleep 0.1; done");
            }
        });
        Busy { running, thread: Some(thread) }
    }

    /// `virsh domstate`.
    pub fn state(&self) -> String {
        virsh_ok(&["domstate", &self.name]).trim().to_owned()
    }

    /// The domain's live XML.
    pub fn xml(&self) -> String {
        virsh_ok(&["dumpxml", &self.name])
    }
}

/// The disk image of the tests' libvirt domains and of palisade-guest's disk test (one image, so
/// a fresh machine builds it once): Debian 12 with Debian's 6.1 cloud kernel (the default boot
/// entry) and the archive's 6.12 cloud kernel.
pub fn disk_spec() -> DiskSpec {
    let kernels =
        ["cloud-amd64", "6.12-cloud-amd64"].map(|k| k.parse::<KernelChoice>().expect("kernel choice")).to_vec();
    DiskSpec { kernels, hostname: "paltest-disk".into(), ..DiskSpec::default() }
}

/// [`disk_spec`]'s image, built into the guest cache the first time (about a minute) and found
/// there afterwards.
pub fn disk_image() -> DiskImage {
    assert!(crate::is_root(), "building a disk image needs root (mmdebstrap --mode=root); CI runs as root");
    let t = Instant::now();
    let image = DiskImage::build(&disk_spec(), &crate::guest::cache_dir())
        .unwrap_or_else(|e| panic!("disk image: {}", palisade_host::chain(&e)));
    eprintln!("disk image {} ready in {:?}", image.path.display(), t.elapsed());
    image
}
