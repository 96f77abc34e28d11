//! Live capture on a veth pair between two namespaces this test creates (`nadt-a`, `nadt-b`,
//! removed afterwards): known packets are sent within one window, and the row for that window
//! must arrive as soon as the window closes, with the values worked out from the packets sent.
//! Needs root (CI runs as root); without it the test fails, it does not skip.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use palisade_nad::live::{capture, LiveOptions};
use palisade_nad::{Config, Row, RowSink, Seconds, Series};

const NS_A: &str = "nadt-a";
const NS_B: &str = "nadt-b";
const V: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 1);
const B1: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 2);
const B2: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 3);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("the ip command (iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// The two namespaces and the veth between them; removed on drop.
struct Lab;

impl Lab {
    fn up() -> Lab {
        Lab::down();
        ip(&["netns", "add", NS_A]);
        ip(&["netns", "add", NS_B]);
        ip(&["-n", NS_A, "link", "add", "nadt-a0", "type", "veth", "peer", "name", "nadt-b0", "netns", NS_B]);
        for (ns, dev) in [(NS_A, "nadt-a0"), (NS_B, "nadt-b0")] {
            ip(&["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        ip(&["-n", NS_A, "addr", "add", "10.231.0.1/24", "dev", "nadt-a0"]);
        ip(&["-n", NS_B, "addr", "add", "10.231.0.2/24", "dev", "nadt-b0"]);
        ip(&["-n", NS_B, "addr", "add", "10.231.0.3/24", "dev", "nadt-b0"]);
        Lab
    }

    fn down() {
        for ns in [NS_A, NS_B] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        Lab::down();
    }
}

/// Runs `f` on a thread that has entered namespace `ns` (setns is per thread).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    thread::spawn(move || {
        let fd = File::open(&path).expect("namespace file");
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

/// Rows as they arrive, with their arrival time.
struct Channel(mpsc::Sender<(Row, SystemTime)>);

impl RowSink for Channel {
    type Error = std::io::Error;
    fn row(&mut self, row: &Row) -> std::io::Result<()> {
        let _ = self.0.send((*row, SystemTime::now()));
        Ok(())
    }
}

/// A TCP SYN with a correct checksum (the receiver verifies it before answering with a RST).
fn syn_segment(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..8].copy_from_slice(&12345u32.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = 0x02;
    h[14..16].copy_from_slice(&1024u16.to_be_bytes());
    let mut sum: u32 = 0;
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    for chunk in pseudo.chunks(2).chain(h.chunks(2)) {
        sum += u32::from(u16::from_be_bytes([chunk[0], chunk[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    h[16..18].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    h
}

fn entropy(counts: &[f64]) -> f64 {
    let total: f64 = counts.iter().sum();
    -counts.iter().map(|c| c / total).map(|p| p * p.log2()).sum::<f64>()
}

#[test]
fn live_capture_on_a_veth_emits_each_window_as_it_closes() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root (CI runs as root): it creates namespaces");
    let _lab = Lab::up();
    // Receivers so the UDP datagrams draw no ICMP port-unreachable replies.
    let receivers =
        in_netns(NS_A, || (7001..=7003).map(|p| UdpSocket::bind((V, p)).expect("bind receiver")).collect::<Vec<_>>())
            .join()
            .expect("receivers");

    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let cap = in_netns(NS_A, move || {
        let cfg = Config {
            vms: vec![IpAddr::V4(V)],
            window: Seconds::from_secs(1),
            reorder: Seconds::from_nanos(100_000_000),
            series: Series::Open,
        };
        capture(&LiveOptions::new("nadt-a0"), &cfg, &mut Channel(tx), &stop2)
    });
    thread::sleep(Duration::from_millis(500)); // let libpcap open the ring

    // Start early in a second so that everything lands in one window.
    let frac = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").subsec_nanos();
    let wait = if frac < 100_000_000 { 100_000_000 - frac } else { 1_100_000_000 - frac };
    thread::sleep(Duration::from_nanos(u64::from(wait)));
    let sent_at = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    in_netns(NS_B, || {
        let payload = [0x5au8; 100];
        let b1 = UdpSocket::bind((B1, 5000)).expect("bind b1");
        let b2 = UdpSocket::bind((B2, 5000)).expect("bind b2");
        for port in [7001, 7002, 7003, 7001] {
            b1.send_to(&payload, (V, port)).expect("send");
        }
        b2.send_to(&payload, (V, 7001)).expect("send");
        let raw = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::RAW, Some(socket2::Protocol::TCP))
            .expect("raw TCP socket");
        raw.bind(&SocketAddr::V4(SocketAddrV4::new(B1, 0)).into()).expect("bind raw");
        raw.send_to(&syn_segment(B1, V, 40000, 8001), &SocketAddr::V4(SocketAddrV4::new(V, 0)).into())
            .expect("send SYN");
    })
    .join()
    .expect("sender");
    let window = sent_at.as_secs();

    // The packets (Ethernet sizes): 5 UDP of 14+20+8+100 = 142 bytes in, SYN in (54), the
    // kernel's RST-ACK out (54). Peers: B1 6 packets, B2 1. Clients: B1 {7001,7002,7003,8001},
    // B2 {7001}. Inbound ports: 7001 x3, 7002, 7003, 8001.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rows = Vec::new();
    while rows.len() < 2 && Instant::now() < deadline {
        if let Ok(r) = rx.recv_timeout(Duration::from_millis(200)) {
            rows.push(r);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let report = cap.join().expect("capture thread").expect("capture");
    drop(receivers);
    assert!(rows.len() >= 2, "rows: {rows:?}, report: {report}");
    let (row, arrived) = rows[0];
    assert_eq!(row.window_start_ns, window * 1_000_000_000, "the window the packets were sent in");
    let f = row.features;
    let (n, bytes) = (7.0, 5.0 * 142.0 + 54.0 + 54.0);
    assert_eq!((f.pps, f.bps, f.ip_count, f.syn_count), (n, bytes, 2, 1), "{f:?}");
    assert!((f.ip_entro - entropy(&[6.0, 1.0])).abs() < 1e-12);
    assert!((f.access_port - entropy(&[4.0, 1.0])).abs() < 1e-12);
    assert!((f.service_port_entro - entropy(&[3.0, 1.0, 1.0, 1.0])).abs() < 1e-12);
    assert_eq!((f.syn_rate, f.packet_per_ip, f.syn_per_ip, f.bytes_per_ip), (1.0 / n, n / 2.0, 0.5, bytes / 2.0));
    // Emitted as soon as it closed: window end + 0.1 s allowance + libpcap's 50 ms timeout.
    let end = Duration::from_secs(window + 1);
    let lag = arrived.duration_since(UNIX_EPOCH).expect("clock").saturating_sub(end);
    assert!(lag < Duration::from_millis(600), "row came {lag:?} after its window closed");
    // The next window had no traffic: a zero row, also on time.
    assert_eq!(rows[1].0.window_start_ns, (window + 1) * 1_000_000_000);
    assert_eq!(rows[1].0.features, palisade_nad::Features::default());
}
