//! `palisade lab traffic`: its arguments, and what it prints while the library makes the lab
//! dataset (`palisade_traffic::run`).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use palisade_traffic::{lab_host, Host, Kind, TrafficConfig};

/// Make a labelled dataset for the anomaly detector with real tools in the lab.
///
/// The service VM (alpha/web1 by default) runs a small HTTP server (ports 80 and 8080) and a
/// UDP echo responder (port 53). Clients in another lab namespace (alpha/web2), from 24
/// addresses added there for the run, send requests at a rate that follows a smooth daily
/// cycle with noise; time is compressed, one second standing for one minute (a day is
/// --period seconds). On a seeded schedule, real tools attack the VM from 6 more addresses:
/// hping3 SYN and UDP floods (1000 packets/s), nmap and masscan SYN scans of ports 1-1000,
/// and URL probing (GETs for paths that do not exist). Kinds in --held-back appear only in the
/// second half (after train_until), as unseen attacks. tcpdump captures the VM's OVS port.
///
/// Writes DIR/capture.pcap (the run's windows only), DIR/labels.csv (window_start,label,attack:
/// a window is 1 when an attack ran during it, by the host clock the capture is stamped with),
/// DIR/dataset.json (span, train_until, kinds, every episode with its command line and times)
/// and DIR/tools.log. Then train and evaluate with:
///
///   palisade nad train --pcap DIR/capture.pcap --labels DIR/labels.csv --vm 198.18.1.10 --window 1 --train-until T --model M
///
/// Needs root, the lab up (`palisade lab up`) and hping3, masscan, nmap and tcpdump installed
/// (apt-get install hping3 masscan nmap tcpdump). Every process and address the run starts
/// is removed when it ends, fails or is interrupted (Ctrl-C).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TrafficArgs {
    /// Directory to write into (created if missing).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Length of the run in minutes of wall-clock time (each second is one window by default).
    #[arg(long, default_value_t = 30)]
    pub(crate) minutes: u64,
    /// Window length in seconds.
    #[arg(long, default_value_t = 1)]
    pub(crate) window: u64,
    /// Length of one compressed day in seconds (1440: a second per minute).
    #[arg(long, default_value_t = 1440)]
    pub(crate) period: u64,
    /// Seed of the attack schedule and the benign load.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Attack kinds held back for the test part (comma-separated; kinds: syn_flood, udp_flood,
    /// nmap, masscan_tcp, url_probe).
    #[arg(long, value_delimiter = ',', default_value = "udp_flood,url_probe")]
    pub(crate) held_back: Vec<String>,
    /// Wanted share of attack seconds in each part (each kind of a part runs at least once).
    #[arg(long, default_value_t = 0.06)]
    pub(crate) share: f64,
    /// Benign requests per second at the daily peak (15% of it at night).
    #[arg(long, default_value_t = 40.0)]
    pub(crate) peak_rate: f64,
    /// The service VM (monitored): a lab host as `lab status` names its namespace, with or
    /// without the lab's namespace prefix (`alpha-web1` is `pal-alpha-web1` in the default lab).
    #[arg(long, default_value = "alpha-web1")]
    pub(crate) server: String,
    /// The lab host the clients and attackers run in (same subnet as the server).
    #[arg(long, default_value = "alpha-web2")]
    pub(crate) clients: String,
}

/// Runs it: `hosts` are the lab's hosts (namespace, port, address, MAC); the two named by the
/// arguments are used, and every address in the list is kept out of the run's pools. Progress
/// goes to stderr; Ctrl-C and SIGTERM stop the run cleanly.
pub(crate) fn run(args: &TrafficArgs, hosts: &[Host]) -> anyhow::Result<()> {
    let held_back =
        args.held_back.iter().filter(|s| !s.trim().is_empty()).map(|s| Kind::parse(s)).collect::<Result<_, _>>()?;
    let cfg = TrafficConfig {
        out: args.out.clone(),
        seconds: args.minutes * 60,
        window_s: args.window,
        period_s: args.period,
        seed: args.seed,
        held_back,
        share: args.share,
        peak_rate: args.peak_rate,
        server: lab_host(hosts, &args.server)?,
        clients: lab_host(hosts, &args.clients)?,
        taken: hosts.iter().map(|h| h.ip).collect(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("could not install the Ctrl-C handler")?;
    }
    let s = palisade_traffic::run(&cfg, &stop, &mut |m| eprintln!("  {m}"))?;
    eprintln!(
        "wrote {}: {} packets in {} windows, {} abnormal ({} in training, {} in test); train until {}",
        cfg.out.display(),
        s.counts.packets,
        s.header.windows,
        s.counts.abnormal_windows,
        s.counts.train.abnormal_windows,
        s.counts.test.abnormal_windows,
        s.header.train_until
    );
    eprintln!(
        "train: palisade nad train --pcap {0}/capture.pcap --labels {0}/labels.csv --vm {1} --window {2} --train-until {3} --model MODEL",
        cfg.out.display(),
        s.header.vm,
        s.header.window,
        s.header.train_until
    );
    Ok(())
}
