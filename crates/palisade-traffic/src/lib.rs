//! Palisade's labelled traffic for the anomaly detector: every generator of captures and their
//! labels. Owns the lab run by real tools (`palisade lab traffic`, [`run`]), the synthetic
//! dataset ([`synth`], `palisade nad dataset synth`), the benchmark capture ([`benchmark`]) and
//! what their directories share ([`dataset`]); not the lab itself, nor features, nor the detector.
//!
//! The lab run: services on the service VM, benign clients, the attack schedule and the tools
//! that carry it out, the capture and its labels.
//!
//! ```text
//!  plan (seeded): daily rate x noise per window, attack episodes (held-back kinds 2nd half)
//!   service VM netns ◄── benign clients (client netns, pool addresses, rate follows the day)
//!   HTTP :80 :8080        ◄── hping3 SYN/UDP flood, nmap, masscan, URL prober (attacker pool)
//!   UDP :53      │
//!        tcpdump on its OVS port ─► raw pcap ─► trim to the windows ─► capture.pcap
//!   episodes' host-clock start/end (the capture's clock) ─► labels.csv, dataset.json
//! ```
//!
//! Time is compressed: one window (a second by default) stands for a minute of the day, so a
//! day lasts `period` seconds (1440 by default). Every process and address a run starts or adds
//! is held by a guard and removed when the run ends, fails or is interrupted.

#![forbid(unsafe_code)]

pub mod benchmark;
mod clients;
pub mod dataset;
mod error;
mod output;
mod plan;
mod services;
pub mod synth;
mod tools;

use std::fs::OpenOptions;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use dataset::{DatasetHeader, KindCount, Part};
pub use error::TrafficError;
pub use output::{Benign, Counts, Summary};
pub use plan::{daily_rate, Kind, Planned, Ran};

use clients::{now_ns, Load, LoadPlan};
use tools::{Addresses, Proc, Target};

/// One lab host the run uses.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its namespace, e.g. `pal-alpha-web1`.
    pub netns: String,
    /// Its OVS port (host side of its veth), e.g. `pa-web1`.
    pub port: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: String,
}

/// What to make.
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    /// Directory for `capture.pcap`, `labels.csv`, `dataset.json` and `tools.log`.
    pub out: PathBuf,
    /// Length of the run in seconds (a whole number of windows).
    pub seconds: u64,
    /// Window length in seconds.
    pub window_s: u64,
    /// Length of one compressed day in seconds.
    pub period_s: u64,
    /// The seed of the schedule and the load.
    pub seed: u64,
    /// Kinds only in the test part.
    pub held_back: Vec<Kind>,
    /// Wanted share of attack seconds per part (each kind at least once regardless).
    pub share: f64,
    /// Benign requests per second at the daily peak.
    pub peak_rate: f64,
    /// The service VM (monitored; the capture is taken on its port).
    pub server: Host,
    /// The host the clients and attackers run in.
    pub clients: Host,
    /// Addresses the lab already uses (the run's pools must not clash with them).
    pub taken: Vec<Ipv4Addr>,
}

/// The lab host whose namespace is `netns`, from the lab's `hosts`.
pub fn lab_host(hosts: &[Host], netns: &str) -> Result<Host, TrafficError> {
    hosts.iter().find(|h| h.netns == netns).cloned().ok_or_else(|| TrafficError::UnknownHost {
        netns: netns.to_owned(),
        known: hosts.iter().map(|h| h.netns.as_str()).collect::<Vec<_>>().join(", "),
    })
}

/// How many client and attacker addresses a run adds to the client host.
const CLIENTS: u8 = 24;
const ATTACKERS: u8 = 6;

/// The run's address pools in the client host's /24: clients .100.., attackers .200...
fn pools(c: &Host) -> (Vec<Ipv4Addr>, Vec<Ipv4Addr>) {
    let [a, b, n, _] = c.ip.octets();
    let clients = (0..CLIENTS).map(|i| Ipv4Addr::new(a, b, n, 100 + i)).collect();
    let attackers = (0..ATTACKERS).map(|i| Ipv4Addr::new(a, b, n, 200 + i)).collect();
    (clients, attackers)
}

/// Makes the dataset; `interrupted` (set by a signal handler) stops the run early, cleanly.
/// `say` gets progress lines.
pub fn run(cfg: &TrafficConfig, interrupted: &AtomicBool, say: &mut dyn FnMut(&str)) -> Result<Summary, TrafficError> {
    if cfg.window_s == 0 {
        return Err(TrafficError::ZeroWindow);
    }
    if cfg.period_s < 2 * cfg.window_s {
        return Err(TrafficError::BadPeriod);
    }
    let windows = cfg.seconds / cfg.window_s;
    let seconds = windows * cfg.window_s;
    let half = (windows / 2) * cfg.window_s;
    let train: Vec<Kind> = Kind::ALL.into_iter().filter(|k| !cfg.held_back.contains(k)).collect();
    let held: Vec<Kind> = Kind::ALL.into_iter().filter(|k| cfg.held_back.contains(k)).collect();
    let planned = plan::schedule(cfg.seed, seconds, half, cfg.share, &train, &held)?;
    tools::check_installed()?;
    let server_ns = tools::netns_path(&cfg.server.netns)?;
    let client_ns = tools::netns_path(&cfg.clients.netns)?;
    let (client_pool, attacker_pool) = pools(&cfg.clients);
    if let Some(a) = client_pool.iter().chain(&attacker_pool).find(|a| cfg.taken.contains(a)) {
        return Err(TrafficError::AddressTaken(*a));
    }
    std::fs::create_dir_all(&cfg.out).map_err(|source| TrafficError::Write { path: cfg.out.clone(), source })?;
    let log_path = cfg.out.join("tools.log");
    let log = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&log_path)
        .map_err(|source| TrafficError::Write { path: log_path.clone(), source })?;

    say(&format!(
        "adding {} client and {} attacker addresses to {}",
        client_pool.len(),
        attacker_pool.len(),
        cfg.clients.netns
    ));
    let all: Vec<Ipv4Addr> = client_pool.iter().chain(&attacker_pool).copied().collect();
    let _addresses = Addresses::add(&cfg.clients.netns, "eth0", &all)?;
    let services = services::Services::start(&server_ns)?;
    let raw = cfg.out.join("capture.raw.pcap");
    let mut capture = tools::capture(&cfg.server.port, &raw, &log_path)?;
    say(&format!("capturing on {} (the OVS port of {})", cfg.server.port, cfg.server.netns));

    // The first window starts on a window boundary at least a second from now.
    let w_ns = cfg.window_s * 1_000_000_000;
    let start_ns = (now_ns() / w_ns + 2) * w_ns;
    let start_s = start_ns / 1_000_000_000;
    let end_ns = start_ns + seconds * 1_000_000_000;
    let noise = Arc::new(plan::noise(cfg.seed, windows as usize));
    let mut load = Load::start(LoadPlan {
        netns: client_ns.clone(),
        server: cfg.server.ip,
        pool: client_pool.clone(),
        start_ns,
        seconds,
        window_s: cfg.window_s,
        period_s: cfg.period_s,
        peak: cfg.peak_rate,
        noise,
        seed: cfg.seed,
    });
    say(&format!(
        "{windows} windows of {} s from {start_s}, {} attack episodes, train until {}",
        cfg.window_s,
        planned.len(),
        start_s + half
    ));

    let target = Target {
        netns: cfg.clients.netns.clone(),
        iface: "eth0".to_owned(),
        mac: cfg.clients.mac.clone(),
        ip: cfg.server.ip,
        target_mac: cfg.server.mac.clone(),
    };
    let mut ran = Vec::new();
    let mut last_note = start_ns;
    for (i, p) in planned.iter().enumerate() {
        let src = attacker_pool[i % attacker_pool.len()];
        let at = start_ns + p.at_s * 1_000_000_000;
        wait_until(at, interrupted, &mut |now| {
            if now >= last_note + 15_000_000_000 {
                last_note = now;
                say(&progress(now, start_ns, seconds, &load, i, planned.len()));
            }
        })?;
        say(&format!("t={:>4} s  {} for {} s from {src}", p.at_s, p.kind, p.secs));
        let r = attack(p, &target, src, &client_ns, &log, &log_path, cfg.seed + i as u64, interrupted)?;
        ran.push(r);
    }
    wait_until(end_ns + 500_000_000, interrupted, &mut |now| {
        if now >= last_note + 15_000_000_000 {
            last_note = now;
            say(&progress(now, start_ns, seconds, &load, planned.len(), planned.len()));
        }
    })?;
    for problem in load.stop() {
        say(&format!("warning: {problem}"));
    }
    capture.stop();
    let served = services.served.load(Ordering::Relaxed);
    drop(services);
    let (requests, failed) = (load.tally.requests.load(Ordering::Relaxed), load.tally.failed.load(Ordering::Relaxed));
    if requests == 0 || failed * 10 > requests {
        return Err(TrafficError::BenignFailing { failed, total: requests });
    }

    let out = cfg.out.join("capture.pcap");
    let trimmed = output::trim(&raw, &out, start_ns, end_ns, w_ns)?;
    let empty_windows: Vec<u64> = (0..windows)
        .filter(|&i| trimmed.per_window.get(i as usize) == Some(&0))
        .map(|i| start_s + i * cfg.window_s)
        .collect();
    if !empty_windows.is_empty() {
        say(&format!(
            "warning: {} window(s) without a packet (a stalled machine or switch), first at {}",
            empty_windows.len(),
            empty_windows[0]
        ));
    }
    let _ = std::fs::remove_file(&raw);
    let labels = plan::labels(start_s, cfg.window_s, windows as usize, &ran);
    let names: Vec<Option<&str>> = labels.iter().map(|l| l.map(Kind::name)).collect();
    palisade_nad::labels::write(&cfg.out, start_s, cfg.window_s, &names).map_err(TrafficError::Labels)?;
    let split = (half / cfg.window_s) as usize;
    let counted = dataset::count(&labels, split, Kind::ALL, &held, ran.iter().map(|r| r.kind));
    let capture_bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let summary = Summary {
        header: DatasetHeader {
            format: "palisade lab NAD dataset, version 1",
            seed: cfg.seed,
            vm: cfg.server.ip,
            window: cfg.window_s,
            start: start_s,
            end: start_s + seconds,
            windows,
            train_until: start_s + half,
            train_kinds: train,
            held_back_kinds: held,
            attack_share_target: cfg.share,
        },
        period: cfg.period_s,
        counts: Counts {
            packets: trimmed.kept,
            capture_bytes,
            packets_outside: trimmed.outside,
            abnormal_windows: counted.abnormal_windows(),
            empty_windows,
            train: counted.train,
            test: counted.test,
        },
        kinds: counted.kinds,
        benign: Benign { peak_rate: cfg.peak_rate, clients: client_pool, requests, failed, served },
        episodes: ran,
    };
    output::write_json(&cfg.out, &summary)?;
    Ok(summary)
}

fn progress(now: u64, start_ns: u64, seconds: u64, load: &Load, done: usize, total: usize) -> String {
    let t = now.saturating_sub(start_ns) / 1_000_000_000;
    format!(
        "t={t:>4}/{seconds} s  benign requests {}  attacks {done}/{total}",
        load.tally.requests.load(Ordering::Relaxed)
    )
}

/// Sleeps until `until_ns`, calling `tick` with the time now and then; fails when interrupted.
fn wait_until(until_ns: u64, interrupted: &AtomicBool, tick: &mut dyn FnMut(u64)) -> Result<(), TrafficError> {
    loop {
        if interrupted.load(Ordering::Relaxed) {
            return Err(TrafficError::Interrupted);
        }
        let now = now_ns();
        if now >= until_ns {
            return Ok(());
        }
        tick(now);
        std::thread::sleep(Duration::from_nanos((until_ns - now).min(100_000_000)));
    }
}

/// Runs one episode and returns its host-clock start and end.
#[allow(clippy::too_many_arguments)]
fn attack(
    p: &Planned,
    target: &Target,
    src: Ipv4Addr,
    client_ns: &std::path::Path,
    log: &std::fs::File,
    log_path: &std::path::Path,
    seed: u64,
    interrupted: &AtomicBool,
) -> Result<Ran, TrafficError> {
    let secs_ns = p.secs * 1_000_000_000;
    let Some(argv) = tools::attack_argv(p.kind, target, src, p.secs) else {
        // URL probing: the in-process client, inside the client namespace.
        let start_ns = now_ns();
        let (server, until) = (target.ip, start_ns + secs_ns);
        let stop = Arc::new(AtomicBool::new(false));
        let (answered, sent) =
            palisade_host::netns::run_in(client_ns, move || clients::probe(src, server, until, 60.0, seed, &stop))?;
        let end_ns = now_ns();
        if interrupted.load(Ordering::Relaxed) {
            return Err(TrafficError::Interrupted);
        }
        if answered * 2 < sent {
            return Err(TrafficError::ToolFailed {
                command: "URL prober".to_owned(),
                status: format!("{answered} of {sent} requests answered"),
                stderr: String::new(),
            });
        }
        let command = format!("in-process URL prober: {sent} GETs for paths that do not exist, ~60/s");
        return Ok(Ran { kind: p.kind, start_ns, end_ns, source: src, command });
    };
    let start_ns = now_ns();
    let mut proc: Proc = tools::start_attack(&argv, log)?;
    // Floods run until stopped; scans end by themselves at about the planned time (their rate
    // is set from it), and are cut off if they take much longer.
    let flood = matches!(p.kind, Kind::SynFlood | Kind::UdpFlood);
    let limit = start_ns + if flood { secs_ns } else { secs_ns * 3 };
    let mut status = None;
    while now_ns() < limit {
        if interrupted.load(Ordering::Relaxed) {
            return Err(TrafficError::Interrupted);
        }
        if let Some(s) = proc.exited() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let ended_early = status.is_some();
    let status = match status {
        Some(s) => Some(s),
        None => proc.stop(),
    };
    let end_ns = now_ns();
    // A flood that ends by itself failed; a scan fails by its exit status unless it was cut off.
    let failed = match status {
        Some(s) => ended_early && (flood || !s.success()),
        None => true,
    };
    if failed {
        std::thread::sleep(Duration::from_millis(50));
        return Err(TrafficError::ToolFailed {
            command: proc.command.clone(),
            status: status.map_or_else(|| "not reaped".to_owned(), |s| s.to_string()),
            stderr: tools::log_tail(log_path, 600),
        });
    }
    Ok(Ran { kind: p.kind, start_ns, end_ns, source: src, command: proc.command.clone() })
}
