//! The guest kernel: a Debian kernel package (by default the cloud kernel), fetched with apt and
//! unpacked into a cache (never installed on the host), and the kernel modules it ships, plain
//! or xz-compressed.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::apt;
use crate::error::GuestError;
use palisade_elf::{ElfError, Image};

/// The Debian metapackage that names the current cloud kernel.
pub const CLOUD_KERNEL_METAPACKAGE: &str = "linux-image-cloud-amd64";

/// Where fetched packages are kept unless the caller says otherwise.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/palisade/guest";

/// An unpacked kernel package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelImage {
    /// The package the metapackage resolved to, e.g. `linux-image-6.1.0-56-cloud-amd64`.
    pub package: String,
    /// The kernel release (`uname -r` in the guest), e.g. `6.1.0-56-cloud-amd64`.
    pub release: String,
    /// The compressed kernel to boot.
    pub vmlinuz: PathBuf,
    /// `System.map`, only if the package ships a real one (Debian ships a stub pointing at the
    /// `-dbg` package, reported as `None`). For tests only: introspection must never use it.
    pub system_map: Option<PathBuf>,
    /// The kernel's build configuration.
    pub config: PathBuf,
    /// `lib/modules/<release>`.
    pub modules_dir: PathBuf,
}

/// A Debian kernel flavour for amd64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flavour {
    /// `amd64`: the generic kernel.
    Generic,
    /// `cloud-amd64`: the kernel for cloud VMs (fewer drivers).
    Cloud,
    /// `rt-amd64`: the real-time (`PREEMPT_RT`) kernel.
    Rt,
}

impl Flavour {
    /// Every flavour, in the order tables list them.
    pub const ALL: [Flavour; 3] = [Flavour::Generic, Flavour::Cloud, Flavour::Rt];

    /// Debian's name, the end of its package names (`amd64`, `cloud-amd64`, `rt-amd64`).
    pub fn debian_name(self) -> &'static str {
        match self {
            Flavour::Generic => "amd64",
            Flavour::Cloud => "cloud-amd64",
            Flavour::Rt => "rt-amd64",
        }
    }
}

/// Which kernel a guest boots. Written `[SERIES-]FLAVOUR` (`cloud-amd64`, `6.12-amd64`,
/// `6.1-rt-amd64`) or as a package name (`linux-image-6.1.0-55-cloud-amd64`); without a series
/// it is the kernel the distribution's metapackage (`linux-image-cloud-amd64`) stands for, with
/// one the newest package of that series apt knows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KernelChoice {
    /// The newest kernel of a flavour.
    Flavour {
        /// `6.12`, or `None` for the distribution's default series.
        series: Option<String>,
        /// The flavour.
        flavour: Flavour,
    },
    /// A `linux-image-*` package by name.
    Package(String),
}

impl Default for KernelChoice {
    /// Debian's cloud kernel, the default series.
    fn default() -> Self {
        KernelChoice::Flavour { series: None, flavour: Flavour::Cloud }
    }
}

impl fmt::Display for KernelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelChoice::Flavour { series: Some(series), flavour } => write!(f, "{series}-{}", flavour.debian_name()),
            KernelChoice::Flavour { series: None, flavour } => f.write_str(flavour.debian_name()),
            KernelChoice::Package(package) => f.write_str(package),
        }
    }
}

/// A kernel choice that is not written as `[SERIES-]FLAVOUR` or `linux-image-*`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a kernel: write [SERIES-]FLAVOUR with FLAVOUR one of amd64, cloud-amd64, rt-amd64 and SERIES \
     like 6.12 (e.g. cloud-amd64, 6.12-amd64), or a package name linux-image-*"
)]
pub struct KernelChoiceError(pub String);

impl FromStr for KernelChoice {
    type Err = KernelChoiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || KernelChoiceError(s.to_string());
        if let Some(rest) = s.strip_prefix("linux-image-") {
            let valid = !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || ".+-~".contains(c));
            return if valid { Ok(KernelChoice::Package(s.to_string())) } else { Err(bad()) };
        }
        // The longest flavour name that ends the text wins (`cloud-amd64` before `amd64`).
        let mut flavours = Flavour::ALL;
        flavours.sort_by_key(|f| std::cmp::Reverse(f.debian_name().len()));
        for flavour in flavours {
            let Some(head) = s.strip_suffix(flavour.debian_name()) else { continue };
            if head.is_empty() {
                return Ok(KernelChoice::Flavour { series: None, flavour });
            }
            let series = head.strip_suffix('-').ok_or_else(bad)?;
            let mut parts = series.split('.');
            let numeric = |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
            if numeric(parts.next()) && numeric(parts.next()) && parts.next().is_none() {
                return Ok(KernelChoice::Flavour { series: Some(series.to_string()), flavour });
            }
            return Err(bad());
        }
        Err(bad())
    }
}

impl KernelChoice {
    /// The kernel package this choice stands for now, as apt's package lists say.
    pub fn resolve(&self) -> Result<String, GuestError> {
        match self {
            KernelChoice::Package(package) => Ok(package.clone()),
            KernelChoice::Flavour { series: None, flavour } => {
                apt::resolve_dependency(&format!("linux-image-{}", flavour.debian_name()), "linux-image-")
            }
            KernelChoice::Flavour { series: Some(series), flavour } => {
                let prefix = format!("linux-image-{series}.");
                let names = apt::package_names(&prefix)?;
                newest_of_series(&names, series, *flavour).ok_or_else(|| GuestError::AptResolve {
                    package: format!("{prefix}*-{}", flavour.debian_name()),
                    detail: format!(
                        "apt knows no {} kernel of series {series} ({} package names start with `{prefix}`; \
                         stale package lists? try `apt-get update`)",
                        flavour.debian_name(),
                        names.len()
                    ),
                })
            }
        }
    }
}

/// The newest kernel package of `series` and `flavour` among `names` (`apt-cache pkgnames`
/// output): `linux-image-VERSION-FLAVOUR` or `...-unsigned` where VERSION is made of digits,
/// dots, `-`, `+` and `deb` (so `6.12.113+deb12-cloud-amd64` is not a generic `amd64` kernel).
/// Between a signed and an unsigned package of one version the signed one (shorter name) wins;
/// both hold the same kernel.
fn newest_of_series(names: &[String], series: &str, flavour: Flavour) -> Option<String> {
    let suffix = format!("-{}", flavour.debian_name());
    names
        .iter()
        .filter_map(|name| {
            let version = name.strip_prefix("linux-image-")?;
            let version = version.strip_suffix("-unsigned").unwrap_or(version).strip_suffix(&suffix)?;
            let plain = version.replace("deb", "");
            let ok = version.strip_prefix(series)?.starts_with('.')
                && plain.chars().all(|c| c.is_ascii_digit() || ".-+".contains(c));
            ok.then(|| (version_key(version), std::cmp::Reverse(name.len()), name))
        })
        .max()
        .map(|(_, _, name)| name.clone())
}

/// The kernel release (`uname -r`) a `linux-image-*` package installs: `linux-image-RELEASE`
/// or `linux-image-RELEASE-unsigned` (the same kernel, not signed for Secure Boot).
pub(crate) fn release_of_package(package: &str) -> Option<&str> {
    let release = package.strip_prefix("linux-image-")?;
    let release = release.strip_suffix("-unsigned").unwrap_or(release);
    (!release.is_empty()).then_some(release)
}

/// `6.12.113+deb12` -> [6, 12, 113, 12]: the numbers of a kernel version, for ordering.
fn version_key(version: &str) -> Vec<u64> {
    version.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).filter_map(|p| p.parse().ok()).collect()
}

impl KernelImage {
    /// Resolves [`CLOUD_KERNEL_METAPACKAGE`] to its kernel package, downloads and unpacks it into
    /// `cache_dir` unless already there, and locates its files.
    pub fn fetch_cloud(cache_dir: &Path) -> Result<KernelImage, GuestError> {
        Self::fetch(&KernelChoice::default(), cache_dir)
    }

    /// Like [`KernelImage::fetch_cloud`] for any kernel.
    pub fn fetch(choice: &KernelChoice, cache_dir: &Path) -> Result<KernelImage, GuestError> {
        Self::fetch_package(&choice.resolve()?, cache_dir)
    }

    /// Like [`KernelImage::fetch_cloud`] for a named kernel package (signed or `-unsigned`).
    pub fn fetch_package(package: &str, cache_dir: &Path) -> Result<KernelImage, GuestError> {
        let release = release_of_package(package).ok_or_else(|| GuestError::AptResolve {
            package: package.to_string(),
            detail: "not a linux-image-* package".into(),
        })?;
        let root = apt::fetch_unpacked(package, cache_dir)?;
        Self::locate(package, release, &root)
    }

    fn locate(package: &str, release: &str, root: &Path) -> Result<KernelImage, GuestError> {
        let existing = |what, path: PathBuf| {
            if path.exists() {
                Ok(path)
            } else {
                Err(GuestError::MissingFile { what, path })
            }
        };
        let boot = root.join("boot");
        let system_map = boot.join(format!("System.map-{release}"));
        let system_map = std::fs::read_to_string(&system_map)
            .ok()
            .filter(|text| text.lines().any(|l| l.ends_with(" _text")))
            .map(|_| system_map);
        Ok(KernelImage {
            package: package.to_string(),
            release: release.to_string(),
            vmlinuz: existing("vmlinuz", boot.join(format!("vmlinuz-{release}")))?,
            system_map,
            config: existing("kernel config", boot.join(format!("config-{release}")))?,
            modules_dir: existing("modules directory", root.join("lib/modules").join(release))?,
        })
    }

    /// How the kernel was built with `option` (e.g. `CONFIG_VIRTIO_NET`): `y`, `m`, a value, or
    /// `None` when it is not set.
    pub fn config_value(&self, option: &str) -> Result<Option<String>, GuestError> {
        let text = std::fs::read_to_string(&self.config).map_err(|e| GuestError::io("read", &self.config, e))?;
        Ok(text.lines().find_map(|l| l.strip_prefix(option)?.strip_prefix('=').map(str::to_string)))
    }

    /// Kernel command-line words this kernel needs in Palisade's boot form (busybox init, serial
    /// consoles). A `PREEMPT_RT` kernel gets `noirqdebug`: its serial interrupts are threaded,
    /// and during the kallsyms dump over the second serial port (megabytes of output) the
    /// threaded 8250 handler finds the interrupt already served so often that the kernel's
    /// spurious-interrupt check disables IRQ 3 ("irq 3: nobody cared"), and the dump stops.
    pub fn boot_cmdline(&self) -> Result<Vec<String>, GuestError> {
        let rt = self.config_value("CONFIG_PREEMPT_RT")?.as_deref() == Some("y");
        Ok(if rt { vec!["noirqdebug".to_string()] } else { Vec::new() })
    }

    /// The module files needed to load `modules`, dependencies first. Modules built into the
    /// kernel (`modules.builtin`) need no file and are left out; a module that is neither built
    /// in nor present is an error.
    pub fn module_closure(&self, modules: &[&str]) -> Result<Vec<ModuleFile>, GuestError> {
        let builtin_path = self.modules_dir.join("modules.builtin");
        let builtin = std::fs::read_to_string(&builtin_path).map_err(|e| GuestError::io("read", &builtin_path, e))?;
        let builtin: HashSet<String> = builtin.lines().filter_map(module_name_of_path).map(|(name, _)| name).collect();
        let files = self.module_files()?;
        let mut ordered = Vec::new();
        let mut seen = HashSet::new();
        for module in modules {
            self.visit(&normalise(module), &builtin, &files, &mut seen, &mut ordered)?;
        }
        Ok(ordered)
    }

    fn visit(
        &self,
        module: &str,
        builtin: &HashSet<String>,
        files: &BTreeMap<String, PathBuf>,
        seen: &mut HashSet<String>,
        ordered: &mut Vec<ModuleFile>,
    ) -> Result<(), GuestError> {
        if builtin.contains(module) || !seen.insert(module.to_string()) {
            return Ok(());
        }
        let path = files.get(module).ok_or_else(|| GuestError::ModuleNotFound {
            module: module.to_string(),
            modules_dir: self.modules_dir.clone(),
        })?;
        let file = ModuleFile { name: module.to_string(), path: path.clone() };
        let bytes = file.read()?;
        let info = modinfo(&bytes).map_err(|source| GuestError::Elf { path: path.clone(), source })?;
        let depends = info.iter().filter(|(k, _)| k == "depends").flat_map(|(_, v)| v.split(','));
        for dep in depends.filter(|d| !d.is_empty()).map(normalise).collect::<Vec<_>>() {
            self.visit(&dep, builtin, files, seen, ordered)?;
        }
        ordered.push(file);
        Ok(())
    }

    /// Every module file (`.ko`, `.ko.xz`, ...) under the modules directory, by normalised
    /// module name.
    fn module_files(&self) -> Result<BTreeMap<String, PathBuf>, GuestError> {
        let mut found = BTreeMap::new();
        let mut stack = vec![self.modules_dir.join("kernel")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| GuestError::io("list", &dir, e))? {
                let path = entry.map_err(|e| GuestError::io("list", &dir, e))?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Some((name, _)) = path.to_str().and_then(module_name_of_path) {
                    found.insert(name, path);
                }
            }
        }
        Ok(found)
    }
}

/// A kernel module file to put into the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// Normalised module name (`-` written as `_`).
    pub name: String,
    /// The module file as the package ships it (`.ko`, or compressed as `.ko.xz`).
    pub path: PathBuf,
}

impl ModuleFile {
    /// The module's ELF bytes, decompressed if the package ships it compressed (busybox insmod
    /// loads only plain `.ko` files, so the initramfs carries these).
    pub fn read(&self) -> Result<Vec<u8>, GuestError> {
        let path = &self.path;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match module_name_of_path(&name).map(|(_, compression)| compression) {
            Some(Compression::None) | None => std::fs::read(path).map_err(|e| GuestError::io("read", path, e)),
            Some(Compression::Xz) => {
                let file = std::fs::File::open(path).map_err(|e| GuestError::io("read", path, e))?;
                let mut out = Vec::new();
                lzma_rs::xz_decompress(&mut BufReader::new(file), &mut out).map_err(|e| {
                    GuestError::ModuleCompression { path: path.clone(), detail: format!("not valid xz data: {e}") }
                })?;
                Ok(out)
            }
            Some(other) => Err(GuestError::ModuleCompression {
                path: path.clone(),
                detail: format!("compressed with {other:?}, which palisade-guest cannot unpack (plain and .xz only)"),
            }),
        }
    }
}

/// How a module file is compressed (by its name, as `CONFIG_MODULE_COMPRESS_*` names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Xz,
    Gzip,
    Zstd,
}

/// `kernel/drivers/net/virtio_net.ko` -> `virtio_net`, `.../virtio_net.ko.xz` -> `virtio_net`
/// compressed with xz (Debian's 6.12 kernels ship them so).
fn module_name_of_path(path: &str) -> Option<(String, Compression)> {
    let file = path.rsplit('/').next()?;
    let (stem, compression) = [(".ko", Compression::None), (".ko.xz", Compression::Xz), (".ko.gz", Compression::Gzip)]
        .into_iter()
        .chain([(".ko.zst", Compression::Zstd)])
        .find_map(|(ext, c)| file.strip_suffix(ext).map(|stem| (stem, c)))?;
    Some((normalise(stem), compression))
}

fn normalise(name: &str) -> String {
    name.trim().replace('-', "_")
}

/// The `key=value` strings of a kernel module's `.modinfo` section.
pub fn modinfo(module: &[u8]) -> Result<Vec<(String, String)>, ElfError> {
    let section = Image::parse(module)?.section(".modinfo")?;
    Ok(section
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let text = std::str::from_utf8(entry).ok()?;
            let (key, value) = text.split_once('=')?;
            Some((key.to_string(), value.to_string()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(path: &str) -> Option<(String, Compression)> {
        module_name_of_path(path)
    }

    #[test]
    fn module_names_come_from_ko_paths_plain_or_compressed() {
        assert_eq!(name("kernel/drivers/net/virtio_net.ko"), Some(("virtio_net".into(), Compression::None)));
        assert_eq!(name("kernel/drivers/char/hw_random/virtio-rng.ko"), Some(("virtio_rng".into(), Compression::None)));
        assert_eq!(name("kernel/fs/foo.ko.xz"), Some(("foo".into(), Compression::Xz)));
        assert_eq!(name("kernel/fs/foo.ko.zst"), Some(("foo".into(), Compression::Zstd)));
        assert_eq!(name("modules.order"), None);
        assert_eq!(name("kernel/fs/foo.kox"), None);
    }

    #[test]
    fn an_xz_module_reads_as_its_elf_bytes_and_a_zstd_one_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let elf = b"\x7fELF not really, but bytes".to_vec();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &elf[..], &mut xz).unwrap();
        let path = dir.path().join("virtio_net.ko.xz");
        std::fs::write(&path, &xz).unwrap();
        assert_eq!(ModuleFile { name: "virtio_net".into(), path }.read().unwrap(), elf);

        let broken = dir.path().join("broken.ko.xz");
        std::fs::write(&broken, b"not xz").unwrap();
        let err = ModuleFile { name: "broken".into(), path: broken }.read().unwrap_err();
        assert!(matches!(err, GuestError::ModuleCompression { .. }), "{err:?}");

        let zst = dir.path().join("foo.ko.zst");
        std::fs::write(&zst, b"whatever").unwrap();
        let err = ModuleFile { name: "foo".into(), path: zst }.read().unwrap_err();
        assert!(err.to_string().contains("foo.ko.zst"), "{err}");
    }

    #[test]
    fn kernel_choices_parse_and_print_back() {
        for text in ["cloud-amd64", "amd64", "rt-amd64", "6.12-amd64", "6.1-cloud-amd64", "6.12-rt-amd64"] {
            let choice: KernelChoice = text.parse().unwrap();
            assert_eq!(choice.to_string(), text);
        }
        assert_eq!(
            "6.12-cloud-amd64".parse::<KernelChoice>().unwrap(),
            KernelChoice::Flavour { series: Some("6.12".into()), flavour: Flavour::Cloud }
        );
        assert_eq!(
            "linux-image-6.1.0-55-amd64".parse::<KernelChoice>().unwrap(),
            KernelChoice::Package("linux-image-6.1.0-55-amd64".into())
        );
        assert_eq!(KernelChoice::default().to_string(), "cloud-amd64");
        for bad in [
            "",
            "cloud",
            "6.12",
            "6.12cloud-amd64",
            "6-amd64",
            "6.12.1-amd64",
            "x.1-amd64",
            "linux-image-",
            "linux-image-a b",
        ] {
            let err = bad.parse::<KernelChoice>().unwrap_err();
            assert!(err.to_string().contains("FLAVOUR"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_newest_package_of_a_series_and_flavour_is_chosen() {
        let names: Vec<String> = [
            "linux-image-6.12.107+deb12-amd64-unsigned",
            "linux-image-6.12.113+deb12-amd64-unsigned",
            "linux-image-6.12.113+deb12-amd64-dbg",
            "linux-image-6.12.113+deb12-cloud-amd64-unsigned",
            "linux-image-6.12.111+deb12-rt-amd64-unsigned",
            "linux-image-6.1.0-9-amd64",
            "linux-image-6.1.0-55-amd64",
            "linux-image-6.1.0-55-amd64-unsigned",
            "linux-image-6.1.0-55-cloud-amd64",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let newest = |series, flavour| newest_of_series(&names, series, flavour);
        assert_eq!(newest("6.12", Flavour::Generic).as_deref(), Some("linux-image-6.12.113+deb12-amd64-unsigned"));
        assert_eq!(newest("6.12", Flavour::Cloud).as_deref(), Some("linux-image-6.12.113+deb12-cloud-amd64-unsigned"));
        assert_eq!(newest("6.12", Flavour::Rt).as_deref(), Some("linux-image-6.12.111+deb12-rt-amd64-unsigned"));
        assert_eq!(newest("6.1", Flavour::Generic).as_deref(), Some("linux-image-6.1.0-55-amd64"));
        assert_eq!(newest("6.1", Flavour::Rt), None);
        assert_eq!(newest("6.2", Flavour::Generic), None);
    }

    #[test]
    fn a_kernel_package_names_its_release_signed_or_not() {
        assert_eq!(release_of_package("linux-image-6.1.0-57-cloud-amd64"), Some("6.1.0-57-cloud-amd64"));
        assert_eq!(release_of_package("linux-image-6.12.118+deb12-amd64-unsigned"), Some("6.12.118+deb12-amd64"));
        assert_eq!(release_of_package("linux-image-"), None);
        assert_eq!(release_of_package("linux-image--unsigned"), None);
        assert_eq!(release_of_package("busybox-static"), None);
    }

    #[test]
    fn a_package_that_is_not_a_kernel_is_refused_before_any_download() {
        let err = KernelImage::fetch_package("busybox-static", Path::new("/nonexistent")).unwrap_err();
        assert!(matches!(err, GuestError::AptResolve { .. }), "{err:?}");
    }
}
