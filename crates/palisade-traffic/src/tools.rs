//! The real programs a run starts — tcpdump on the service VM's OVS port, hping3, nmap and
//! masscan inside the client host's namespace — and the addresses it adds there, each held by
//! a guard that stops or removes it when dropped (also on error and on interrupt).
//! The programs run in the background as children this module supervises (hence their
//! `Command`); a command run to completion (`ip addr`) goes through `palisade_host`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use palisade_host::signal::{self, Signal};
use palisade_host::{command_line, ToolError};

use crate::error::TrafficError;
use crate::plan::Kind;

/// The programs a run needs, with the Debian package of each.
pub const NEEDED: [(&str, &str); 5] =
    [("ip", "iproute2"), ("tcpdump", "tcpdump"), ("hping3", "hping3"), ("nmap", "nmap"), ("masscan", "masscan")];

/// Fails naming the first needed program that is not on `PATH`, with its package.
pub fn check_installed() -> Result<(), TrafficError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for (tool, package) in NEEDED {
        if !std::env::split_paths(&path).any(|d| d.join(tool).is_file()) {
            return Err(TrafficError::ToolMissing { tool, package });
        }
    }
    Ok(())
}

/// A started program; dropping it stops it (SIGINT, then SIGKILL after a second) and reaps it.
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
    /// The command line, for messages.
    pub command: String,
}

impl Proc {
    fn spawn(argv: &[String], log: &File) -> Result<Proc, TrafficError> {
        let command = command_line(argv);
        let err = |source| ToolError::Spawn { command: command.clone(), source };
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(err)?)
            .stderr(log.try_clone().map_err(err)?)
            .spawn()
            .map_err(err)?;
        Ok(Proc { child: Some(child), command })
    }

    /// Its exit status if it has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Stops it (SIGINT so it can flush, then SIGKILL) and returns how it ended.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        if let Ok(Some(s)) = c.try_wait() {
            return Some(s);
        }
        // Gone already is fine: try_wait below reaps it.
        let _ = signal::send(c.id(), Signal::SIGINT);
        for _ in 0..100 {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        c.wait().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// tcpdump writing everything on `port` to `file`, started and listening.
pub fn capture(port: &str, file: &Path, log: &Path) -> Result<Proc, TrafficError> {
    let argv: Vec<String> =
        ["tcpdump", "-nn", "-U", "-B", "16384", "-s", "512", "-i", port, "-w"].iter().map(|s| s.to_string()).collect();
    let mut argv = argv;
    argv.push(file.display().to_string());
    let command = command_line(&argv);
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ToolError::Spawn { command: command.clone(), source })?;
    let mut proc = Proc { child: Some(child), command };
    let stderr = proc.child.as_mut().and_then(|c| c.stderr.take());
    let mut line = String::new();
    if let Some(e) = stderr {
        let mut r = BufReader::new(e);
        let _ = r.read_line(&mut line);
        // Keep draining what it says later into the tools log, so it never blocks on a full pipe.
        let log = log.to_owned();
        std::thread::spawn(move || {
            let mut out = std::fs::OpenOptions::new().create(true).append(true).open(log);
            for l in r.lines().map_while(Result::ok) {
                if let Ok(f) = out.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "tcpdump: {l}");
                }
            }
        });
    }
    if !line.contains("listening on") {
        proc.stop();
        return Err(TrafficError::CaptureStart { port: port.to_owned(), said: line.trim().to_owned() });
    }
    Ok(proc)
}

/// Where an attack goes and comes from.
#[derive(Debug, Clone)]
pub struct Target {
    /// The attacking host's namespace.
    pub netns: String,
    /// Its interface.
    pub iface: String,
    /// Its MAC (masscan writes frames itself).
    pub mac: String,
    /// The attacked VM.
    pub ip: Ipv4Addr,
    /// The attacked VM's MAC (masscan's next hop: the VM is on-link).
    pub target_mac: String,
}

/// The command line of a tool-made attack of `secs` seconds from `src`; `None` for kinds made
/// in-process (URL probing).
pub fn attack_argv(kind: Kind, t: &Target, src: Ipv4Addr, secs: u64) -> Option<Vec<String>> {
    let (src, dst) = (src.to_string(), t.ip.to_string());
    // Scans spread their 1000 ports over the episode; masscan's limiter sends about half the
    // rate asked for at these low rates (measured in the lab: 125 asked, ~66 SYNs/s seen).
    let rate = (1000 / secs.max(1)).to_string();
    let masscan_rate = (2000 / secs.max(1)).to_string();
    let tool: Vec<&str> = match kind {
        // 1000 packets/s for the episode (hping3 runs until stopped).
        Kind::SynFlood => vec!["hping3", "-q", "-S", "-p", "80", "-i", "u1000", "-a", &src, &dst],
        Kind::UdpFlood => vec!["hping3", "-q", "--udp", "-p", "53", "-d", "64", "-i", "u1000", "-a", &src, &dst],
        Kind::Nmap => vec![
            "nmap",
            "-n",
            "-Pn",
            "-sS",
            "-p",
            "1-1000",
            "--max-rate",
            &rate,
            "--max-retries",
            "0",
            "-e",
            &t.iface,
            "-S",
            &src,
            &dst,
        ],
        Kind::MasscanTcp => vec![
            "masscan",
            &dst,
            "-p",
            "1-1000",
            "--rate",
            &masscan_rate,
            "--wait",
            "0",
            "--adapter",
            &t.iface,
            "--adapter-ip",
            &src,
            "--adapter-mac",
            &t.mac,
            "--router-mac",
            &t.target_mac,
        ],
        Kind::UrlProbe => return None,
    };
    let mut argv: Vec<String> = ["ip", "netns", "exec", &t.netns].iter().map(|s| s.to_string()).collect();
    argv.extend(tool.iter().map(|s| s.to_string()));
    Some(argv)
}

/// Starts a tool-made attack, its output appended to `log`.
pub fn start_attack(argv: &[String], log: &File) -> Result<Proc, TrafficError> {
    Proc::spawn(argv, log)
}

/// The last `n` bytes of the tools log, for error messages.
pub fn log_tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let cut = text.len().saturating_sub(n);
    text.get(cut..).unwrap_or(&text).trim().replace('\n', " | ")
}

/// Addresses added to a host's interface for the run; dropping removes them.
#[derive(Debug)]
pub struct Addresses {
    netns: String,
    iface: String,
    added: Vec<Ipv4Addr>,
}

impl Addresses {
    /// Adds each of `addrs` as a /32 on `iface` in `netns` (replacing a leftover of a crashed run).
    pub fn add(netns: &str, iface: &str, addrs: &[Ipv4Addr]) -> Result<Addresses, TrafficError> {
        let mut guard = Addresses { netns: netns.to_owned(), iface: iface.to_owned(), added: Vec::new() };
        for a in addrs {
            palisade_host::run(&["ip", "-n", netns, "addr", "replace", &format!("{a}/32"), "dev", iface])?;
            guard.added.push(*a);
        }
        Ok(guard)
    }
}

impl Drop for Addresses {
    fn drop(&mut self) {
        for a in self.added.drain(..) {
            // Best effort: the namespace may be gone with the lab, taking the address along.
            let _ =
                palisade_host::run(&["ip", "-n", &self.netns, "addr", "del", &format!("{a}/32"), "dev", &self.iface]);
        }
    }
}

/// The namespace file of `netns`, or the lab-not-up error.
pub fn netns_path(netns: &str) -> Result<PathBuf, TrafficError> {
    let p = PathBuf::from("/run/netns").join(netns);
    if p.exists() {
        Ok(p)
    } else {
        Err(TrafficError::LabNotUp { netns: netns.to_owned() })
    }
}
