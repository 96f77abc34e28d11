//! Sending a signal to a process by its pid, without spawning `kill` and without `unsafe`
//! (nix's safe wrapper of `kill(2)`).

pub use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Why a signal could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// The number is not one process's id (`kill(2)` reads 0 and negative numbers as process
    /// groups, so they are refused rather than passed on).
    #[error("{0} is not the id of a single process")]
    NotAPid(u32),
    /// `kill(2)` refused (no such process, not permitted).
    #[error("could not send {signal} to process {pid}")]
    Send {
        /// The process.
        pid: u32,
        /// The signal.
        signal: Signal,
        /// Why.
        #[source]
        source: nix::errno::Errno,
    },
}

impl SignalError {
    /// Whether the process did not exist (any more): a stop that found it gone.
    pub fn is_gone(&self) -> bool {
        matches!(self, SignalError::Send { source: nix::errno::Errno::ESRCH, .. })
    }
}

/// Sends `signal` to process `pid`.
pub fn send(pid: u32, signal: Signal) -> Result<(), SignalError> {
    let raw = i32::try_from(pid).ok().filter(|p| *p > 0).ok_or(SignalError::NotAPid(pid))?;
    nix::sys::signal::kill(Pid::from_raw(raw), signal).map_err(|source| SignalError::Send { pid, signal, source })
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn a_signal_reaches_the_process_and_group_ids_are_refused() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep runs");

        send(child.id(), Signal::SIGTERM).expect("signalled");

        let status = child.wait().expect("reaped");
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(Signal::SIGTERM as i32));
        assert!(matches!(send(0, Signal::SIGTERM), Err(SignalError::NotAPid(0))));
        assert!(matches!(send(u32::MAX, Signal::SIGTERM), Err(SignalError::NotAPid(_))));
        // Above any pid_max, so no process has it.
        let gone = send(i32::MAX as u32, Signal::SIGTERM).expect_err("no such process");
        assert!(gone.is_gone(), "{gone}");
    }
}
