//! `palisade scan`: Type 2 scan tasks (issue #7).

use anyhow::{bail, Context};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Subcommand;
use palisade_api::scans::{FailureReason, PortResult, ScanRequest, TaskRecord, TaskState};
use palisade_model::ScanKind;

use super::{client, print, Cli};

#[derive(Debug, Subcommand)]
pub(crate) enum ScanCmd {
    /// Scan one VM now through a task space; prints the open ports.
    ///
    /// Example: `palisade scan run --target alpha/web1 --tcp 22,80,8000-8100 -o json`
    Run {
        /// The VM: `tenant/vm`.
        #[arg(long)]
        target: String,
        /// TCP ports: a list of ports and ranges (default: 1-1024 and a few common higher ones).
        #[arg(long)]
        tcp: Option<String>,
        /// UDP ports: a list of ports and ranges (default none).
        #[arg(long)]
        udp: Option<String>,
        /// Probes in flight at once.
        #[arg(long)]
        concurrency: Option<usize>,
        /// Per-probe timeout in milliseconds.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// `port-scan` (Palisade's own scanner, fast) or `vuln-scan` (nmap with service
        /// detection and the offline-safe `vuln` scripts, inside the task space).
        #[arg(
            long,
            default_value = "port-scan",
            value_parser = PossibleValuesParser::new(["port-scan", "vuln-scan"]).try_map(|s| scan_kind(&s))
        )]
        kind: ScanKind,
        /// vuln-scan: skip service and version detection (faster; no versions to diff).
        #[arg(long)]
        no_service_detection: bool,
        /// vuln-scan: only these nmap scripts, comma-separated (default: every offline-safe
        /// `vuln` script; a named script outside that set does not run), e.g. `http-git,ssl-heartbleed`.
        #[arg(long, value_delimiter = ',')]
        scripts: Vec<String>,
    },
    /// Run a `scan` policy now: one task per VM it targets (a VM, a subdomain, a domain or the
    /// whole tenant), at most its concurrency at once, with the policy's profile.
    ///
    /// Example: `palisade scan policy beta/web-ports -o json`
    Policy {
        /// The policy: `tenant/name`.
        policy: String,
    },
    /// List scan tasks and their findings.
    Tasks,
    /// Compare two scans of the same target: ports that opened and closed.
    Diff {
        /// The earlier task id.
        from: u32,
        /// The later task id.
        to: u32,
    },
}

/// Parses `22,80,8000-8100`.
fn ports(s: &str) -> anyhow::Result<Vec<u16>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |x: &str| x.parse::<u16>().with_context(|| format!("`{x}` is not a port number"));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    bail!("port range `{part}` runs backwards");
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    Ok(out)
}

/// `--kind`'s value.
fn scan_kind(s: &str) -> Result<ScanKind, String> {
    match s {
        "port-scan" => Ok(ScanKind::PortScan),
        "vuln-scan" => Ok(ScanKind::VulnScan),
        other => Err(format!("`{other}` is neither port-scan nor vuln-scan")),
    }
}

/// `port/proto`.
fn port(p: &PortResult) -> String {
    format!("{}/{}", p.port, p.proto.as_str())
}

fn open_ports(task: &TaskRecord) -> String {
    if task.open.is_empty() {
        "-".to_owned()
    } else {
        task.open.iter().map(port).collect::<Vec<_>>().join(",")
    }
}

/// Why a failed task failed, as the controller recorded it.
fn reason(task: &TaskRecord) -> String {
    task.reason.as_ref().map_or_else(|| "the controller recorded no reason".to_owned(), FailureReason::to_string)
}

pub(crate) fn run(cli: &Cli, cmd: &ScanCmd) -> anyhow::Result<()> {
    let c = client(cli)?;
    match cmd {
        ScanCmd::Run { target, tcp, udp, concurrency, timeout_ms, kind, no_service_detection, scripts } => {
            let req = ScanRequest {
                target: target.clone(),
                tcp: tcp.as_deref().map(ports).transpose()?,
                udp: udp.as_deref().map(ports).transpose()?,
                concurrency: *concurrency,
                timeout_ms: *timeout_ms,
                kind: Some(*kind),
                service_detection: no_service_detection.then_some(false),
                scripts: (!scripts.is_empty()).then(|| scripts.clone()),
            };
            let task = c.scan_run(&req)?;
            print(cli, &task, print_task);
            if task.state == TaskState::Failed {
                bail!("scan task {} failed: {}", task.id, reason(&task));
            }
        }
        ScanCmd::Policy { policy } => {
            let (tenant, name) = policy.split_once('/').context("the policy is `tenant/name`")?;
            let tasks = c.scan_policy(tenant, name)?;
            print(cli, &tasks, |tasks| tasks.iter().for_each(print_task));
            let failed = tasks.iter().filter(|t| t.state == TaskState::Failed).count();
            if failed > 0 {
                bail!("{failed} of the policy's scan tasks failed (see their reasons above)");
            }
        }
        ScanCmd::Diff { from, to } => {
            let tasks = c.scan_tasks()?;
            let find =
                |id: u32| tasks.iter().find(|t| t.id == id).with_context(|| format!("there is no scan task {id}"));
            let d = palisade_scan::diff(find(*from)?, find(*to)?)?;
            print(cli, &d, |d| {
                println!("{} task {} -> task {}", d.target, d.from, d.to);
                for p in &d.opened {
                    println!("  + {} opened", port(p));
                }
                for p in &d.closed {
                    println!("  - {} closed", port(p));
                }
                for c in &d.changed {
                    println!("  ~ {}/{} {} -> {}", c.port, c.proto.as_str(), c.from, c.to);
                }
                for f in &d.new_findings {
                    println!("  + finding {} on {}/{}", f.script, f.port, f.proto.as_str());
                }
                for f in &d.gone_findings {
                    println!("  - finding {} on {}/{}", f.script, f.port, f.proto.as_str());
                }
                let quiet = d.changed.is_empty() && d.new_findings.is_empty() && d.gone_findings.is_empty();
                if d.opened.is_empty() && d.closed.is_empty() && quiet {
                    println!("  no change in open ports, services or findings");
                }
            });
        }
        ScanCmd::Tasks => {
            let tasks = c.scan_tasks()?;
            print(cli, &tasks, |tasks| {
                println!("{:<6} {:<20} {:<7} {:>9}  OPEN", "ID", "TARGET", "STATE", "MS");
                for t in tasks {
                    println!(
                        "{:<6} {:<20} {:<7} {:>9.0}  {}",
                        t.id,
                        t.target,
                        t.state.as_str(),
                        t.duration_ms,
                        open_ports(t)
                    );
                }
            });
        }
    }
    Ok(())
}

/// A task's human form: id, target, state, open ports with their services, findings, and why it
/// failed (with the operator's detail when the token is shown it).
fn print_task(t: &TaskRecord) {
    println!("task {} {} {} ({:.0} ms)", t.id, t.target, t.state.as_str(), t.duration_ms);
    if t.state == TaskState::Failed {
        println!("  failed: {}", reason(t));
    }
    if let Some(detail) = &t.detail {
        println!("  detail: {detail}");
    }
    for p in &t.open {
        let service = t.services.iter().find(|s| (s.proto, s.port) == (p.proto, p.port));
        let what =
            service.map_or_else(String::new, |s| format!("  {} {} {} {}", s.name, s.product, s.version, s.extra));
        println!("  {} open{}", port(p), what.trim_end());
    }
    for f in &t.findings {
        println!("  finding {} on {}/{}:", f.script, f.port, f.proto.as_str());
        for line in f.output.lines() {
            println!("    {}", line.trim());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ports;

    #[test]
    fn port_lists_and_ranges() {
        assert_eq!(ports("22, 80,8000-8002").unwrap(), vec![22, 80, 8000, 8001, 8002]);
        assert!(ports("9-1").is_err());
        assert!(ports("http").is_err());
        assert!(ports("70000").is_err());
    }
}
