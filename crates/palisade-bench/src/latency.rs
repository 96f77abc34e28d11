//! Policy change -> enforced in the datapath, with N policies installed.
//!
//! Background: N redirect policies on distinct TCP ports (tenant alpha, web1 -> web2 via fw1).
//! Each iteration adds one more policy that redirects the probes' UDP port, waits until a probe
//! is seen crossing fw1 (added -> enforced), deletes it and waits until probes stop crossing
//! (deleted -> enforced). Times are from just before the API call to the first (or last)
//! sighting at the appliance, so they include the API, validation, compilation, the OVS bundle,
//! the store commit and OVS revalidating its datapath caches. Resolution: the probe interval.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::probe::unix_ns;

/// Arguments of `policy-latency`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    api: crate::ApiArgs,
    /// Numbers of installed policies to measure with.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    sizes: Vec<usize>,
    /// Changes measured per size.
    #[arg(long, default_value_t = 100)]
    iterations: usize,
    /// Probe interval in microseconds (the measurement's resolution).
    #[arg(long, default_value_t = 200)]
    interval_us: u64,
}

const PORT: u16 = 40000;
const SRC_NS: &str = "pal-alpha-web1";
const APPLIANCE_NS: &str = "pal-fw1";
const DST: &str = "198.18.1.20";

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn policy(name: &str, protocol: &str, port: u16, priority: u32) -> String {
    format!(
        "  - name: {name}\n    tenant: alpha\n    priority: {priority}\n    redirect:\n      source: {{ vm: web1 }}\n      \
         destination: {{ vm: web2 }}\n      protocol: {protocol}\n      ports: [{port}]\n      direction: forward\n      \
         appliance: fw1\n      fail_mode: open\n"
    )
}

fn background(n: usize) -> String {
    let mut s = String::from("policies:\n");
    for i in 0..n {
        s.push_str(&policy(&format!("bg-{i}"), "tcp", 10000 + i as u16, 100));
    }
    s
}

/// p-th percentile (nearest rank) of sorted `v`, in ms.
fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

/// Waits for the first sighting after `since` (unix ns); returns its time.
fn first_after(rx: &Receiver<(u64, u64)>, since: u64, limit: Duration) -> Option<u64> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok((_, t)) = rx.recv_timeout(Duration::from_millis(50)) {
            if t >= since {
                return Some(t);
            }
        }
    }
    None
}

/// Waits until no probe has been seen for `quiet`; returns the last sighting (`Some(None)` if
/// there was none), or `None` if probes kept coming for `limit`.
fn last_before_quiet(rx: &Receiver<(u64, u64)>, quiet: Duration, limit: Duration) -> Option<Option<u64>> {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < limit {
        match rx.recv_timeout(quiet) {
            Ok((_, t)) => last = Some(t),
            Err(_) => return Some(last),
        }
    }
    None
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.sizes.windows(2).any(|w| w[0] >= w[1]) {
        bail!("--sizes must ascend (each size adds background policies to the previous ones)");
    }
    let api = args.api.client()?;
    let me = std::env::current_exe().context("locating palisade-bench")?;
    let mut sniffer = Command::new("ip")
        .args(["netns", "exec", APPLIANCE_NS])
        .arg(&me)
        .args(["sniff", "--port", &PORT.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the sniffer in the appliance namespace")?;
    let out = sniffer.stdout.take().context("sniffer stdout")?;
    let prober = Command::new("ip")
        .args(["netns", "exec", SRC_NS])
        .arg(&me)
        .args(["probe", "--dst", &format!("{DST}:{PORT}"), "--interval-us", &args.interval_us.to_string()])
        .spawn()
        .context("starting the probe in the source VM's namespace")?;
    let _children = Children(vec![sniffer, prober]);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let mut it = line.split(' ').filter_map(|x| x.parse::<u64>().ok());
            if let (Some(seq), Some(t)) = (it.next(), it.next()) {
                if tx.send((seq, t)).is_err() {
                    break;
                }
            }
        }
    });
    let quiet = Duration::from_millis(30);
    let limit = Duration::from_secs(10);
    let change = format!("policies:\n{}", policy("probe-change", "udp", PORT, 200));

    println!("| policies installed | change | API call p50 / p99 (ms) | enforced p50 / p99 (ms) | max (ms) |");
    println!("|---|---|---|---|---|");
    for &n in &args.sizes {
        // Sizes ascend, so applying the first n background policies only adds to what is there.
        api.apply("background.yaml", &background(n), false).context("installing background policies")?;
        if last_before_quiet(&rx, quiet, limit).is_none() {
            bail!("probes keep crossing the appliance with no probe policy installed");
        }
        let (mut add_api, mut add_dp, mut del_api, mut del_dp) = (vec![], vec![], vec![], vec![]);
        for i in 0..args.iterations {
            let t0 = unix_ns();
            api.apply("change.yaml", &change, false).context("adding the probe policy")?;
            add_api.push((unix_ns() - t0) as f64 / 1e6);
            let seen = first_after(&rx, t0, limit).context("the added policy was never enforced (10 s)")?;
            add_dp.push(seen.saturating_sub(t0) as f64 / 1e6);
            let t1 = unix_ns();
            api.delete("policy", "alpha/probe-change", false).context("deleting the probe policy")?;
            del_api.push((unix_ns() - t1) as f64 / 1e6);
            let last = last_before_quiet(&rx, quiet, limit).context("the deleted policy stayed enforced (10 s)")?;
            // No sighting after the add's first one means it stopped at once.
            del_dp.push(last.unwrap_or(t1).saturating_sub(t1) as f64 / 1e6);
            if (i + 1) % 25 == 0 {
                eprintln!("  {n} policies: {}/{} changes", i + 1, args.iterations);
            }
        }
        for (what, api_ms, dp_ms) in [("add", &mut add_api, &mut add_dp), ("delete", &mut del_api, &mut del_dp)] {
            api_ms.sort_by(f64::total_cmp);
            dp_ms.sort_by(f64::total_cmp);
            println!(
                "| {n} | {what} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} |",
                pct(api_ms, 50.0),
                pct(api_ms, 99.0),
                pct(dp_ms, 50.0),
                pct(dp_ms, 99.0),
                dp_ms.last().copied().unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}
