//! Controller restart with many flows installed, under a ping flood.
//!
//! Installs `--flows` redirect policies (one flow each) plus the lab's web1 -> web2 redirect,
//! then floods pings from alpha/web1 to alpha/web2 (through fw1) twice for the same time: once
//! undisturbed (the baseline) and once while the controller is killed with SIGKILL and restarted,
//! then stopped with SIGTERM and restarted. Reports packets sent and lost for both, and checks
//! the restarts re-added nothing (flow count and ages kept).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use palisade_client::lab::LabHome;

/// Arguments of `restart`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    api: crate::ApiArgs,
    /// The lab's home (pid file, database, tokens).
    #[arg(long, env = "PALISADE_LAB_DIR", default_value = palisade_lab::DEFAULT_STATE_DIR)]
    lab_dir: PathBuf,
    /// Number of extra one-flow policies to install.
    #[arg(long, default_value_t = 10_000)]
    flows: usize,
    /// Length of the baseline flood in seconds (at about 5,000 pings/s; the second flood sends
    /// as many pings as the baseline did).
    #[arg(long, default_value_t = 12)]
    seconds: u64,
}

const REDIRECT: &str = "policies:
  - name: web1-to-web2-via-fw
    tenant: alpha
    priority: 100
    redirect:
      source: { vm: web1 }
      destination: { vm: web2 }
      protocol: any
      direction: both
      appliance: fw1
      fail_mode: closed
";

fn policies(n: usize) -> String {
    let mut s = String::from("policies:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  - name: bulk-{i}\n    tenant: alpha\n    priority: 50\n    redirect:\n      source: {{ vm: web1 }}\n      \
             destination: {{ vm: web2 }}\n      protocol: tcp\n      ports: [{}]\n      direction: forward\n      \
             appliance: fw1\n      fail_mode: open\n",
            10000 + i
        ));
    }
    s
}

/// Cookies and ages (seconds) of Palisade's flows on the bridge.
fn palisade_flows(bridge: &str) -> anyhow::Result<Vec<f64>> {
    let out = Command::new("ovs-ofctl").args(["-O", "OpenFlow14", "dump-flows", bridge]).output()?;
    if !out.status.success() {
        bail!("ovs-ofctl dump-flows {bridge} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("cookie=0x5a15"))
        .filter_map(|l| l.split("duration=").nth(1)?.split('s').next()?.parse().ok())
        .collect())
}

/// Starts a flood of `count` pings (a count, not a deadline: a deadline cuts off the last
/// packet in flight and counts it as lost); returns the child whose stdout holds the summary.
fn flood(count: u64) -> anyhow::Result<std::process::Child> {
    Command::new("ip")
        .args(["netns", "exec", "pal-alpha-web1", "ping", "-f", "-q", "-c", &count.to_string(), "198.18.1.20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting ping -f (iputils-ping) in pal-alpha-web1")
}

/// (transmitted, received) from iputils ping's summary.
fn summary(child: std::process::Child) -> anyhow::Result<(u64, u64)> {
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("transmitted"))
        .with_context(|| format!("ping printed no summary: {}{}", text, String::from_utf8_lossy(&out.stderr)))?;
    let nums: Vec<u64> = line.split([' ', ',']).filter_map(|w| w.parse().ok()).collect();
    match nums[..] {
        [tx, rx, ..] => Ok((tx, rx)),
        _ => bail!("cannot read ping's summary: {line}"),
    }
}

fn restart(home: &LabHome, palisaded: &std::path::Path, url: &str, signal: &str) -> anyhow::Result<f64> {
    let pid_path = home.dir.join("palisaded.pid");
    let pid = std::fs::read_to_string(&pid_path).with_context(|| format!("reading {}", pid_path.display()))?;
    let pid = pid.trim().to_owned();
    let t = Instant::now();
    Command::new("kill").args([signal, &pid]).status()?;
    while std::path::Path::new(&format!("/proc/{pid}/exe")).exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let listen = url.trim_start_matches("http://").trim_end_matches('/');
    home.start_controller(palisaded, url, listen, &home.names()?)?;
    Ok(t.elapsed().as_secs_f64())
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let api = args.api.client()?;
    let palisaded = std::env::current_exe()?.with_file_name("palisaded");
    let home = LabHome::new(args.lab_dir.clone());
    let bridge = home.names()?.bridge;
    let t = Instant::now();
    api.apply("bulk.yaml", &policies(args.flows), false).context("installing the bulk policies")?;
    api.apply("redirect.yaml", REDIRECT, false).context("installing the redirect")?;
    let before = palisade_flows(&bridge)?;
    eprintln!("installed {} Palisade flows in {:.2} s", before.len(), t.elapsed().as_secs_f64());
    if before.len() < args.flows {
        bail!("only {} flows installed, wanted at least {}", before.len(), args.flows);
    }

    // The baseline sets the count: as many pings as this machine floods in `seconds`.
    let t = Instant::now();
    let (btx, brx) = summary(flood(args.seconds * 5000)?)?;
    let baseline_s = t.elapsed().as_secs_f64();
    let child = flood(btx)?;
    let third = Duration::from_secs_f64(baseline_s) / 3;
    std::thread::sleep(third);
    let kill9 = restart(&home, &palisaded, &args.api.url, "-9")?;
    std::thread::sleep(third.saturating_sub(Duration::from_secs_f64(kill9)));
    let term = restart(&home, &palisaded, &args.api.url, "-TERM")?;
    let (rtx, rrx) = summary(child)?;
    // Let the restarted controller finish a reconcile pass before looking at the flows.
    std::thread::sleep(Duration::from_millis(1500));
    api.reconcile().context("reconciling after the restarts")?;
    let after = palisade_flows(&bridge)?;
    let min_age = after.iter().copied().fold(f64::INFINITY, f64::min);
    println!("| flood | flows installed | restarts | sent | lost |");
    println!("|---|---|---|---|---|");
    println!("| baseline, no restart ({baseline_s:.1} s) | {} | none | {btx} | {} |", before.len(), btx - brx);
    println!(
        "| with restarts | {} | SIGKILL+start ({kill9:.2} s), SIGTERM+start ({term:.2} s) | {rtx} | {} |",
        after.len(),
        rtx - rrx
    );
    println!(
        "youngest Palisade flow after the restarts: {min_age:.1} s old (both floods: {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    if after.len() != before.len() {
        bail!("flow count changed across restarts: {} -> {}", before.len(), after.len());
    }
    Ok(())
}
