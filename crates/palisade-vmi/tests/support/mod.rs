//! A real QEMU guest for the gdb / paging / hijack tests: Debian's cloud kernel (fetched with
//! apt and unpacked, never installed) and a busybox initramfs whose init prints a few
//! /proc/kallsyms lines (test-only symbol source), then runs a syscall workload and powers off.
//!
//! Started directly with qemu-system-x86_64 (TCG, `-cpu max`, so 5-level paging) until
//! `palisade-guest`'s `Guest::start` is settled. A missing QEMU fails the test loudly: CI runs
//! as root with qemu-system-x86 installed; kernel and busybox-static come from apt.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CACHE: &str = "/var/cache/palisade/vmi";
pub const MEM_MIB: u64 = 512;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The unpacked cloud kernel, fetched on first use.
pub fn kernel() -> PathBuf {
    let root = Path::new(CACHE).join("root/boot");
    let find = || {
        std::fs::read_dir(&root)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))
    };
    if let Some(k) = find() {
        return k;
    }
    std::fs::create_dir_all(CACHE).unwrap();
    let deps = Command::new("apt-cache").args(["depends", "linux-image-cloud-amd64"]).output().unwrap();
    let text = String::from_utf8_lossy(&deps.stdout);
    let pkg = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .expect("apt-cache knows linux-image-cloud-amd64 (run apt-get update)")
        .to_owned();
    run(Command::new("apt-get").args(["download", &pkg]).current_dir(CACHE));
    let deb = std::fs::read_dir(CACHE)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("downloaded kernel package");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(Path::new(CACHE).join("root")));
    find().expect("vmlinuz in the unpacked package")
}

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
grep -E ' (_text|__x64_sys_read|__x64_sys_getpid|module_alloc|jiffies|int_sqrt|gcd)$' /proc/kallsyms | sed 's/^/SYM /'
echo PALISADE-READY
i=0
while [ $i -lt $(cat /proc/cmdline | sed -n 's/.*workload=\([0-9]*\).*/\1/p') ]; do
  cat /proc/uptime >/dev/null; i=$((i+1)); sleep 0.02
done
echo PALISADE-WORKLOAD-DONE
poweroff -f
"#;

/// Debian's statically linked busybox, fetched with apt and unpacked on first use (the host's
/// /bin/busybox may be the dynamic one).
pub fn static_busybox() -> PathBuf {
    let dir = Path::new(CACHE).join("busybox-static");
    let bin = dir.join("bin/busybox");
    if !bin.exists() {
        let dl = dir.join("deb");
        std::fs::create_dir_all(&dl).unwrap();
        run(Command::new("apt-get").args(["download", "busybox-static"]).current_dir(&dl));
        let deb = std::fs::read_dir(&dl).unwrap().flatten().map(|e| e.path()).next().unwrap();
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir));
    }
    bin
}

/// Appends one newc cpio entry.
fn cpio_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
    let fields = [ino, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// The test initramfs (rebuilt every run: it is small), written as a newc cpio archive.
pub fn initramfs(dir: &Path) -> PathBuf {
    let busybox = std::fs::read(static_busybox()).unwrap();
    let mut cpio = Vec::new();
    for (ino, d) in ["bin", "proc", "dev"].iter().enumerate() {
        cpio_entry(&mut cpio, ino as u32 + 1, d, 0o040755, &[]);
    }
    cpio_entry(&mut cpio, 10, "bin/busybox", 0o100755, &busybox);
    cpio_entry(&mut cpio, 11, "init", 0o100755, INIT.as_bytes());
    cpio_entry(&mut cpio, 0, "TRAILER!!!", 0, &[]);
    let out = dir.join("initramfs.cpio");
    std::fs::write(&out, cpio).unwrap();
    out
}

/// A running guest; killed and its RAM file removed on drop.
pub struct TestGuest {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub ram: PathBuf,
    pub gdb: PathBuf,
    pub serial: PathBuf,
    pub symbols: HashMap<String, u64>,
}

impl TestGuest {
    /// Boots a guest with `vcpus` vCPUs that runs `workload` iterations of its syscall loop
    /// after boot.
    pub fn boot(name: &str, vcpus: u32, workload: u32) -> TestGuest {
        let qemu = which("qemu-system-x86_64").expect("qemu-system-x86_64 missing: apt-get install qemu-system-x86");
        let kernel = kernel();
        let dir = tempfile::tempdir().unwrap();
        let initrd = initramfs(dir.path());
        let ram = PathBuf::from(format!("/dev/shm/palisade-vmi-{name}-{}.ram", std::process::id()));
        let gdb = dir.path().join("gdb.sock");
        let serial = dir.path().join("ttyS0.log");
        let child = Command::new(qemu)
            .args(["-machine", "q35", "-accel", "tcg", "-cpu", "max", "-smp"])
            .arg(vcpus.to_string())
            .arg("-m")
            .arg(format!("{MEM_MIB}M"))
            .arg("-object")
            .arg(format!("memory-backend-file,id=ram0,size={MEM_MIB}M,mem-path={},share=on", ram.display()))
            .args(["-machine", "memory-backend=ram0", "-kernel"])
            .arg(&kernel)
            .arg("-initrd")
            .arg(&initrd)
            .arg("-append")
            .arg(format!("console=ttyS0 panic=-1 quiet workload={workload}"))
            .args(["-display", "none", "-monitor", "none", "-no-reboot", "-serial"])
            .arg(format!("file:{}", serial.display()))
            .arg("-chardev")
            .arg(format!("socket,id=gdb0,path={},server=on,wait=off", gdb.display()))
            .args(["-gdb", "chardev:gdb0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start qemu");
        let mut g = TestGuest { child, dir, ram, gdb, serial, symbols: HashMap::new() };
        g.wait_console("PALISADE-READY", Duration::from_secs(60));
        for line in g.console().lines() {
            let mut w = line.split_whitespace();
            if let (Some("SYM"), Some(addr), Some(_), Some(name)) = (w.next(), w.next(), w.next(), w.next()) {
                g.symbols.insert(name.to_owned(), u64::from_str_radix(addr, 16).unwrap());
            }
        }
        g
    }

    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    pub fn wait_console(&mut self, marker: &str, timeout: Duration) {
        let t0 = Instant::now();
        while !self.console().contains(marker) {
            if let Ok(Some(status)) = self.child.try_wait() {
                // The guest may have printed the marker just before powering off.
                if self.console().contains(marker) {
                    return;
                }
                panic!("qemu exited ({status}) before `{marker}`:\n{}", self.console());
            }
            assert!(t0.elapsed() < timeout, "no `{marker}` within {timeout:?}:\n{}", self.console());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for QEMU to exit by itself (the guest powered off).
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(t0.elapsed() < timeout, "guest still running after {timeout:?}:\n{}", self.console());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn symbol(&self, name: &str) -> u64 {
        *self.symbols.get(name).unwrap_or_else(|| panic!("guest did not print symbol {name}"))
    }
}

impl Drop for TestGuest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.ram);
    }
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(bin)).find(|p| p.exists())
}
