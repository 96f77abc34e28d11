//! The guest kernel: Debian's cloud kernel, fetched with apt and unpacked into a cache (never
//! installed on the host), and the kernel modules it ships.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

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

impl KernelImage {
    /// Resolves [`CLOUD_KERNEL_METAPACKAGE`] to its kernel package, downloads and unpacks it into
    /// `cache_dir` unless already there, and locates its files.
    pub fn fetch_cloud(cache_dir: &Path) -> Result<KernelImage, GuestError> {
        let package = apt::resolve_dependency(CLOUD_KERNEL_METAPACKAGE, "linux-image-")?;
        Self::fetch_package(&package, cache_dir)
    }

    /// Like [`KernelImage::fetch_cloud`] for a named kernel package.
    pub fn fetch_package(package: &str, cache_dir: &Path) -> Result<KernelImage, GuestError> {
        let release = package.strip_prefix("linux-image-").filter(|r| !r.is_empty()).ok_or_else(|| {
            GuestError::AptResolve { package: package.to_string(), detail: "not a linux-image-* package".into() }
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

    /// The module files needed to load `modules`, dependencies first. Modules built into the
    /// kernel (`modules.builtin`) need no file and are left out; a module that is neither built
    /// in nor present is an error.
    pub fn module_closure(&self, modules: &[&str]) -> Result<Vec<ModuleFile>, GuestError> {
        let builtin_path = self.modules_dir.join("modules.builtin");
        let builtin = std::fs::read_to_string(&builtin_path).map_err(|e| GuestError::io("read", &builtin_path, e))?;
        let builtin: HashSet<String> = builtin.lines().filter_map(module_name_of_path).collect();
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
        let bytes = std::fs::read(path).map_err(|e| GuestError::io("read", path, e))?;
        let info = modinfo(&bytes).map_err(|source| GuestError::Elf { path: path.clone(), source })?;
        let depends = info.iter().filter(|(k, _)| k == "depends").flat_map(|(_, v)| v.split(','));
        for dep in depends.filter(|d| !d.is_empty()).map(normalise).collect::<Vec<_>>() {
            self.visit(&dep, builtin, files, seen, ordered)?;
        }
        ordered.push(ModuleFile { name: module.to_string(), path: path.clone() });
        Ok(())
    }

    /// Every `.ko` file under the modules directory, by normalised module name.
    fn module_files(&self) -> Result<BTreeMap<String, PathBuf>, GuestError> {
        let mut found = BTreeMap::new();
        let mut stack = vec![self.modules_dir.join("kernel")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| GuestError::io("list", &dir, e))? {
                let path = entry.map_err(|e| GuestError::io("list", &dir, e))?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Some(name) = path.to_str().and_then(module_name_of_path) {
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
    /// The `.ko` file.
    pub path: PathBuf,
}

/// `kernel/drivers/net/virtio_net.ko` -> `virtio_net`. Compressed modules (`.ko.xz` etc.) are
/// not recognised: this kernel is built with `CONFIG_MODULE_COMPRESS_NONE`, and busybox insmod
/// could not load them anyway.
fn module_name_of_path(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    file.strip_suffix(".ko").map(normalise)
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

    #[test]
    fn module_names_come_from_ko_paths() {
        assert_eq!(module_name_of_path("kernel/drivers/net/virtio_net.ko").as_deref(), Some("virtio_net"));
        assert_eq!(module_name_of_path("kernel/drivers/char/hw_random/virtio-rng.ko").as_deref(), Some("virtio_rng"));
        assert_eq!(module_name_of_path("kernel/fs/foo.ko.xz"), None);
        assert_eq!(module_name_of_path("modules.order"), None);
    }

    #[test]
    fn a_package_that_is_not_a_kernel_is_refused_before_any_download() {
        let err = KernelImage::fetch_package("busybox-static", Path::new("/nonexistent")).unwrap_err();
        assert!(matches!(err, GuestError::AptResolve { .. }), "{err:?}");
    }
}
