//! Choosing the accelerator: KVM only if a real test guest boots with it.
//!
//! `/dev/kvm` existing proves little (nested or restricted hosts expose it and then hang or fail
//! on an ordinary guest kernel), so the probe boots the caller's own kernel and initramfs under
//! KVM and waits for the ready marker. The verdict is cached for the life of the process and,
//! if [`GuestConfig::kvm_probe_cache`] is set, in a file keyed by the host's boot id, the QEMU
//! binary and the kernel, so later processes of the same host boot do not probe again.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::guest::Guest;
use crate::initramfs::READY_MARKER;
use crate::machine::{Accel, AccelChoice, GuestConfig};
use palisade_host::chain;

static PROBED: Mutex<Option<AccelChoice>> = Mutex::new(None);

/// KVM if it boots `config`'s kernel and initramfs to the ready marker within
/// `config.kvm_probe_timeout`, else TCG with the reason KVM was rejected. Probes once per process.
pub fn choose(config: &GuestConfig) -> AccelChoice {
    // Holding the lock while probing makes concurrent starts wait for one probe.
    let mut cached = PROBED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(choice) = cached.as_ref() {
        return choice.clone();
    }
    let key = ProbeKey::of(config);
    let from_file = config.kvm_probe_cache.as_deref().zip(key.as_ref()).and_then(|(path, key)| read_cache(path, key));
    let choice = match from_file {
        Some(choice) => choice,
        None => {
            let choice = verdict(probe_kvm(config));
            if let (Some(path), Some(key)) = (config.kvm_probe_cache.as_deref(), key) {
                write_cache(path, key, &choice);
            }
            choice
        }
    };
    tracing::info!(accel = ?choice.accel, reason = %choice.reason, "accelerator chosen");
    *cached = Some(choice.clone());
    choice
}

/// What a cached verdict is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ProbeKey {
    boot_id: String,
    qemu: PathBuf,
    kernel: PathBuf,
}

impl ProbeKey {
    fn of(config: &GuestConfig) -> Option<ProbeKey> {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?.trim().to_string();
        Some(ProbeKey { boot_id, qemu: config.qemu.clone(), kernel: config.kernel.clone() })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedVerdict {
    key: ProbeKey,
    kvm: bool,
    reason: String,
}

fn read_cache(path: &Path, key: &ProbeKey) -> Option<AccelChoice> {
    let verdict: CachedVerdict = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    if &verdict.key != key {
        return None;
    }
    let accel = if verdict.kvm { Accel::Kvm } else { Accel::Tcg };
    Some(AccelChoice {
        accel,
        reason: format!("{} (probed earlier this host boot; {})", verdict.reason, path.display()),
    })
}

/// Best effort: a cache that cannot be written only costs a probe next time.
fn write_cache(path: &Path, key: ProbeKey, choice: &AccelChoice) {
    let verdict = CachedVerdict { key, kvm: choice.accel == Accel::Kvm, reason: choice.reason.clone() };
    let result = (|| {
        let dir = path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir)?;
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(tmp.as_file(), &verdict)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok::<_, std::io::Error>(())
    })();
    if let Err(e) = result {
        tracing::debug!(path = %path.display(), error = %e, "could not cache the KVM probe verdict");
    }
}

/// The choice a probe's outcome makes: KVM if it booted, else TCG saying why KVM was rejected.
fn verdict(probe: Result<String, String>) -> AccelChoice {
    match probe {
        Ok(reason) => AccelChoice { accel: Accel::Kvm, reason },
        Err(why) => AccelChoice { accel: Accel::Tcg, reason: format!("KVM rejected: {why}") },
    }
}

fn probe_kvm(config: &GuestConfig) -> Result<String, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm cannot be opened ({e})"))?;
    boot_under_kvm(config)
}

/// Boots `config`'s kernel and initramfs under KVM to the ready marker. Every way this can fail
/// is a reason to use TCG, never an error of its own: QEMU refusing KVM, exiting with a status
/// or killed by a signal (e.g. SIGABRT after "failed to set MSR 0x10a" on a nested host), the
/// guest panicking or hanging past `config.kvm_probe_timeout`.
fn boot_under_kvm(config: &GuestConfig) -> Result<String, String> {
    let mut probe_config = config.clone();
    probe_config.name = format!("{}-kvmprobe", config.name.chars().take(30).collect::<String>());
    probe_config.nic = None;
    let started = Instant::now();
    let choice = AccelChoice { accel: Accel::Kvm, reason: "probe".into() };
    let mut guest = Guest::launch(&probe_config, choice)
        .map_err(|e| format!("QEMU could not start a test guest under KVM: {}", chain(&e)))?;
    let booted = guest.wait_for_console(READY_MARKER, config.kvm_probe_timeout);
    let console = guest.console_text().unwrap_or_default();
    let stopped = guest.stop();
    match booted {
        Ok(_) => {
            if let Err(e) = stopped {
                tracing::warn!(error = %chain(&e), "could not clean up the KVM probe guest");
            }
            Ok(format!("a test guest booted under KVM to its ready marker in {:?}", started.elapsed()))
        }
        Err(e) => {
            let last = console.lines().last().unwrap_or("<no console output>").to_string();
            Err(format!("a test guest did not boot under KVM: {}; last console line: {last}", chain(&e)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for QEMU: a script that writes `stderr` and then runs `then`.
    fn fake_qemu(dir: &Path, stderr: &str, then: &str) -> GuestConfig {
        use std::os::unix::fs::PermissionsExt;
        let qemu = dir.join("fake-qemu");
        let script = format!("#!/bin/sh\nulimit -c 0\necho '{stderr}' >&2\n{then}\n");
        std::fs::write(&qemu, script).unwrap();
        std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut config = GuestConfig::new("fake", dir.join("vmlinuz"), dir.join("initrd"));
        config.qemu = qemu;
        config.ram_dir = dir.to_path_buf();
        config.kvm_probe_cache = None;
        config
    }

    /// Issue #14: on some nested hosts QEMU aborts under KVM instead of hanging. That is KVM
    /// being unusable, so TCG is chosen and the reason keeps QEMU's own words.
    #[test]
    fn qemu_aborting_under_kvm_makes_tcg_the_choice() {
        let dir = tempfile::tempdir().unwrap();
        let msr = "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69";
        let config = fake_qemu(dir.path(), msr, "kill -ABRT $$");

        let choice = verdict(boot_under_kvm(&config));

        assert_eq!(choice.accel, Accel::Tcg);
        assert!(choice.reason.starts_with("KVM rejected: QEMU could not start"), "{}", choice.reason);
        assert!(choice.reason.contains("SIGABRT") && choice.reason.contains(msr), "{}", choice.reason);
    }

    #[test]
    fn qemu_exiting_with_an_error_under_kvm_makes_tcg_the_choice() {
        let dir = tempfile::tempdir().unwrap();
        let config = fake_qemu(dir.path(), "qemu-system-x86_64: failed to initialize kvm: Permission denied", "exit 1");

        let choice = verdict(boot_under_kvm(&config));

        assert_eq!(choice.accel, Accel::Tcg);
        assert!(choice.reason.contains("exit status: 1"), "{}", choice.reason);
        assert!(choice.reason.contains("failed to initialize kvm"), "{}", choice.reason);
    }

    #[test]
    fn a_cached_verdict_counts_only_for_the_same_boot_qemu_and_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/kvm-probe.json");
        let key = ProbeKey { boot_id: "b1".into(), qemu: "qemu".into(), kernel: "/k".into() };
        let tcg = AccelChoice { accel: Accel::Tcg, reason: "KVM rejected: hung".into() };

        write_cache(&path, key.clone(), &tcg);

        let hit = read_cache(&path, &key).unwrap();
        assert_eq!(hit.accel, Accel::Tcg);
        assert!(hit.reason.starts_with("KVM rejected: hung (probed earlier"), "{}", hit.reason);
        let other_boot = ProbeKey { boot_id: "b2".into(), ..key.clone() };
        assert_eq!(read_cache(&path, &other_boot), None);
        let other_kernel = ProbeKey { kernel: "/k2".into(), ..key };
        assert_eq!(read_cache(&path, &other_kernel), None);
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(read_cache(&path, &other_boot), None);
    }
}
