//! What the integration tests of several crates share, so that each piece exists once: running
//! a command that must succeed ([`sh`]), the root check, a tcpdump capture on a switch port
//! ([`Capture`]), a small real guest ([`guest`]) and a libvirt test bed ([`libvirt`]). Test code only: it panics instead of
//! returning errors, and no library or binary depends on it.

#![forbid(unsafe_code)]

pub mod guest;
pub mod libvirt;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use palisade_host::ErrorChain;

/// Runs a command that must succeed and returns its stdout; panics with the command and its
/// stderr otherwise.
pub fn sh(argv: &[&str]) -> String {
    let out = palisade_host::run(argv).unwrap_or_else(|e| panic!("{}", ErrorChain(&e)));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True when the test runs as root (CI does; tests that need it fail without it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// A tcpdump on a root-namespace port (`-U`: each packet written at once) into
/// `<dir>/<port>.pcap`, with a capture filter.
#[derive(Debug)]
pub struct Capture {
    child: Child,
    file: PathBuf,
    /// The port it listens on.
    pub port: String,
}

impl Capture {
    /// Starts capturing on `port`; returns once tcpdump says it is listening.
    pub fn start(dir: &Path, port: &str, filter: &str) -> Capture {
        let file = dir.join(format!("{port}.pcap"));
        let mut child = Command::new("tcpdump")
            .args(["-nn", "-U", "-i", port, "-w"])
            .arg(&file)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump runs (scripts/setup.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stderr.as_mut().expect("stderr")).read_line(&mut line).expect("tcpdump says");
        assert!(line.contains("listening on"), "tcpdump on {port}: {line}");
        Capture { child, file, port: port.to_owned() }
    }

    /// The packets captured so far, one tcpdump line each (`-nn`, plus `extra` options such
    /// as `-e`), after a short pause for packets in flight.
    pub fn seen(&self, extra: &[&str]) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(200));
        let file = self.file.display().to_string();
        let mut argv = vec!["tcpdump", "-nn"];
        argv.extend_from_slice(extra);
        argv.extend_from_slice(&["-r", &file]);
        sh(&argv).lines().map(str::to_owned).collect()
    }

    /// Stops the capture (SIGINT, so tcpdump flushes and closes the file) and returns every
    /// packet it holds (see [`Capture::seen`]).
    pub fn stop(mut self, extra: &[&str]) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(200));
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let _ = self.child.wait();
        self.seen(extra)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
