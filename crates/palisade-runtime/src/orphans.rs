//! Which QEMU processes are this controller's, and reaping those a crashed controller left behind.
//!
//! A controller instance has an id, made once and kept in its state directory
//! (`<state>/instance-id`). Every QEMU it starts carries that id on its command line
//! ([`palisade_guest::owner_arg`]), and its pid and guest name are recorded in
//! `<state>/qemu/<pid>`. A process is reaped only when both hold: it is recorded, and
//! `/proc/<pid>/cmdline` is a QEMU that carries this instance's id. So a recycled pid, another
//! controller's guest (another state directory, another bridge) or a guest the user started by
//! hand is never touched.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What [`Owner::reap`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// QEMU processes killed.
    pub processes: Vec<u32>,
    /// RAM files and run directories removed.
    pub files: Vec<PathBuf>,
}

/// A controller instance's claim on the guests it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    dir: PathBuf,
    id: String,
}

impl Owner {
    /// The owner kept in `state_dir`: its id is read, or made and written on first use.
    pub fn open(state_dir: &Path) -> std::io::Result<Owner> {
        std::fs::create_dir_all(state_dir.join("qemu"))?;
        let path = state_dir.join("instance-id");
        let id = match std::fs::read_to_string(&path) {
            Ok(id) if is_id(id.trim()) => id.trim().to_owned(),
            Ok(_) => return Err(std::io::Error::other(format!("{} does not hold an instance id", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 12];
                std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
                let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                std::fs::write(&path, format!("{id}\n"))?;
                id
            }
            Err(e) => return Err(e),
        };
        Ok(Owner { dir: state_dir.to_path_buf(), id })
    }

    /// The instance id written on each owned QEMU's command line.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn record_path(&self, pid: u32) -> PathBuf {
        self.dir.join("qemu").join(pid.to_string())
    }

    /// Records that this instance started guest `name` as QEMU process `pid`.
    pub fn record(&self, pid: u32, name: &str) -> std::io::Result<()> {
        std::fs::write(self.record_path(pid), name)
    }

    /// Forgets process `pid` (it was stopped).
    pub fn forget(&self, pid: u32) {
        let _ = std::fs::remove_file(self.record_path(pid));
    }

    /// The recorded processes: pid and guest name.
    pub fn recorded(&self) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.dir.join("qemu")).into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
            let name = std::fs::read_to_string(entry.path()).unwrap_or_default();
            out.push((pid, name.trim().to_owned()));
        }
        out.sort();
        out
    }

    /// Whether process `pid` is a QEMU carrying this instance's id.
    pub fn owns(&self, pid: u32) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_qemu =
            args.first().and_then(|a| a.rsplit(|b| *b == b'/').next()).is_some_and(|n| n.starts_with(b"qemu-system"));
        let mark = palisade_guest::owner_arg(&self.id);
        is_qemu && args.contains(&mark.as_bytes())
    }

    /// Kills every recorded QEMU that is still this instance's (see the module documentation)
    /// and removes those guests' RAM files and run directories, and those of recorded guests
    /// whose QEMU is gone. Records of live processes that are not this instance's QEMU are
    /// dropped, and nothing of theirs is touched.
    pub fn reap(&self, ram_dir: &Path) -> Reaped {
        let mut reaped = Reaped::default();
        for (pid, name) in self.recorded() {
            let alive = Path::new(&format!("/proc/{pid}")).exists();
            if alive && !self.owns(pid) {
                // The pid was reused, or names someone else's process: not ours to touch.
                self.forget(pid);
                continue;
            }
            if alive {
                tracing::warn!(pid, guest = %name, "killing a guest QEMU left behind by an earlier controller");
                let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
                let gone = Instant::now();
                while Path::new(&format!("/proc/{pid}/cmdline")).exists() && gone.elapsed() < Duration::from_secs(5) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                reaped.processes.push(pid);
            }
            if is_guest_name(&name) {
                remove_guest_files(ram_dir, &name, &mut reaped.files);
            }
            self.forget(pid);
        }
        reaped
    }
}

fn is_id(s: &str) -> bool {
    (8..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A guest name as [`palisade_guest::GuestConfig`] accepts it (so it is safe in a path).
fn is_guest_name(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Removes guest `name`'s RAM file and its run directories under the temp dir.
fn remove_guest_files(ram_dir: &Path, name: &str, removed: &mut Vec<PathBuf>) {
    let ram = ram_dir.join(format!("palisade-{name}.ram"));
    if std::fs::remove_file(&ram).is_ok() {
        removed.push(ram);
    }
    let run_prefix = format!("palisade-guest-{name}-");
    for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        let file_name = entry.file_name();
        // The run directory is `palisade-guest-<name>-<random>`; a longer guest name that
        // merely starts with `name-` has another dash in the random part's place.
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&run_prefix)) else { continue };
        if rest.contains('-') || !entry.path().is_dir() {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => removed.push(entry.path()),
            Err(e) => {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove a stale guest run directory")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = Owner::open(dir.path()).unwrap();
        let b = Owner::open(dir.path()).unwrap();
        assert_eq!(a, b);
        assert!(is_id(a.id()));
        let other = tempfile::tempdir().unwrap();
        assert_ne!(Owner::open(other.path()).unwrap().id(), a.id());
    }

    #[test]
    fn a_recorded_pid_that_is_not_an_owned_qemu_is_forgotten_not_killed() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner::open(dir.path()).unwrap();
        // This test process: recorded, alive, but not a QEMU with the owner's mark.
        owner.record(std::process::id(), "br-alpha-g1").unwrap();
        assert!(!owner.owns(std::process::id()));
        let reaped = owner.reap(dir.path());
        assert!(reaped.processes.is_empty());
        assert!(owner.recorded().is_empty());
    }

    #[test]
    fn a_corrupt_instance_id_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("instance-id"), "not an id").unwrap();
        let err = Owner::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("instance-id"), "{err}");
    }
}
