//! The clients' side: benign workers whose request rate follows the compressed day, and the
//! URL prober. Both run on threads inside the client host's namespace and send from addresses
//! of the run's pools (added to that host for the run).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use palisade_rng::Rng;
use socket2::{Domain, Socket, Type};

use crate::plan::daily_rate;
use crate::services::{HTTP_PORTS, PATHS, UDP_PORT};

/// Nanoseconds since the Unix epoch on the host clock (the clock tcpdump stamps packets with).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// What the benign load does.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The client host's namespace file.
    pub netns: PathBuf,
    /// The service VM.
    pub server: Ipv4Addr,
    /// Client addresses (the first ones are the busiest).
    pub pool: Vec<Ipv4Addr>,
    /// First window's start, ns since the epoch.
    pub start_ns: u64,
    /// Length of the run in seconds.
    pub seconds: u64,
    /// Window length in seconds (the noise changes per window).
    pub window_s: u64,
    /// Length of the compressed day in seconds.
    pub period_s: u64,
    /// Requests per second at the daily peak.
    pub peak: f64,
    /// Noise factor per window.
    pub noise: Arc<Vec<f64>>,
    /// The seed.
    pub seed: u64,
}

/// Requests made and failed.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests tried.
    pub requests: AtomicU64,
    /// Requests that got no answer.
    pub failed: AtomicU64,
}

/// Benign workers; dropping stops and joins them.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Option<String>>>,
    /// What they did.
    pub tally: Arc<Tally>,
}

/// Worker threads: the rate is split between them so a slow request does not stall the cycle
/// (one more thread is the health checker).
const WORKERS: u64 = 4;

impl Load {
    /// Starts the workers; they wait for the first window and stop after the last.
    pub fn start(plan: LoadPlan) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let threads = (0..=WORKERS)
            .map(|i| {
                let (plan, stop, tally) = (plan.clone(), stop.clone(), tally.clone());
                std::thread::spawn(move || {
                    let ns = plan.netns.clone();
                    let run = move || worker(&plan, i, &stop, &tally);
                    let entered = palisade_host::netns::run_in(&ns, run);
                    entered.err().map(|e| format!("benign worker {i} could not enter {}: {e}", ns.display()))
                })
            })
            .collect();
        Load { stop, threads, tally }
    }

    /// Stops the workers and waits for them; returns what went wrong with any of them (one line
    /// each: a worker that could not enter the namespace sent nothing).
    pub fn stop(&mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .drain(..)
            .filter_map(|t| t.join().unwrap_or_else(|_| Some("a benign worker panicked".into())))
            .collect()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Sleeps until `until_ns` in short steps; false when told to stop first.
fn sleep_until(until_ns: u64, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = now_ns();
        if now >= until_ns {
            return true;
        }
        std::thread::sleep(Duration::from_nanos((until_ns - now).min(50_000_000)));
    }
}

/// The health checker (a load balancer's, say): `GET /health` from the first client address
/// twice a second, day and night, so no window of the service is silent.
fn health(plan: &LoadPlan, stop: &AtomicBool, tally: &Tally) {
    let end_ns = plan.start_ns + plan.seconds * 1_000_000_000;
    let mut at = plan.start_ns + 250_000_000;
    while at < end_ns && sleep_until(at, stop) {
        let ok = http_get(plan.pool[0], SocketAddr::from((plan.server, HTTP_PORTS[0])), PATHS[6]);
        tally.requests.fetch_add(1, Ordering::Relaxed);
        if !ok {
            tally.failed.fetch_add(1, Ordering::Relaxed);
        }
        at += 500_000_000;
    }
}

fn worker(plan: &LoadPlan, index: u64, stop: &AtomicBool, tally: &Tally) {
    if index == WORKERS {
        return health(plan, stop, tally);
    }
    let mut rng = Rng::stream(plan.seed, 100 + index);
    let end_ns = plan.start_ns + plan.seconds * 1_000_000_000;
    let mut at = plan.start_ns;
    loop {
        let t = at.saturating_sub(plan.start_ns) as f64 / 1e9;
        let w = ((t as u64) / plan.window_s) as usize;
        let rate = daily_rate(t, plan.period_s as f64, plan.peak) * plan.noise.get(w).copied().unwrap_or(1.0);
        let gap = rng.exp(1.0 / (rate / WORKERS as f64).max(1e-3));
        at += (gap * 1e9) as u64;
        if at >= end_ns || !sleep_until(at, stop) {
            return;
        }
        // Clients' shares are skewed: a few busy ones, a long tail.
        let src = plan.pool[((rng.unit().powi(2)) * plan.pool.len() as f64) as usize];
        let pick = rng.unit();
        let ok = if pick < 0.70 {
            http_get(src, SocketAddr::from((plan.server, HTTP_PORTS[0])), PATHS[rng.range(0, 5) as usize])
        } else if pick < 0.78 {
            http_get(src, SocketAddr::from((plan.server, HTTP_PORTS[1])), PATHS[rng.range(2, 3) as usize])
        } else {
            udp_query(src, SocketAddr::from((plan.server, UDP_PORT)), &mut rng)
        };
        tally.requests.fetch_add(1, Ordering::Relaxed);
        if !ok {
            tally.failed.fetch_add(1, Ordering::Relaxed);
        }
        // Clients do not queue up: after a stall (a slow answer, a busy switch) the requests
        // missed are not all sent at once.
        at = at.max(now_ns().saturating_sub(100_000_000));
    }
}

/// One HTTP GET from `src`; true when an answer came.
pub fn http_get(src: Ipv4Addr, dst: SocketAddr, path: &str) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        s.bind(&SocketAddr::from((src, 0)).into())?;
        s.connect_timeout(&dst.into(), Duration::from_millis(500))?;
        let mut s: TcpStream = s.into();
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: web1.lab\r\nUser-Agent: palisade-lab\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())?;
        let mut reply = Vec::new();
        s.read_to_end(&mut reply)?;
        Ok(reply.starts_with(b"HTTP/1.1 "))
    };
    attempt().unwrap_or(false)
}

fn udp_query(src: Ipv4Addr, dst: SocketAddr, rng: &mut Rng) -> bool {
    let mut attempt = || -> std::io::Result<bool> {
        let s = UdpSocket::bind((src, 0))?;
        s.set_read_timeout(Some(Duration::from_millis(300)))?;
        let name = format!("host{}.lab.example", rng.range(0, 40));
        let mut q = vec![(rng.next_u64() & 0xff) as u8, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(name.as_bytes());
        s.send_to(&q, dst)?;
        let mut buf = [0u8; 512];
        Ok(s.recv_from(&mut buf)?.0 == q.len())
    };
    attempt().unwrap_or(false)
}

/// Words URL probers try (admin pages, leaked files, known vulnerable paths).
const PROBES: [&str; 12] = [
    "admin",
    "wp-login.php",
    ".git/config",
    ".env",
    "backup.zip",
    "phpmyadmin/index.php",
    "cgi-bin/test.cgi",
    "server-status",
    "config.php.bak",
    "login.aspx",
    "old/index.html",
    "api/v1/debug",
];

/// Requests for paths that do not exist, from `src`, at about `rate` per second until
/// `until_ns` (runs on the calling thread, which must be inside the client namespace).
/// Returns how many were answered (404) and how many were sent.
pub fn probe(src: Ipv4Addr, server: Ipv4Addr, until_ns: u64, rate: f64, seed: u64, stop: &AtomicBool) -> (u64, u64) {
    let mut rng = Rng::stream(seed, 7);
    let (mut answered, mut sent) = (0, 0);
    let mut at = now_ns();
    while at < until_ns && sleep_until(at, stop) {
        let path = format!("/{}{}", PROBES[rng.below(PROBES.len())], rng.range(0, 999));
        let path = if rng.unit() < 0.5 { path } else { format!("/{}", PROBES[rng.below(PROBES.len())]) };
        sent += 1;
        if http_get(src, SocketAddr::from((server, HTTP_PORTS[0])), &path) {
            answered += 1;
        }
        at += (1e9 / rate) as u64;
    }
    (answered, sent)
}
