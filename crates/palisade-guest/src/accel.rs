//! Choosing the accelerator: KVM only if a real test guest boots with it.
//!
//! `/dev/kvm` existing proves little (nested or restricted hosts expose it and then hang or fail
//! on an ordinary guest kernel), so the probe boots the caller's own kernel and initramfs under
//! KVM and waits for the ready marker. The result is cached for the life of the process.

use std::sync::Mutex;
use std::time::Instant;

use crate::guest::Guest;
use crate::initramfs::READY_MARKER;
use crate::machine::{Accel, AccelChoice, GuestConfig};

static PROBED: Mutex<Option<AccelChoice>> = Mutex::new(None);

/// KVM if it boots `config`'s kernel and initramfs to the ready marker within
/// `config.kvm_probe_timeout`, else TCG with the reason KVM was rejected. Probes once per process.
pub fn choose(config: &GuestConfig) -> AccelChoice {
    // Holding the lock while probing makes concurrent starts wait for one probe.
    let mut cached = PROBED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(choice) = cached.as_ref() {
        return choice.clone();
    }
    let choice = match probe_kvm(config) {
        Ok(reason) => AccelChoice { accel: Accel::Kvm, reason },
        Err(why) => AccelChoice { accel: Accel::Tcg, reason: format!("KVM rejected: {why}") },
    };
    tracing::info!(accel = ?choice.accel, reason = %choice.reason, "accelerator chosen");
    *cached = Some(choice.clone());
    choice
}

fn probe_kvm(config: &GuestConfig) -> Result<String, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm cannot be opened ({e})"))?;
    let mut probe_config = config.clone();
    probe_config.name = format!("{}-kvmprobe", config.name.chars().take(30).collect::<String>());
    probe_config.nic = None;
    let started = Instant::now();
    let choice = AccelChoice { accel: Accel::Kvm, reason: "probe".into() };
    let mut guest = Guest::launch(&probe_config, choice).map_err(|e| chain(&e))?;
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

/// An error and its causes on one line.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::GuestError;
    use std::error::Error as _;

    #[test]
    fn chain_keeps_every_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = GuestError::io("read", "/x", io);

        assert_eq!(chain(&err), "could not read `/x`: no such file");
        let _ = err.source();
    }
}
