//! `port-scan`: TCP connect and UDP probe scanning with sockets opened inside a task space.
//!
//! One process serves many task spaces: each scan runs a current-thread tokio runtime on its
//! own thread, which first enters the task's namespace (`netns::run_in`). Every socket is
//! therefore created in that namespace and can reach only what the task's flows allow.
//!
//! UDP: a reply datagram means `open`; silence means `open|filtered`. An ICMP port-unreachable
//! cannot be matched to the socket through the virtual address (its quoted header names the
//! VM's real address, which the switch cannot rewrite), so UDP never reports `closed` here.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::netns::{run_in, NetnsError};

pub use palisade_api::scans::{PortResult, PortState, Proto};

/// What to scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSpec {
    /// The address the task sees its target at (`vir.ip`).
    pub target: Ipv4Addr,
    /// TCP ports.
    pub tcp: Vec<u16>,
    /// UDP ports.
    pub udp: Vec<u16>,
    /// Probes in flight at once.
    pub concurrency: usize,
    /// How long one probe waits.
    pub timeout: Duration,
}

/// A finished scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    /// Every probe, sorted by protocol and port.
    pub ports: Vec<PortResult>,
    /// How long the scan took, in seconds.
    pub seconds: f64,
}

impl ScanReport {
    /// The open ports.
    pub fn open(&self) -> impl Iterator<Item = &PortResult> {
        self.ports.iter().filter(|p| p.state == PortState::Open)
    }
}

/// Why a scan could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The task's namespace could not be entered.
    #[error("could not run the scan inside the task space")]
    Netns(#[from] NetnsError),
    /// The runtime could not be built.
    #[error("could not start the scan runtime")]
    Runtime(#[source] std::io::Error),
    /// A socket could not be opened.
    #[error("could not open a probe socket")]
    Socket(#[source] std::io::Error),
    /// Nothing to scan or no concurrency.
    #[error("a scan needs at least one port and a concurrency of at least 1")]
    Empty,
}

/// Scans `spec` from inside the network namespace at `netns` (blocks until done).
pub fn scan_in(netns: &Path, spec: ScanSpec) -> Result<ScanReport, EngineError> {
    if spec.concurrency == 0 || (spec.tcp.is_empty() && spec.udp.is_empty()) {
        return Err(EngineError::Empty);
    }
    run_in(netns, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(EngineError::Runtime)?;
        rt.block_on(scan(spec))
    })?
}

async fn scan(spec: ScanSpec) -> Result<ScanReport, EngineError> {
    let started = Instant::now();
    let limit = Arc::new(Semaphore::new(spec.concurrency));
    let mut set = JoinSet::new();
    let probes = spec.tcp.iter().map(|p| (Proto::Tcp, *p)).chain(spec.udp.iter().map(|p| (Proto::Udp, *p)));
    for (proto, port) in probes {
        let limit = limit.clone();
        let addr = SocketAddr::from((spec.target, port));
        let timeout = spec.timeout;
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let state = match proto {
                Proto::Tcp => tcp_probe(addr, timeout).await,
                Proto::Udp => udp_probe(addr, timeout).await,
            }?;
            Ok::<_, EngineError>(PortResult { proto, port, state })
        });
    }
    let mut ports = Vec::new();
    while let Some(joined) = set.join_next().await {
        // A probe task only ends by returning (never aborted; panics propagate as errors).
        ports.push(joined.map_err(|e| EngineError::Socket(std::io::Error::other(e)))??);
    }
    ports.sort();
    Ok(ScanReport { ports, seconds: started.elapsed().as_secs_f64() })
}

/// Connection attempts per TCP port before it counts as filtered. The kernel resends a SYN only
/// after a second, past a typical probe timeout, so one lost SYN (a busy switch, a port that
/// has just joined it) would otherwise hide an open port; nmap retransmits likewise.
const TCP_ATTEMPTS: u32 = 2;

async fn tcp_probe(addr: SocketAddr, timeout: Duration) -> Result<PortState, EngineError> {
    for _ in 0..TCP_ATTEMPTS {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => continue,
            Ok(Ok(_stream)) => return Ok(PortState::Open),
            Ok(Err(e)) => return classify(e),
        }
    }
    Ok(PortState::Filtered)
}

async fn udp_probe(addr: SocketAddr, timeout: Duration) -> Result<PortState, EngineError> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await.map_err(EngineError::Socket)?;
    if let Err(e) = sock.connect(addr).await {
        return classify(e);
    }
    if let Err(e) = sock.send(&[]).await {
        return classify(e);
    }
    let mut buf = [0u8; 512];
    match tokio::time::timeout(timeout, sock.recv(&mut buf)).await {
        Err(_) => Ok(PortState::OpenFiltered),
        Ok(Ok(_)) => Ok(PortState::Open),
        Ok(Err(e)) => classify(e),
    }
}

fn classify(e: std::io::Error) -> Result<PortState, EngineError> {
    match e.kind() {
        ErrorKind::ConnectionRefused => Ok(PortState::Closed),
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => Ok(PortState::Unreachable),
        ErrorKind::TimedOut => Ok(PortState::Filtered),
        _ => Err(EngineError::Socket(e)),
    }
}
