//! Bootable VM disk images built from Debian packages: a qcow2 disk with a GPT, an EFI system
//! partition holding systemd-boot, the kernels and their initrds, and an ext4 root with a
//! Debian userland (systemd, openssh-server, DHCP on the wired NIC, an SSH key for root). It
//! boots under UEFI firmware (OVMF) through its own boot loader. Built without loop devices or
//! mounts, so it works where those are missing; it needs root for `mmdebstrap --mode=root`.
//!
//! ```text
//!   DiskSpec ─► kernels resolved (apt) + host apt sources ─► cache key ── hit ──► DiskImage
//!                                                               │ miss
//!   mmdebstrap ─► root tree ─► configure: root's key, hostname, networkd, masks, fstab
//!                    ├─ mke2fs -d ───────────────────────────► rootfs.img ─┐
//!                    └─ mkfs.vfat + mtools: BOOTX64.EFI,                   ├─► disk.raw (sfdisk GPT,
//!                       kernels, initrds, entries ───────────► esp.img ────┘   copied in by Rust)
//!   <cache>/disk-<hash>/{disk.qcow2, key, key.pub, manifest.json} ◄── qemu-img convert, rename
//! ```
//!
//! An image is built in a temporary directory beside the cache entry and renamed into place
//! with its manifest written last, so concurrent or interrupted builds never leave a half image
//! behind a cache name. [`DiskImage::overlay`] gives a domain its own qcow2 on top of a cached
//! image, booting any of its kernels by default, without rebuilding or mounting anything.

mod build;
mod layout;
mod sources;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::apt;
use crate::error::GuestError;
use crate::kernel::{release_of_package, KernelChoice};
pub use layout::PartUuid;
use layout::{KeyInputs, LOADER_CONF_LEN};

/// The qcow2 disk in an image's cache directory.
const DISK_FILE: &str = "disk.qcow2";
/// The private SSH key that logs in as root (`key.pub` beside it).
const KEY_FILE: &str = "key";
/// What the image holds; written last, so its presence means the image is complete.
const MANIFEST_FILE: &str = "manifest.json";
/// The manifest format this build writes and reads.
const MANIFEST_FORMAT: u32 = 1;

/// What a disk image holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// The Debian suite (`bookworm`).
    pub suite: String,
    /// The kernels installed; the first boots by default. Each gets a boot loader entry.
    pub kernels: Vec<KernelChoice>,
    /// Packages installed besides the base system (systemd, udev, kmod, openssh-server,
    /// initramfs-tools, iproute2, procps, systemd-boot-efi).
    pub extra_packages: Vec<String>,
    /// Size of the root filesystem in MiB.
    pub root_size_mib: u64,
    /// The guest's host name.
    pub hostname: String,
}

impl Default for DiskSpec {
    /// Debian 12 with its cloud kernel, a 1200 MiB root, host name `palisade-guest`.
    fn default() -> Self {
        DiskSpec {
            suite: "bookworm".to_string(),
            kernels: vec![KernelChoice::default()],
            extra_packages: Vec::new(),
            root_size_mib: 1200,
            hostname: "palisade-guest".to_string(),
        }
    }
}

impl DiskSpec {
    fn validate(&self) -> Result<(), DiskError> {
        let invalid = |what: String| Err(DiskError::InvalidSpec(what));
        if self.kernels.is_empty() {
            return invalid("no kernel given".into());
        }
        if self.suite.is_empty() || !self.suite.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return invalid(format!("`{}` is not a Debian suite name", self.suite));
        }
        if !layout::valid_hostname(&self.hostname) {
            return invalid(format!("`{}` is not a host name (letters, digits, inner `-`, 1-63)", self.hostname));
        }
        if self.root_size_mib < MIN_ROOT_MIB {
            return invalid(format!("a {} MiB root is too small (at least {MIN_ROOT_MIB})", self.root_size_mib));
        }
        let bad_package = self.extra_packages.iter().find(|p| {
            p.is_empty() || p.starts_with('-') || !p.chars().all(|c| c.is_ascii_alphanumeric() || ".+-:=~".contains(c))
        });
        if let Some(package) = bad_package {
            return invalid(format!("`{package}` is not a package name"));
        }
        Ok(())
    }
}

/// A root smaller than this cannot hold the base system and a kernel.
const MIN_ROOT_MIB: u64 = 512;

/// A built disk image in the cache. Do not remove its directory while overlays use it as their
/// backing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskImage {
    /// The image's cache directory (`<cache>/disk-<hash>`).
    pub dir: PathBuf,
    /// The qcow2 disk: boot it read-only or through an overlay ([`DiskImage::overlay`]).
    pub path: PathBuf,
    /// The private key that logs in as root over SSH (no password is set).
    pub ssh_key: PathBuf,
    /// Its public half, the guest's `/root/.ssh/authorized_keys`.
    pub ssh_public_key: PathBuf,
    /// The kernel packages installed, the default first.
    pub kernel_packages: Vec<String>,
    /// The kernel releases (`uname -r`) that have a boot loader entry, sorted.
    pub kernels: Vec<String>,
    /// The release booted by default: the first kernel of the spec.
    pub default_release: String,
    /// The root partition's GPT UUID (`root=PARTUUID=...`).
    pub root_partuuid: PartUuid,
    /// Where systemd-boot's `loader.conf` lies in the disk, in bytes.
    loader_conf_offset: u64,
}

/// What is recorded beside a built image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    suite: String,
    kernel_packages: Vec<String>,
    extra_packages: Vec<String>,
    sources: Vec<String>,
    hostname: String,
    kernels: Vec<String>,
    default_release: String,
    root_partuuid: PartUuid,
    esp_mib: u64,
    root_mib: u64,
    loader_conf_offset: u64,
    build_seconds: u64,
}

/// Why a disk image could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The spec cannot describe an image; nothing was built.
    #[error("invalid disk spec: {0}")]
    InvalidSpec(String),

    /// Building needs root (`mmdebstrap --mode=root`, `chroot`).
    #[error("building a disk image needs root (mmdebstrap --mode=root, chroot); this process has uid {uid}")]
    NotRoot {
        /// The effective uid of this process.
        uid: u32,
    },

    /// Host tools the build runs are not installed.
    #[error("tools needed to build disk images are missing: {}; install them (scripts/setup.sh)", .missing.join(", "))]
    MissingTools {
        /// Each as `tool (package)`.
        missing: Vec<String>,
    },

    /// The bootstrapped tree has no kernel with an initrd.
    #[error("no kernel in the image: no vmlinuz-RELEASE with an initrd.img-RELEASE in `{boot}`")]
    NoKernel {
        /// The tree's `/boot`.
        boot: PathBuf,
    },

    /// A kernel release that the image has no boot entry for.
    #[error("the kernel release `{release}` is not in the image (it has: {})", .available.join(", "))]
    ReleaseNotInImage {
        /// The release asked for.
        release: String,
        /// The releases the image has.
        available: Vec<String>,
    },

    /// `loader.conf` could not be located in the ESP image as one aligned copy.
    #[error("loader.conf occurs {found} times at sector boundaries in `{esp}`, not once")]
    LoaderConfNotFound {
        /// The ESP image.
        esp: PathBuf,
        /// How many copies were found.
        found: usize,
    },

    /// An image does not hold the `loader.conf` its manifest records.
    #[error("`{image}` does not hold the loader.conf its manifest records at byte {offset} (remove its directory to rebuild)")]
    LoaderConfMismatch {
        /// The qcow2 image read.
        image: PathBuf,
        /// Where the file was expected.
        offset: u64,
    },

    /// A partition image is larger than its partition.
    #[error("`{image}` ({size} bytes) does not fit its partition ({capacity} bytes)")]
    PartitionOverflow {
        /// The partition image.
        image: PathBuf,
        /// Its size.
        size: u64,
        /// The partition's size.
        capacity: u64,
    },

    /// The manifest of a cached image cannot be read.
    #[error("the disk image manifest `{path}` cannot be read (remove its directory to rebuild)")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What was wrong with it.
        #[source]
        source: serde_json::Error,
    },

    /// A cached image was written by a build with another manifest format.
    #[error("the disk image manifest `{path}` has format {found}, this build reads {MANIFEST_FORMAT} (remove its directory to rebuild)")]
    ManifestFormat {
        /// The manifest.
        path: PathBuf,
        /// Its format.
        found: u32,
    },

    /// An overlay's destination exists; overlays never replace a file.
    #[error("`{0}` already exists; an overlay is never written over a file")]
    OverlayExists(PathBuf),
}

impl DiskImage {
    /// The image `spec` describes, from `cache_dir` if built before, otherwise built there
    /// (about a minute: mmdebstrap downloads and installs the packages). The cache entry is
    /// named by a hash of the spec with its kernels resolved to packages and the apt sources
    /// used, so a newer kernel in apt's lists makes a new image.
    pub fn build(spec: &DiskSpec, cache_dir: &Path) -> Result<DiskImage, GuestError> {
        spec.validate()?;
        let mut kernel_packages: Vec<String> = Vec::new();
        for choice in &spec.kernels {
            let package = choice.resolve()?;
            if kernel_packages.contains(&package) {
                return Err(DiskError::InvalidSpec(format!("the kernel {package} is given twice ({choice})")).into());
            }
            kernel_packages.push(package);
        }
        let (sources, origin) = sources::mirror_lines(&spec.suite)?;
        let key = layout::cache_key(&KeyInputs {
            suite: &spec.suite,
            kernel_packages: &kernel_packages,
            extra_packages: &spec.extra_packages,
            root_mib: spec.root_size_mib,
            hostname: &spec.hostname,
            sources: &sources,
        });
        let dest = cache_dir.join(&key);
        if dest.join(MANIFEST_FILE).is_file() {
            let image = DiskImage::open(&dest)?;
            tracing::info!(image = %image.path.display(), default = image.default_release, "disk image already built");
            return Ok(image);
        }
        build::preflight()?;
        tracing::info!(key, kernels = ?kernel_packages, sources = ?sources, from = ?origin, "building disk image");
        std::fs::create_dir_all(cache_dir).map_err(|e| GuestError::io("create the cache directory", cache_dir, e))?;
        let work = tempfile::Builder::new()
            .prefix(&format!(".{key}-"))
            .tempdir_in(cache_dir)
            .map_err(|e| GuestError::io("create a temporary directory in", cache_dir, e))?;
        let out = work.path().join("image");
        std::fs::create_dir(&out).map_err(|e| GuestError::io("create", &out, e))?;
        let started = Instant::now();
        let plan = build::Plan { spec, kernel_packages: &kernel_packages, sources: &sources };
        let mut manifest = build::build(&plan, work.path(), &out)?;
        manifest.build_seconds = started.elapsed().as_secs();
        let manifest_path = out.join(MANIFEST_FILE);
        let text = serde_json::to_string_pretty(&manifest)
            .map_err(|source| DiskError::Manifest { path: manifest_path.clone(), source })?;
        std::fs::write(&manifest_path, text + "\n").map_err(|e| GuestError::io("write", &manifest_path, e))?;
        match std::fs::rename(&out, &dest) {
            Ok(()) => {}
            // Another build of the same spec finished first; its image is as good as ours.
            Err(_) if dest.join(MANIFEST_FILE).is_file() => {}
            Err(e) => return Err(GuestError::io("move the built image to", &dest, e)),
        }
        let image = DiskImage::open(&dest)?;
        tracing::info!(image = %image.path.display(), elapsed = ?started.elapsed(), "disk image built");
        Ok(image)
    }

    /// The image built earlier in `dir` (a directory [`DiskImage::build`] made).
    pub fn open(dir: &Path) -> Result<DiskImage, GuestError> {
        let dir = dir.canonicalize().map_err(|e| GuestError::io("resolve", dir, e))?;
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| GuestError::io("read", &path, e))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|source| DiskError::Manifest { path: path.clone(), source })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(DiskError::ManifestFormat { path, found: manifest.format }.into());
        }
        let file = |name: &str, what: &'static str| {
            let file = dir.join(name);
            if file.is_file() {
                Ok(file)
            } else {
                Err(GuestError::MissingFile { what, path: file })
            }
        };
        Ok(DiskImage {
            path: file(DISK_FILE, "the disk image")?,
            ssh_key: file(KEY_FILE, "the image's SSH key")?,
            ssh_public_key: file(&format!("{KEY_FILE}.pub"), "the image's public SSH key")?,
            kernel_packages: manifest.kernel_packages,
            kernels: manifest.kernels,
            default_release: manifest.default_release,
            root_partuuid: manifest.root_partuuid,
            loader_conf_offset: manifest.loader_conf_offset,
            dir,
        })
    }

    /// Creates `dest`, a qcow2 overlay backed by this image (which must stay), whose boot loader
    /// boots `release` by default. The overlay's `loader.conf` is rewritten in place (same
    /// length, same cluster) with `qemu-io`, so nothing is mounted and the FAT is untouched;
    /// the base image is checked before and the overlay read back after. On failure `dest` is
    /// removed.
    pub fn overlay(&self, dest: &Path, release: &str) -> Result<(), GuestError> {
        if !self.kernels.iter().any(|k| k == release) {
            return Err(
                DiskError::ReleaseNotInImage { release: release.into(), available: self.kernels.clone() }.into()
            );
        }
        let wanted = layout::loader_conf(release)?;
        if dest.symlink_metadata().is_ok() {
            return Err(DiskError::OverlayExists(dest.to_path_buf()).into());
        }
        let dest = std::path::absolute(dest).map_err(|e| GuestError::io("resolve", dest, e))?;
        let scratch = tempfile::tempdir()
            .map_err(|e| GuestError::io("create a temporary directory in", std::env::temp_dir(), e))?;
        if self.read_loader_conf(&self.path, scratch.path(), "base")? != layout::loader_conf(&self.default_release)? {
            return Err(
                DiskError::LoaderConfMismatch { image: self.path.clone(), offset: self.loader_conf_offset }.into()
            );
        }
        let (base, dest_str) = (self.path.to_string_lossy(), dest.to_string_lossy());
        apt::run(&["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", &base, &dest_str], None)?;
        let rewrite = || -> Result<(), GuestError> {
            let conf = scratch.path().join("loader.conf");
            std::fs::write(&conf, &wanted).map_err(|e| GuestError::io("write", &conf, e))?;
            // qemu-io splits its command at spaces: the pattern file is named relative to its
            // working directory.
            let write = format!("write -q -s loader.conf {} {LOADER_CONF_LEN}", self.loader_conf_offset);
            apt::run(&["qemu-io", "-f", "qcow2", "-c", &write, &dest_str], Some(scratch.path()))?;
            if self.read_loader_conf(&dest, scratch.path(), "overlay")? != wanted {
                return Err(
                    DiskError::LoaderConfMismatch { image: dest.clone(), offset: self.loader_conf_offset }.into()
                );
            }
            Ok(())
        };
        if let Err(e) = rewrite() {
            let _ = std::fs::remove_file(&dest);
            return Err(e);
        }
        tracing::info!(overlay = %dest.display(), base = %self.path.display(), release, "disk overlay created");
        Ok(())
    }

    /// The bytes where `loader.conf` lies in the qcow2 `image`, read with `qemu-img dd` into
    /// `scratch/<tag>.raw`.
    fn read_loader_conf(&self, image: &Path, scratch: &Path, tag: &str) -> Result<Vec<u8>, GuestError> {
        const BLOCK: u64 = 512;
        let out = scratch.join(format!("{tag}.raw"));
        let (input, output) = (format!("if={}", image.display()), format!("of={}", out.display()));
        let skip = self.loader_conf_offset / BLOCK;
        // QEMU 7.2's `qemu-img dd` counts the skipped blocks in `count` (it copies up to block
        // `count`, not `count` blocks after `skip`). Counting them gives the bytes wanted first
        // under either reading; only the first ones are kept.
        let count = format!("count={}", skip + (LOADER_CONF_LEN as u64).div_ceil(BLOCK));
        let skip = format!("skip={skip}");
        apt::run(&["qemu-img", "dd", "-f", "qcow2", "-O", "raw", "bs=512", &skip, &count, &input, &output], None)?;
        let mut bytes = std::fs::read(&out).map_err(|e| GuestError::io("read", &out, e))?;
        bytes.truncate(LOADER_CONF_LEN);
        Ok(bytes)
    }
}

/// The releases of `kernel_packages`, in order (the first is the default).
fn releases_of(kernel_packages: &[String]) -> Result<Vec<String>, DiskError> {
    kernel_packages
        .iter()
        .map(|p| {
            release_of_package(p)
                .map(str::to_string)
                .ok_or_else(|| DiskError::InvalidSpec(format!("`{p}` is not a linux-image-* package")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_that_cannot_make_an_image_are_refused_before_anything_runs() {
        let ok = DiskSpec::default();
        assert!(ok.validate().is_ok());
        let cases = [
            (DiskSpec { kernels: vec![], ..ok.clone() }, "no kernel"),
            (DiskSpec { hostname: "a_b".into(), ..ok.clone() }, "host name"),
            (DiskSpec { root_size_mib: 100, ..ok.clone() }, "too small"),
            (DiskSpec { suite: "book worm".into(), ..ok.clone() }, "suite"),
            (DiskSpec { extra_packages: vec!["--force".into()], ..ok.clone() }, "package name"),
            (DiskSpec { extra_packages: vec!["a,b".into()], ..ok.clone() }, "package name"),
        ];
        for (spec, words) in cases {
            let err = spec.validate().unwrap_err();
            assert!(matches!(err, DiskError::InvalidSpec(_)) && err.to_string().contains(words), "{err}");
        }
    }

    #[test]
    fn kernel_packages_name_their_releases_in_order() {
        let packages =
            vec!["linux-image-6.12.118+deb12-cloud-amd64-unsigned".to_string(), "linux-image-6.1.0-57-amd64".into()];
        assert_eq!(releases_of(&packages).unwrap(), ["6.12.118+deb12-cloud-amd64", "6.1.0-57-amd64"]);
        assert!(releases_of(&["busybox".to_string()]).is_err());
    }

    #[test]
    fn a_cached_image_is_opened_from_its_manifest_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            suite: "bookworm".into(),
            kernel_packages: vec!["linux-image-6.1.0-57-cloud-amd64".into()],
            extra_packages: vec![],
            sources: vec!["deb http://deb.debian.org/debian bookworm main".into()],
            hostname: "h".into(),
            kernels: vec!["6.1.0-57-cloud-amd64".into()],
            default_release: "6.1.0-57-cloud-amd64".into(),
            root_partuuid: PartUuid::parse("0b5f1a3e-2c4d-4e6f-8a9b-0c1d2e3f4a5b").unwrap(),
            esp_mib: 64,
            root_mib: 1200,
            loader_conf_offset: 1 << 20,
            build_seconds: 60,
        };
        std::fs::write(dir.path().join(MANIFEST_FILE), serde_json::to_string(&manifest).unwrap()).unwrap();
        let missing = DiskImage::open(dir.path()).unwrap_err();
        assert!(matches!(missing, GuestError::MissingFile { .. }), "{missing:?}");
        for file in [DISK_FILE, KEY_FILE, "key.pub"] {
            std::fs::write(dir.path().join(file), "").unwrap();
        }

        let image = DiskImage::open(dir.path()).unwrap();

        assert_eq!(image.path, dir.path().canonicalize().unwrap().join(DISK_FILE));
        assert_eq!((image.default_release.as_str(), image.loader_conf_offset), ("6.1.0-57-cloud-amd64", 1 << 20));
        let err = image.overlay(&dir.path().join("o.qcow2"), "6.12.118+deb12-amd64").unwrap_err();
        assert!(err.to_string().contains("6.1.0-57-cloud-amd64"), "{err}");
        assert!(!dir.path().join("o.qcow2").exists());
        let err = image.overlay(&dir.path().join(KEY_FILE), "6.1.0-57-cloud-amd64").unwrap_err();
        assert!(matches!(err, GuestError::Disk(DiskError::OverlayExists(_))), "{err:?}");

        let text = serde_json::to_string(&manifest).unwrap();
        assert!(text.contains(r#""root_partuuid":"0b5f1a3e-2c4d-4e6f-8a9b-0c1d2e3f4a5b""#), "{text}");
        let bad_uuid = text.replace("0b5f1a3e-2c4d", "0b5f1a3e-2c4");
        std::fs::write(dir.path().join(MANIFEST_FILE), bad_uuid).unwrap();
        let err = DiskImage::open(dir.path()).unwrap_err();
        assert!(matches!(err, GuestError::Disk(DiskError::Manifest { .. })), "{err:?}");
        let newer = Manifest { format: MANIFEST_FORMAT + 1, ..manifest };
        std::fs::write(dir.path().join(MANIFEST_FILE), serde_json::to_string(&newer).unwrap()).unwrap();
        let err = DiskImage::open(dir.path()).unwrap_err();
        assert!(matches!(err, GuestError::Disk(DiskError::ManifestFormat { found: 2, .. })), "{err:?}");
        std::fs::write(dir.path().join(MANIFEST_FILE), "{").unwrap();
        let err = DiskImage::open(dir.path()).unwrap_err();
        assert!(matches!(err, GuestError::Disk(DiskError::Manifest { .. })), "{err:?}");
    }
}
