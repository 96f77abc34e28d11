//! Reaping guests a crashed controller left behind.
//!
//! A guest's QEMU is identified by its RAM file, `<ram_dir>/palisade-<prefix>...ram`, on its
//! command line; the prefix carries the bridge name, so controllers (and tests) on other
//! bridges are left alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What [`reap_orphans`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// QEMU processes killed.
    pub processes: Vec<u32>,
    /// RAM files and run directories removed.
    pub files: Vec<PathBuf>,
}

/// Kills every QEMU whose RAM file is `<ram_dir>/palisade-<prefix>*` and removes such RAM files
/// and their run directories under the temp dir.
pub fn reap_orphans(ram_dir: &Path, prefix: &str) -> Reaped {
    let mut reaped = Reaped::default();
    let needle = format!("mem-path={}/palisade-{prefix}", ram_dir.display());
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let is_qemu = args.first().is_some_and(|a| a.rsplit('/').next().is_some_and(|n| n.starts_with("qemu-system")));
        if is_qemu && args.iter().any(|a| a.contains(&needle)) {
            tracing::warn!(pid, "killing a guest QEMU left behind by an earlier controller");
            let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
            let gone = Instant::now();
            while Path::new(&format!("/proc/{pid}/cmdline")).exists() && gone.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            reaped.processes.push(pid);
        }
    }
    let ram_prefix = format!("palisade-{prefix}");
    let run_prefix = format!("palisade-guest-{prefix}");
    for (dir, start) in [(ram_dir.to_path_buf(), ram_prefix.as_str()), (std::env::temp_dir(), run_prefix.as_str())] {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with(start) {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            match removed {
                Ok(()) => reaped.files.push(path),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale guest file"),
            }
        }
    }
    reaped
}
