//! The port scanner's verdicts, against listeners on loopback in this process's own namespace
//! (entered through the same setns path task spaces use). Needs root for setns (CI runs as root).

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::Path;
use std::time::Duration;

use palisade_scan::{scan_in, PortResult, PortState, Proto, ScanSpec};

#[test]
fn open_closed_and_silent_ports_are_told_apart() {
    let tcp_open = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let tcp_open_port = tcp_open.local_addr().unwrap().port();
    let tcp_closed_port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port(); // dropped: closed
    let udp_echo = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let udp_echo_port = udp_echo.local_addr().unwrap().port();
    let udp_closed_port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        if let Ok((_, from)) = udp_echo.recv_from(&mut buf) {
            let _ = udp_echo.send_to(b"hi", from);
        }
    });

    let report = scan_in(
        Path::new("/proc/self/ns/net"),
        ScanSpec {
            target: Ipv4Addr::LOCALHOST,
            tcp: vec![tcp_open_port, tcp_closed_port],
            udp: vec![udp_echo_port, udp_closed_port],
            concurrency: 2,
            timeout: Duration::from_millis(500),
        },
    )
    .unwrap();

    let state =
        |proto, port| report.ports.iter().find(|p: &&PortResult| p.proto == proto && p.port == port).unwrap().state;
    assert_eq!(report.ports.len(), 4);
    assert_eq!(state(Proto::Tcp, tcp_open_port), PortState::Open);
    assert_eq!(state(Proto::Tcp, tcp_closed_port), PortState::Closed);
    assert_eq!(state(Proto::Udp, udp_echo_port), PortState::Open);
    assert_eq!(state(Proto::Udp, udp_closed_port), PortState::Closed);
    drop(tcp_open);
}

#[test]
fn an_empty_scan_is_refused() {
    let spec = ScanSpec {
        target: Ipv4Addr::LOCALHOST,
        tcp: vec![],
        udp: vec![],
        concurrency: 1,
        timeout: Duration::from_millis(10),
    };
    let err = scan_in(Path::new("/proc/self/ns/net"), spec).unwrap_err();
    assert_eq!(err.to_string(), "a scan needs at least one port and a concurrency of at least 1");
}
