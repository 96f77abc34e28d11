//! Appliance functions inside a namespace: the nftables firewall and the tcpdump tap.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::LabError;
use crate::host::{Changes, NS_IFACE};
use crate::nft::{self, RuleCounter};
use crate::spec::{ApplianceSpec, HostSpec};
use crate::sys::Sys;

/// How long a freshly started capture gets to create its pcap file.
const TAP_START_WAIT: Duration = Duration::from_secs(3);
/// How long a process gets to exit after SIGTERM, and again after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(50);

/// Loads the appliance's ruleset unless exactly that ruleset is already loaded.
pub fn converge_firewall(
    sys: Sys<'_>,
    host: &HostSpec,
    app: &ApplianceSpec,
    ch: &mut Changes<'_>,
) -> Result<(), LabError> {
    let ns = host.netns.as_str();
    let fw = nft::effective_firewall(app);
    let table = ["list", "table", "inet", nft::TABLE];
    // A missing table makes both listings fail: that just means "load it".
    let listing = sys.run(&Sys::in_netns(Some(ns), &["nft", "list", "table", "inet", nft::TABLE]));
    if let (Ok(listing), Ok(json)) = (listing, sys.nft_json(ns, &table)) {
        if nft::loaded_matches(&fw, &listing, &json) {
            return Ok(());
        }
    }
    ch.note(format!(
        "loading nftables ruleset ({} rules, default {}) in {ns}",
        fw.rules.len(),
        fw.default.nft_keyword()
    ));
    sys.run_stdin(&Sys::in_netns(Some(ns), &["nft", "-f", "-"]), Some(&nft::render_ruleset(&fw)))?;
    Ok(())
}

/// Reads the appliance's counters: one per rule, then `default`, then `forwarded`.
pub fn counters(sys: Sys<'_>, host: &HostSpec, app: &ApplianceSpec) -> Result<Vec<RuleCounter>, LabError> {
    let fw = nft::effective_firewall(app);
    let json = sys.nft_json(&host.netns, &["list", "counters", "table", "inet", nft::TABLE])?;
    nft::rule_counters(&fw, &nft::parse_counters(&json))
        .map_err(|counter| LabError::MissingCounter { netns: host.netns.clone(), counter })
}

/// Files the tap of one appliance keeps in the lab state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapFiles {
    /// Pid of the running tcpdump.
    pub pid: PathBuf,
    /// The capture.
    pub pcap: PathBuf,
    /// tcpdump's stdout and stderr.
    pub log: PathBuf,
}

impl TapFiles {
    /// The files for the appliance in namespace `netns`.
    pub fn new(state_dir: &Path, netns: &str) -> Self {
        TapFiles {
            pid: state_dir.join(format!("{netns}.tap.pid")),
            pcap: state_dir.join(format!("{netns}.pcap")),
            log: state_dir.join(format!("{netns}.tap.log")),
        }
    }

    /// What identifies this tap's process in `/proc/<pid>/cmdline`.
    fn needle(&self) -> String {
        self.pcap.display().to_string()
    }
}

fn state_err(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::StatePath { path: path.to_path_buf(), source }
}

/// The pid recorded for this tap, if a pid file exists.
fn recorded_pid(files: &TapFiles) -> Result<Option<u32>, LabError> {
    let text = match std::fs::read_to_string(&files.pid) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(state_err(&files.pid)(e)),
    };
    text.trim()
        .parse::<u32>()
        .map(Some)
        .map_err(|e| state_err(&files.pid)(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// The pid of this appliance's tap if it is running.
pub fn running_tap(sys: Sys<'_>, state_dir: &Path, netns: &str) -> Result<Option<u32>, LabError> {
    let files = TapFiles::new(state_dir, netns);
    Ok(recorded_pid(&files)?.filter(|&pid| sys.runner().process_alive(pid, &files.needle())))
}

/// Starts the tap capture unless the recorded one is still running.
pub fn converge_tap(sys: Sys<'_>, state_dir: &Path, host: &HostSpec, ch: &mut Changes<'_>) -> Result<(), LabError> {
    let ns = host.netns.as_str();
    let files = TapFiles::new(state_dir, ns);
    if running_tap(sys, state_dir, ns)?.is_some() {
        return Ok(());
    }
    if files.pcap.exists() {
        let prev = files.pcap.with_extension("prev.pcap");
        std::fs::rename(&files.pcap, &prev).map_err(state_err(&files.pcap))?;
    }
    ch.note(format!("starting tap capture in {ns} to {}", files.pcap.display()));
    let pcap = files.pcap.display().to_string();
    let argv = crate::runner::argv(&[
        "setsid", "ip", "netns", "exec", ns, "tcpdump", "-i", NS_IFACE, "-U", "-Z", "root", "-w", &pcap,
    ]);
    let pid = sys.runner().spawn_detached(&argv, &files.log)?;
    // While `setsid` and `ip netns exec` exec their way to tcpdump, the command line can read
    // as empty for a moment, so only "the process is gone" counts as failure here.
    let start = std::time::Instant::now();
    while !files.pcap.exists() && start.elapsed() < TAP_START_WAIT {
        if !sys.runner().process_alive(pid, "") {
            break;
        }
        std::thread::sleep(POLL);
    }
    if !sys.runner().process_alive(pid, "") {
        let log = std::fs::read_to_string(&files.log)
            .unwrap_or_else(|e| format!("(could not read {}: {e})", files.log.display()));
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(LabError::TapDied { netns: ns.to_owned(), log: tail.join(" / ") });
    }
    std::fs::write(&files.pid, format!("{pid}\n")).map_err(state_err(&files.pid))
}

/// Stops the tap recorded for `netns`, if any, and removes its pid file.
pub fn stop_tap(sys: Sys<'_>, state_dir: &Path, netns: &str, ch: &mut Changes<'_>) -> Result<(), LabError> {
    let files = TapFiles::new(state_dir, netns);
    let pid = match recorded_pid(&files) {
        Ok(pid) => pid,
        // An unreadable pid file names nothing we can stop; processes left in the namespace
        // are still killed by the namespace sweep.
        Err(e) => {
            ch.say(&format!("ignoring unusable tap pid file: {e}"));
            None
        }
    };
    if let Some(pid) = pid.filter(|&pid| sys.runner().process_alive(pid, &files.needle())) {
        ch.note(format!("stopping tap capture in {netns} (pid {pid})"));
        kill(sys, pid, &files.needle())?;
    }
    match std::fs::remove_file(&files.pid) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(state_err(&files.pid)(e)),
        _ => Ok(()),
    }
}

/// Sends SIGTERM, then SIGKILL if needed; fails if the process is still there after both.
pub fn kill(sys: Sys<'_>, pid: u32, needle: &str) -> Result<(), LabError> {
    let pid_s = pid.to_string();
    for signal in ["-TERM", "-KILL"] {
        // `kill` fails when the process is already gone; liveness below is what counts.
        let _ = sys.output(&["kill", signal, &pid_s])?;
        let start = std::time::Instant::now();
        while start.elapsed() < KILL_WAIT {
            if !sys.runner().process_alive(pid, needle) {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }
    Err(LabError::UnexpectedOutput {
        command: format!("kill -KILL {pid}"),
        detail: format!("process {pid} is still running"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_files_live_in_the_state_dir_named_after_the_namespace() {
        let f = TapFiles::new(Path::new("/var/lib/palisade/lab"), "pal-fw1");
        assert_eq!(f.pcap, Path::new("/var/lib/palisade/lab/pal-fw1.pcap"));
        assert_eq!(f.pid, Path::new("/var/lib/palisade/lab/pal-fw1.tap.pid"));
        assert_eq!(f.log, Path::new("/var/lib/palisade/lab/pal-fw1.tap.log"));
        assert_eq!(f.pcap.with_extension("prev.pcap"), Path::new("/var/lib/palisade/lab/pal-fw1.prev.pcap"));
    }

    #[test]
    fn a_garbage_pid_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = TapFiles::new(dir.path(), "pal-x");
        assert_eq!(recorded_pid(&files).expect("absent is fine"), None);
        std::fs::write(&files.pid, "12345\n").expect("write");
        assert_eq!(recorded_pid(&files).expect("parses"), Some(12345));
        std::fs::write(&files.pid, "not a pid").expect("write");
        let err = recorded_pid(&files).expect_err("garbage");
        assert!(err.to_string().contains("pal-x.tap.pid"), "{err}");
    }
}
