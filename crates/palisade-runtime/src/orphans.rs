//! Which QEMU processes are this controller's, and reaping those a crashed controller left behind.
//!
//! A controller instance has an id, made once and kept in its state directory
//! (`<state>/instance-id`). Every QEMU it starts carries that id on its command line
//! ([`palisade_guest::owner_arg`]), and each guest is recorded in `<state>/qemu/<name>` before
//! its QEMU starts, with the pid once it runs. A process is reaped only when both hold: it is a
//! recorded guest's QEMU (its pid, or its RAM file), and `/proc/<pid>/cmdline` is a QEMU that
//! carries this instance's id. So a recycled pid, another controller's guest (another state
//! directory, another bridge) or a guest the user started by hand is never touched.

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

    fn record_path(&self, name: &str) -> PathBuf {
        self.dir.join("qemu").join(name)
    }

    /// Records that this instance starts guest `name` (before its QEMU exists, so a crash in
    /// between still leaves a record), and then its QEMU's `pid`.
    pub fn record(&self, name: &str, pid: Option<u32>) -> std::io::Result<()> {
        if !is_guest_name(name) {
            return Err(std::io::Error::other(format!("`{name}` is not a guest name")));
        }
        std::fs::write(self.record_path(name), pid.map(|p| p.to_string()).unwrap_or_default())
    }

    /// Forgets guest `name` (it was stopped).
    pub fn forget(&self, name: &str) {
        let _ = std::fs::remove_file(self.record_path(name));
    }

    /// The recorded guests: name and, once known, QEMU's pid.
    pub fn recorded(&self) -> Vec<(String, Option<u32>)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.dir.join("qemu")).into_iter().flatten().flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            let pid = std::fs::read_to_string(entry.path()).ok().and_then(|p| p.trim().parse().ok());
            out.push((name, pid));
        }
        out.sort();
        out
    }

    /// Whether process `pid` is a QEMU carrying this instance's id.
    pub fn owns(&self, pid: u32) -> bool {
        qemu_cmdline(pid).is_some_and(|args| args.iter().any(|a| *a == palisade_guest::owner_arg(&self.id)))
    }

    /// Kills every QEMU of a recorded guest that carries this instance's id: the recorded pid,
    /// and any process whose RAM file is that guest's (one started just before a crash, whose
    /// pid was never written). Removes the guest's RAM file and run directories unless a
    /// process that is not this instance's still uses them. Records are dropped either way.
    pub fn reap(&self, ram_dir: &Path) -> Reaped {
        let mut reaped = Reaped::default();
        for (name, pid) in self.recorded() {
            if !is_guest_name(&name) {
                self.forget(&name);
                continue;
            }
            let ram = ram_dir.join(format!("palisade-{name}.ram"));
            let users = processes_using(&ram);
            let mut ours: Vec<u32> = users.iter().copied().filter(|p| self.owns(*p)).collect();
            if let Some(pid) = pid.filter(|p| !ours.contains(p) && self.owns(*p)) {
                ours.push(pid);
            }
            for pid in &ours {
                tracing::warn!(pid, guest = %name, "killing a guest QEMU left behind by an earlier controller");
                if let Err(e) = palisade_host::signal::send(*pid, palisade_host::signal::Signal::SIGKILL) {
                    tracing::warn!(pid, guest = %name, error = %palisade_host::chain(&e), "could not kill a left-behind QEMU");
                }
                let gone = Instant::now();
                while Path::new(&format!("/proc/{pid}/cmdline")).exists() && gone.elapsed() < Duration::from_secs(5) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                reaped.processes.push(*pid);
            }
            if users.iter().all(|p| ours.contains(p)) {
                remove_guest_files(&ram, &name, &mut reaped.files);
            }
            self.forget(&name);
        }
        reaped
    }
}

/// The arguments of process `pid` if it is a QEMU.
fn qemu_cmdline(pid: u32) -> Option<Vec<String>> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let is_qemu = args.first().and_then(|a| a.rsplit('/').next()).is_some_and(|n| n.starts_with("qemu-system"));
    is_qemu.then_some(args)
}

/// The QEMU processes whose memory backend is the file `ram`.
fn processes_using(ram: &Path) -> Vec<u32> {
    let needle = format!("mem-path={},", ram.display());
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if qemu_cmdline(pid).is_some_and(|args| args.iter().any(|a| a.contains(&needle))) {
            out.push(pid);
        }
    }
    out
}

fn is_id(s: &str) -> bool {
    (8..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A guest name as [`palisade_guest::GuestConfig`] accepts it (so it is safe in a path).
fn is_guest_name(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Removes guest `name`'s RAM file `ram` and its run directories under the temp dir.
fn remove_guest_files(ram: &Path, name: &str, removed: &mut Vec<PathBuf>) {
    if std::fs::remove_file(ram).is_ok() {
        removed.push(ram.to_path_buf());
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
        owner.record("br-alpha-g1", Some(std::process::id())).unwrap();
        assert_eq!(owner.recorded(), [("br-alpha-g1".to_owned(), Some(std::process::id()))]);
        assert!(!owner.owns(std::process::id()));
        std::fs::write(dir.path().join("palisade-br-alpha-g1.ram"), b"").unwrap();
        let reaped = owner.reap(dir.path());
        assert!(reaped.processes.is_empty());
        assert_eq!(reaped.files, [dir.path().join("palisade-br-alpha-g1.ram")], "no one uses the file");
        assert!(owner.recorded().is_empty());
        assert!(owner.record("../x", None).is_err(), "a record is never a path");
    }

    #[test]
    fn a_corrupt_instance_id_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("instance-id"), "not an id").unwrap();
        let err = Owner::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("instance-id"), "{err}");
    }
}
