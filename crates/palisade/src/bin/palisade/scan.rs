//! `palisade scan`: Type 2 scan tasks (issue #7).

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};

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
        #[arg(long, default_value = "port-scan", value_parser = ["port-scan", "vuln-scan"])]
        kind: String,
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

fn open_ports(task: &Value) -> String {
    let list: Vec<String> = task["open"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{}/{}", p["port"], p["proto"].as_str().unwrap_or("")))
        .collect();
    if list.is_empty() {
        "-".to_owned()
    } else {
        list.join(",")
    }
}

pub(crate) fn run(cli: &Cli, cmd: &ScanCmd) -> anyhow::Result<()> {
    let c = client(cli)?;
    match cmd {
        ScanCmd::Run { target, tcp, udp, concurrency, timeout_ms, kind, no_service_detection, scripts } => {
            let mut req = json!({ "target": target, "kind": kind });
            if *no_service_detection {
                req["service_detection"] = json!(false);
            }
            if !scripts.is_empty() {
                req["scripts"] = json!(scripts);
            }
            if let Some(t) = tcp {
                req["tcp"] = json!(ports(t)?);
            }
            if let Some(u) = udp {
                req["udp"] = json!(ports(u)?);
            }
            if let Some(n) = concurrency {
                req["concurrency"] = json!(n);
            }
            if let Some(t) = timeout_ms {
                req["timeout_ms"] = json!(t);
            }
            let task = c.scan_run(req)?;
            print(cli, &task, print_task);
            if task["state"] == "failed" {
                bail!("scan task {} failed: {}", task["id"], task["reason"].as_str().unwrap_or("no reason given"));
            }
        }
        ScanCmd::Policy { policy } => {
            let (tenant, name) = policy.split_once('/').context("the policy is `tenant/name`")?;
            let tasks = c.scan_policy(tenant, name)?;
            print(cli, &tasks, |v| v.as_array().into_iter().flatten().for_each(print_task));
            let failed = tasks.as_array().into_iter().flatten().filter(|t| t["state"] == "failed").count();
            if failed > 0 {
                bail!("{failed} of the policy's scan tasks failed (see their reasons above)");
            }
        }
        ScanCmd::Diff { from, to } => {
            let tasks: Vec<palisade_scan::TaskRecord> =
                serde_json::from_value(c.scan_tasks()?).context("reading the task list")?;
            let find =
                |id: u32| tasks.iter().find(|t| t.id == id).with_context(|| format!("there is no scan task {id}"));
            let d = palisade_scan::diff(find(*from)?, find(*to)?)?;
            let v = serde_json::to_value(&d)?;
            print(cli, &v, |_| {
                println!("{} task {} -> task {}", d.target, d.from, d.to);
                let proto = |p: palisade_scan::Proto| if p == palisade_scan::Proto::Tcp { "tcp" } else { "udp" };
                for p in &d.opened {
                    println!("  + {}/{} opened", p.port, proto(p.proto));
                }
                for p in &d.closed {
                    println!("  - {}/{} closed", p.port, proto(p.proto));
                }
                for c in &d.changed {
                    println!("  ~ {}/{} {} -> {}", c.port, proto(c.proto), c.from, c.to);
                }
                for f in &d.new_findings {
                    println!("  + finding {} on {}/{}", f.script, f.port, proto(f.proto));
                }
                for f in &d.gone_findings {
                    println!("  - finding {} on {}/{}", f.script, f.port, proto(f.proto));
                }
                let quiet = d.changed.is_empty() && d.new_findings.is_empty() && d.gone_findings.is_empty();
                if d.opened.is_empty() && d.closed.is_empty() && quiet {
                    println!("  no change in open ports, services or findings");
                }
            });
        }
        ScanCmd::Tasks => {
            let v = c.scan_tasks()?;
            print(cli, &v, |v| {
                println!("{:<6} {:<20} {:<7} {:>9}  OPEN", "ID", "TARGET", "STATE", "MS");
                for t in v.as_array().into_iter().flatten() {
                    println!(
                        "{:<6} {:<20} {:<7} {:>9.0}  {}",
                        t["id"],
                        t["target"].as_str().unwrap_or(""),
                        t["state"].as_str().unwrap_or(""),
                        t["duration_ms"].as_f64().unwrap_or(0.0),
                        open_ports(t)
                    );
                }
            });
        }
    }
    Ok(())
}

/// A task's human form: id, target, state, open ports with their services, findings.
fn print_task(t: &Value) {
    println!(
        "task {} {} {} ({:.0} ms)",
        t["id"],
        t["target"].as_str().unwrap_or(""),
        t["state"].as_str().unwrap_or(""),
        t["duration_ms"].as_f64().unwrap_or(0.0)
    );
    let services = t["services"].as_array().cloned().unwrap_or_default();
    for p in t["open"].as_array().into_iter().flatten() {
        let service = services.iter().find(|s| s["port"] == p["port"] && s["proto"] == p["proto"]);
        let what = service.map_or_else(String::new, |s| {
            let text = |k: &str| s[k].as_str().unwrap_or("").to_owned();
            format!("  {} {} {} {}", text("name"), text("product"), text("version"), text("extra"))
        });
        println!("  {}/{} open{}", p["port"], p["proto"].as_str().unwrap_or(""), what.trim_end());
    }
    for f in t["findings"].as_array().into_iter().flatten() {
        println!(
            "  finding {} on {}/{}:",
            f["script"].as_str().unwrap_or(""),
            f["port"],
            f["proto"].as_str().unwrap_or("")
        );
        for line in f["output"].as_str().unwrap_or("").lines() {
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
