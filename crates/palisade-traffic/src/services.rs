//! The service VM's side: a small HTTP server (ports 80 and 8080) and a UDP echo responder
//! (port 53, DNS-like), each on its own thread whose sockets were opened inside the VM's
//! namespace. They stop when the shared flag is set.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::TrafficError;

/// TCP ports the HTTP server listens on.
pub const HTTP_PORTS: [u16; 2] = [80, 8080];
/// The UDP responder's port.
pub const UDP_PORT: u16 = 53;
/// Paths the server knows (everything else is 404).
pub const PATHS: [&str; 7] =
    ["/", "/index.html", "/api/items", "/api/user", "/static/app.js", "/static/site.css", "/health"];

/// The running services; dropping stops and joins them.
#[derive(Debug)]
pub struct Services {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Requests answered (HTTP and UDP).
    pub served: Arc<AtomicU64>,
}

impl Services {
    /// Opens the sockets inside `netns` (a path under `/run/netns`) and starts serving.
    pub fn start(netns: &Path) -> Result<Services, TrafficError> {
        let name = netns.display().to_string();
        let (http, udp) = palisade_host::netns::run_in(netns, || {
            let http: Result<Vec<TcpListener>, (u16, std::io::Error)> =
                HTTP_PORTS.iter().map(|&p| TcpListener::bind((Ipv4Addr::UNSPECIFIED, p)).map_err(|e| (p, e))).collect();
            (http, UdpSocket::bind((Ipv4Addr::UNSPECIFIED, UDP_PORT)))
        })?;
        let socket = |what: String, source| TrafficError::Socket { what, netns: name.clone(), source };
        let http = http.map_err(|(p, e)| socket(format!("the HTTP listener on port {p}"), e))?;
        let udp = udp.map_err(|e| socket(format!("the UDP responder on port {UDP_PORT}"), e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for l in http {
            l.set_nonblocking(true).map_err(|e| socket("a listener".to_owned(), e))?;
            let (stop, served) = (stop.clone(), served.clone());
            threads.push(std::thread::spawn(move || serve_http(&l, &stop, &served)));
        }
        udp.set_read_timeout(Some(Duration::from_millis(50))).map_err(|e| socket("the UDP responder".to_owned(), e))?;
        let (s, n) = (stop.clone(), served.clone());
        threads.push(std::thread::spawn(move || serve_udp(&udp, &s, &n)));
        Ok(Services { stop, threads, served })
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn serve_http(listener: &TcpListener, stop: &AtomicBool, served: &AtomicU64) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if answer(stream).is_ok() {
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Reads one request head and answers 200 with a body for a known path, else 404.
fn answer(mut s: TcpStream) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_millis(300)))?;
    let mut buf = [0u8; 2048];
    let mut len = 0;
    while len < buf.len() {
        let n = s.read(&mut buf[len..])?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let reply = if PATHS.contains(&path) {
        let body = format!("<html><body>palisade lab service: {path}</body></html>\n{}", "x".repeat(path.len() * 40));
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
    };
    s.write_all(reply.as_bytes())
}

fn serve_udp(sock: &UdpSocket, stop: &AtomicBool, served: &AtomicU64) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, peer)) = sock.recv_from(&mut buf) {
            if sock.send_to(&buf[..n], peer).is_ok() {
                served.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
