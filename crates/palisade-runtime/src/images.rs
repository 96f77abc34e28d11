//! The images every lab guest boots: Debian's cloud kernel and a busybox initramfs.

use std::path::{Path, PathBuf};

use palisade_guest::initramfs;
use palisade_guest::GuestError;

/// What a lab guest runs after boot: a light loop of file reads and writes, forever, so the
/// kernel keeps taking system calls (and safe points for hijacked calls keep coming), and
/// monitor policies have something to see (issue #5): every second `cat` reads /etc/hosts and
/// /etc/passwd, the shell writes /root/note; a refused read is reported on the console. The
/// shell's `read` is a read(2) each round: busybox `cat` copies with sendfile(2), and the
/// monitor's hijacked calls wait for read(2) (their safe point).
pub const LAB_WORKLOAD: &[&str] = &[
    "mkdir -p /etc /root",
    "[ -f /etc/hosts ] || echo '127.0.0.1 localhost guest1' > /etc/hosts",
    "[ -f /etc/passwd ] || echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd",
    "echo PALISADE-LAB-GUEST-UP",
    "i=0",
    "while true; do",
    "  i=$((i+1))",
    "  cat /proc/loadavg > /tmp/load",
    "  cat /tmp/load > /dev/null",
    "  read -r up < /proc/uptime",
    "  cat /etc/hosts > /dev/null 2> /tmp/hosts.err || echo \"PALISADE-HOSTS-REFUSED $(cat /tmp/hosts.err)\"",
    "  cat /etc/passwd > /dev/null",
    "  echo \"note $i\" > /root/note",
    "  sleep 1",
    "done",
];

/// A kernel and an initramfs ready to boot.
#[derive(Debug, Clone)]
pub struct Images {
    /// `vmlinuz`.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initramfs: PathBuf,
    /// The kernel's release, e.g. `6.1.0-41-cloud-amd64`.
    pub release: String,
}

impl Images {
    /// Fetches the cloud kernel (apt download + unpack into `cache_dir`, once) and builds the
    /// lab initramfs into `cache_dir`.
    pub fn prepare(cache_dir: &Path) -> Result<Images, GuestError> {
        let workload = LAB_WORKLOAD.iter().map(|l| l.to_string()).collect();
        let out = cache_dir.join("lab-initramfs.cpio");
        let (kernel, initramfs) = initramfs::cloud_images(cache_dir, workload, true, &out)?;
        Ok(Images { kernel: kernel.vmlinuz, initramfs: initramfs.path, release: kernel.release })
    }
}
