//! The build steps of a disk image, in order: bootstrap the root tree, configure it, write the
//! ESP and the root filesystem as images, put them into a partitioned raw disk, convert it to
//! qcow2. Every host tool runs through [`crate::apt::run`] (C locale, stderr in the error).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::layout::{self, Layout, PartUuid, MIB};
use super::{releases_of, DiskError, DiskSpec, Manifest, DISK_FILE, KEY_FILE, MANIFEST_FORMAT};
use crate::apt;
use crate::error::GuestError;

/// Installed besides the kernels and the spec's extra packages.
const BASE_PACKAGES: &[&str] =
    &["systemd-sysv", "udev", "kmod", "openssh-server", "initramfs-tools", "iproute2", "procps", "systemd-boot-efi"];

/// Left out of the tree by dpkg: documentation (but not the copyright files), manuals, locales.
const DPKG_EXCLUDES: &[&str] = &[
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
];

/// systemd-boot's UEFI binary in the tree (package systemd-boot-efi).
const SYSTEMD_BOOT_EFI: &str = "usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/// Each host tool the build runs and the Debian package it comes from.
const TOOLS: &[(&str, &str)] = &[
    ("mmdebstrap", "mmdebstrap"),
    ("chroot", "coreutils"),
    ("ssh-keygen", "openssh-client"),
    ("mke2fs", "e2fsprogs"),
    ("mkfs.vfat", "dosfstools"),
    ("mmd", "mtools"),
    ("mcopy", "mtools"),
    ("sfdisk", "fdisk"),
    ("qemu-img", "qemu-utils"),
    ("qemu-io", "qemu-utils"),
];

/// What [`build`] needs besides the spec: its kernels resolved and the apt sources.
#[derive(Debug)]
pub(super) struct Plan<'a> {
    pub spec: &'a DiskSpec,
    pub kernel_packages: &'a [String],
    pub sources: &'a [String],
}

/// Fails unless this process is root and every tool the build runs is on `PATH`, so a build
/// does not stop after a minute of mmdebstrap for want of `mcopy`.
pub(super) fn preflight() -> Result<(), DiskError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(uid) = effective_uid(&status).filter(|uid| *uid != 0) {
        return Err(DiskError::NotRoot { uid });
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(tool, _)| !dirs.iter().any(|d| d.join(tool).is_file()))
        .map(|(tool, package)| format!("{tool} (package {package})"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(DiskError::MissingTools { missing })
    }
}

/// The effective uid in a `/proc/<pid>/status` text.
fn effective_uid(status: &str) -> Option<u32> {
    status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Builds the image into `out` (disk, key; not the manifest, which the caller writes last),
/// using `work` for the root tree and the partition images.
pub(super) fn build(plan: &Plan<'_>, work: &Path, out: &Path) -> Result<Manifest, GuestError> {
    let spec = plan.spec;
    let root = work.join("root");
    step("bootstrap the root tree with mmdebstrap (about a minute)", || {
        let args = mmdebstrap_args(&spec.suite, &packages(plan), &root, plan.sources);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        apt::run(&args, None).map(drop).map_err(GuestError::from)
    })?;
    let root_uuid = new_partuuid()?;
    step("configure the root tree", || configure(&root, spec, &root_uuid, out))?;

    let boot = root.join("boot");
    let kernels = installed_releases(&boot)?;
    let wanted = releases_of(plan.kernel_packages)?;
    if let Some(release) = wanted.iter().find(|r| !kernels.contains(r)) {
        return Err(DiskError::ReleaseNotInImage { release: release.clone(), available: kernels }.into());
    }
    let default_release = wanted.first().ok_or_else(|| DiskError::InvalidSpec("no kernel given".into()))?.clone();
    let bootloader = root.join(SYSTEMD_BOOT_EFI);
    let mut payload = file_size(&bootloader)?;
    for release in &kernels {
        payload += file_size(&boot.join(format!("vmlinuz-{release}")))?;
        payload += file_size(&boot.join(format!("initrd.img-{release}")))?;
    }
    let layout = Layout::for_payload(payload, spec.root_size_mib);

    let esp = work.join("esp.img");
    let loader_conf_in_esp = step("write the EFI system partition", || {
        write_esp(&esp, &layout, &bootloader, &boot, &kernels, &default_release, &root_uuid, work)
    })?;
    let rootfs = work.join("rootfs.img");
    step("write the root filesystem (mke2fs -d)", || {
        create_sized(&rootfs, spec.root_size_mib * MIB)?;
        let (tree, image) = (root.to_string_lossy(), rootfs.to_string_lossy());
        apt::run(&["mke2fs", "-q", "-t", "ext4", "-d", &tree, "-L", "palroot", &image], None)?;
        Ok(())
    })?;
    let raw = work.join("disk.raw");
    step("partition the disk and copy the partitions in", || {
        create_sized(&raw, layout.disk_bytes())?;
        let script = layout.sfdisk_script(&root_uuid);
        let raw_str = raw.to_string_lossy();
        let options =
            palisade_host::RunOptions { input: Some(script.as_bytes()), env: &[("LC_ALL", "C")], ..Default::default() };
        palisade_host::run_with(&["sfdisk", "-q", &raw_str], &options)?;
        let mut disk =
            std::fs::OpenOptions::new().write(true).open(&raw).map_err(|e| GuestError::io("open", &raw, e))?;
        copy_sparse(&esp, &mut disk, layout.esp_offset(), layout.esp_mib * MIB)?;
        copy_sparse(&rootfs, &mut disk, layout.root_offset(), layout.root_mib * MIB)?;
        disk.sync_all().map_err(|e| GuestError::io("write", &raw, e))
    })?;
    let qcow2 = out.join(DISK_FILE);
    step("convert the disk to qcow2", || {
        let (raw, qcow2) = (raw.to_string_lossy(), qcow2.to_string_lossy());
        apt::run(&["qemu-img", "convert", "-O", "qcow2", &raw, &qcow2], None).map(drop).map_err(GuestError::from)
    })?;
    Ok(Manifest {
        format: MANIFEST_FORMAT,
        suite: spec.suite.clone(),
        kernel_packages: plan.kernel_packages.to_vec(),
        extra_packages: spec.extra_packages.clone(),
        sources: plan.sources.to_vec(),
        hostname: spec.hostname.clone(),
        kernels,
        default_release,
        root_partuuid: root_uuid,
        esp_mib: layout.esp_mib,
        root_mib: layout.root_mib,
        loader_conf_offset: layout.esp_offset() + loader_conf_in_esp,
        build_seconds: 0,
    })
}

/// Runs one build step, logging what it was and how long it took.
fn step<T>(what: &str, f: impl FnOnce() -> Result<T, GuestError>) -> Result<T, GuestError> {
    tracing::info!(step = what, "disk image: starting");
    let started = Instant::now();
    let result = f()?;
    tracing::info!(step = what, elapsed = ?started.elapsed(), "disk image: done");
    Ok(result)
}

/// Every package the tree gets: the base system, the kernels, the spec's extras.
fn packages(plan: &Plan<'_>) -> Vec<String> {
    let base = BASE_PACKAGES.iter().map(|p| p.to_string());
    let mut all: Vec<String> = base.chain(plan.kernel_packages.iter().cloned()).collect();
    for extra in &plan.spec.extra_packages {
        if !all.contains(extra) {
            all.push(extra.clone());
        }
    }
    all
}

/// mmdebstrap's command line: a minimal root tree (as root, real ownership) with `packages`.
fn mmdebstrap_args(suite: &str, packages: &[String], root: &Path, sources: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["mmdebstrap", "--mode=root", "--variant=minbase"].map(String::from).to_vec();
    args.push(format!("--include={}", packages.join(",")));
    args.push("--aptopt=Acquire::Languages \"none\"".to_string());
    args.extend(DPKG_EXCLUDES.iter().map(|e| format!("--dpkgopt={e}")));
    args.push(suite.to_string());
    args.push(root.to_string_lossy().into_owned());
    args.extend(sources.iter().cloned());
    args
}

/// A fresh random partition UUID (the kernel's generator).
fn new_partuuid() -> Result<PartUuid, GuestError> {
    const SOURCE: &str = "/proc/sys/kernel/random/uuid";
    let text = std::fs::read_to_string(SOURCE).map_err(|e| GuestError::io("read", SOURCE, e))?;
    PartUuid::parse(&text).ok_or(GuestError::MissingFile { what: "a UUID", path: PathBuf::from(SOURCE) })
}

/// Makes the tree a guest: root's SSH key (generated into `out`), SSH host keys made at first
/// boot, host name, no name server, DHCP with systemd-networkd, no unit that calls out, the
/// root filesystem in fstab.
fn configure(root: &Path, spec: &DiskSpec, root_uuid: &PartUuid, out: &Path) -> Result<(), GuestError> {
    let key = out.join(KEY_FILE);
    let key_str = key.to_string_lossy();
    apt::run(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "palisade-disk", "-f", &key_str], None)?;
    let public = key.with_extension("pub");
    let public = std::fs::read(&public).map_err(|e| GuestError::io("read", &public, e))?;
    let ssh_dir = root.join("root/.ssh");
    std::fs::create_dir_all(&ssh_dir).map_err(|e| GuestError::io("create", &ssh_dir, e))?;
    set_mode(&ssh_dir, 0o700)?;
    write(&ssh_dir.join("authorized_keys"), &public, 0o600)?;

    let hostname = &spec.hostname;
    write(&root.join("etc/hostname"), format!("{hostname}\n").as_bytes(), 0o644)?;
    let hosts = format!("127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    write(&root.join("etc/hosts"), hosts.as_bytes(), 0o644)?;
    write(&root.join("etc/resolv.conf"), layout::RESOLV_CONF.as_bytes(), 0o644)?;
    write(&root.join("etc/systemd/network/20-wired.network"), layout::WIRED_NETWORK.as_bytes(), 0o644)?;
    remove_host_keys(&root.join("etc/ssh"))?;
    let drop_in = root.join("etc/systemd/system/ssh.service.d/palisade-host-keys.conf");
    write(&drop_in, layout::SSH_HOST_KEYS_DROP_IN.as_bytes(), 0o644)?;
    let root_str = root.to_string_lossy();
    apt::run(&["chroot", &root_str, "systemctl", "enable", "systemd-networkd"], None)?;
    let units = root.join("etc/systemd/system");
    for unit in layout::MASKED_UNITS {
        let link = units.join(unit);
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link).map_err(|e| GuestError::io("remove", &link, e))?;
        }
        std::os::unix::fs::symlink("/dev/null", &link).map_err(|e| GuestError::io("create the symlink", &link, e))?;
    }
    write(&root.join("etc/fstab"), layout::fstab(root_uuid).as_bytes(), 0o644)
}

/// Removes the SSH host keys openssh-server's installation made (`ssh_host_*` in `dir`).
fn remove_host_keys(dir: &Path) -> Result<(), GuestError> {
    for entry in std::fs::read_dir(dir).map_err(|e| GuestError::io("list", dir, e))? {
        let path = entry.map_err(|e| GuestError::io("list", dir, e))?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ssh_host_")) {
            std::fs::remove_file(&path).map_err(|e| GuestError::io("remove", &path, e))?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` (parents created) with permission bits `mode`. A symlink there is
/// replaced, not followed: in the guest's tree an absolute link points into the host.
fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), GuestError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| GuestError::io("create", parent, e))?;
    }
    if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(path).map_err(|e| GuestError::io("remove", path, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| GuestError::io("write", path, e))?;
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), GuestError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| GuestError::io("set the permissions of", path, e))
}

/// The kernel releases in `boot` that have both `vmlinuz-RELEASE` and `initrd.img-RELEASE`,
/// sorted.
fn installed_releases(boot: &Path) -> Result<Vec<String>, GuestError> {
    let entries = std::fs::read_dir(boot).map_err(|e| GuestError::io("list", boot, e))?;
    let mut releases = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| GuestError::io("list", boot, e))?.file_name();
        let Some(release) = name.to_str().and_then(|n| n.strip_prefix("vmlinuz-")) else { continue };
        if boot.join(format!("initrd.img-{release}")).is_file() {
            if !layout::valid_release(release) {
                return Err(DiskError::InvalidSpec(format!(
                    "the kernel release `{release}` cannot be a file name on the ESP"
                ))
                .into());
            }
            releases.push(release.to_string());
        }
    }
    releases.sort();
    if releases.is_empty() {
        return Err(DiskError::NoKernel { boot: boot.to_path_buf() }.into());
    }
    Ok(releases)
}

/// Writes the ESP image: systemd-boot as the removable-media boot loader, each kernel and
/// initrd at the top, an entry per kernel, `loader.conf` booting `default_release`. Returns
/// where `loader.conf`'s bytes lie in the image.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn write_esp(
    esp: &Path,
    layout: &Layout,
    bootloader: &Path,
    boot: &Path,
    kernels: &[String],
    default_release: &str,
    root_uuid: &PartUuid,
    work: &Path,
) -> Result<u64, GuestError> {
    let image = esp.to_string_lossy().into_owned();
    let kib = (layout.esp_mib * 1024).to_string();
    apt::run(&["mkfs.vfat", "-C", "-n", "ESP", &image, &kib], None)?;
    apt::run(&["mmd", "-i", &image, "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"], None)?;
    let copy = |host: &Path, esp_path: &str| -> Result<(), GuestError> {
        apt::run(&["mcopy", "-i", &image, &host.to_string_lossy(), esp_path], None).map(drop).map_err(GuestError::from)
    };
    copy(bootloader, "::/EFI/BOOT/BOOTX64.EFI")?;
    let files = work.join("esp-files");
    std::fs::create_dir_all(&files).map_err(|e| GuestError::io("create", &files, e))?;
    for release in kernels {
        copy(&boot.join(format!("vmlinuz-{release}")), &format!("::/vmlinuz-{release}"))?;
        copy(&boot.join(format!("initrd.img-{release}")), &format!("::/initrd.img-{release}"))?;
        let entry = files.join(format!("{release}.conf"));
        write(&entry, layout::loader_entry(release, root_uuid).as_bytes(), 0o644)?;
        copy(&entry, &format!("::/loader/entries/{release}.conf"))?;
    }
    let conf_bytes = layout::loader_conf(default_release)?;
    let conf = files.join("loader.conf");
    write(&conf, &conf_bytes, 0o644)?;
    copy(&conf, "::/loader/loader.conf")?;
    let bytes = std::fs::read(esp).map_err(|e| GuestError::io("read", esp, e))?;
    let offset = layout::find_unique_aligned(&bytes, &conf_bytes, 512)
        .map_err(|found| DiskError::LoaderConfNotFound { esp: esp.to_path_buf(), found })?;
    Ok(offset as u64)
}

fn file_size(path: &Path) -> Result<u64, GuestError> {
    Ok(std::fs::metadata(path).map_err(|e| GuestError::io("read", path, e))?.len())
}

/// Creates `path` as a sparse file of `bytes`.
fn create_sized(path: &Path, bytes: u64) -> Result<(), GuestError> {
    let file = File::create(path).map_err(|e| GuestError::io("create", path, e))?;
    file.set_len(bytes).map_err(|e| GuestError::io("size", path, e))
}

/// Copies `src` into `dst` at `offset`, skipping MiB blocks of zeros (`dst` is a fresh sparse
/// file, so they read as zeros anyway). `src` may be at most `capacity` bytes.
fn copy_sparse(src: &Path, dst: &mut File, offset: u64, capacity: u64) -> Result<(), GuestError> {
    let size = file_size(src)?;
    if size > capacity {
        return Err(DiskError::PartitionOverflow { image: src.to_path_buf(), size, capacity }.into());
    }
    let mut input = File::open(src).map_err(|e| GuestError::io("open", src, e))?;
    let mut block = vec![0u8; MIB as usize];
    let zeros = vec![0u8; MIB as usize];
    let mut at = 0u64;
    loop {
        let n = read_full(&mut input, &mut block).map_err(|e| GuestError::io("read", src, e))?;
        if n == 0 {
            return Ok(());
        }
        if block[..n] != zeros[..n] {
            let write_err = |e| GuestError::io("write the partition into the disk image from", src, e);
            dst.seek(SeekFrom::Start(offset + at)).map_err(write_err)?;
            dst.write_all(&block[..n]).map_err(write_err)?;
        }
        at += n as u64;
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_effective_uid_is_the_second_uid_field() {
        assert_eq!(effective_uid("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t0\n"), Some(0));
        assert_eq!(effective_uid("Uid:\t0\t1000\t0\t0\n"), Some(1000));
        assert_eq!(effective_uid("Name:\tx\n"), None);
    }

    #[test]
    fn mmdebstrap_gets_the_packages_the_excludes_and_the_sources() {
        let spec = DiskSpec { extra_packages: vec!["strace".into(), "procps".into()], ..DiskSpec::default() };
        let kernels = vec!["linux-image-6.1.0-57-cloud-amd64".to_string()];
        let sources = vec!["deb http://m/debian bookworm main".to_string()];
        let plan = Plan { spec: &spec, kernel_packages: &kernels, sources: &sources };

        let args = mmdebstrap_args("bookworm", &packages(&plan), Path::new("/c/root"), &sources);

        assert_eq!(args[..3], ["mmdebstrap", "--mode=root", "--variant=minbase"]);
        assert_eq!(
            args[3],
            "--include=systemd-sysv,udev,kmod,openssh-server,initramfs-tools,iproute2,procps,systemd-boot-efi,\
             linux-image-6.1.0-57-cloud-amd64,strace"
        );
        assert_eq!(args[4], "--aptopt=Acquire::Languages \"none\"");
        assert!(args.contains(&"--dpkgopt=path-exclude=/usr/share/doc/*".to_string()));
        assert_eq!(args[args.len() - 3..], ["bookworm", "/c/root", "deb http://m/debian bookworm main"]);
    }

    #[test]
    fn a_symlink_in_the_tree_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("host-file");
        std::fs::write(&outside, "host").unwrap();
        let link = dir.path().join("tree/etc/resolv.conf");
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&outside, &link).unwrap();

        write(&link, b"guest", 0o640).unwrap();

        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "host");
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "guest");
        assert!(!link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(link.metadata().unwrap().permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn releases_need_a_kernel_and_an_initrd() {
        let boot = tempfile::tempdir().unwrap();
        let err = installed_releases(boot.path()).unwrap_err();
        assert!(matches!(err, GuestError::Disk(DiskError::NoKernel { .. })), "{err:?}");
        for file in
            ["vmlinuz-6.1.0-57-amd64", "initrd.img-6.1.0-57-amd64", "vmlinuz-6.12.1-amd64", "config-6.1.0-57-amd64"]
        {
            std::fs::write(boot.path().join(file), "").unwrap();
        }
        std::fs::write(boot.path().join("vmlinuz-5.10.0-1-amd64"), "").unwrap();
        std::fs::write(boot.path().join("initrd.img-5.10.0-1-amd64"), "").unwrap();

        assert_eq!(installed_releases(boot.path()).unwrap(), ["5.10.0-1-amd64", "6.1.0-57-amd64"]);
    }

    #[test]
    fn a_partition_is_copied_at_its_offset_zero_blocks_skipped_and_overflow_refused() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("part.img");
        let mut part = vec![0u8; 3 * MIB as usize + 100];
        part[5] = 1;
        part[2 * MIB as usize + 7] = 2;
        part[3 * MIB as usize + 99] = 3;
        std::fs::write(&src, &part).unwrap();
        let disk_path = dir.path().join("disk.raw");
        create_sized(&disk_path, 8 * MIB).unwrap();
        let mut disk = std::fs::OpenOptions::new().write(true).open(&disk_path).unwrap();

        copy_sparse(&src, &mut disk, MIB, 4 * MIB).unwrap();

        let disk_bytes = std::fs::read(&disk_path).unwrap();
        assert_eq!(disk_bytes.len(), 8 * MIB as usize);
        assert_eq!(&disk_bytes[MIB as usize..MIB as usize + part.len()], &part[..]);
        assert!(disk_bytes[..MIB as usize].iter().all(|b| *b == 0));
        assert!(disk_bytes[MIB as usize + part.len()..].iter().all(|b| *b == 0));
        let err = copy_sparse(&src, &mut disk, 0, 3 * MIB).unwrap_err();
        assert!(matches!(err, GuestError::Disk(DiskError::PartitionOverflow { .. })), "{err:?}");
    }
}
