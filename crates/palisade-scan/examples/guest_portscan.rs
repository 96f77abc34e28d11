//! Palisade's port scanner as a stand-alone program, for the multi-VM baseline of the Table 2
//! benchmark (`palisade-bench table2`): a scanner VM per tenant runs it against its tenant's VM
//! from inside the tenant's network, the same engine the task spaces run.
//!
//! `guest_portscan TARGET_IP FIRST_PORT LAST_PORT SECONDS` scans the range over and over for
//! SECONDS and prints `PALISADE-SCAN <round> <open ports> (<closed> closed, <other> other)`
//! after each round.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use palisade_scan::{scan_in, PortState, ScanSpec};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: guest_portscan TARGET_IP FIRST_PORT LAST_PORT SECONDS";
    let (Some(target), Some(first), Some(last), Some(seconds)) = (
        args.get(1).and_then(|a| a.parse::<Ipv4Addr>().ok()),
        args.get(2).and_then(|a| a.parse::<u16>().ok()),
        args.get(3).and_then(|a| a.parse::<u16>().ok()),
        args.get(4).and_then(|a| a.parse::<u64>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut round = 0;
    while Instant::now() < until {
        round += 1;
        let spec = ScanSpec {
            target,
            tcp: (first..=last).collect(),
            udp: Vec::new(),
            concurrency: 64,
            timeout: Duration::from_millis(2000),
        };
        match scan_in(Path::new("/proc/self/ns/net"), spec) {
            Ok(report) => {
                let open: Vec<String> = report.open().map(|p| p.port.to_string()).collect();
                let closed = report.ports.iter().filter(|p| p.state == PortState::Closed).count();
                let other = report.ports.len() - open.len() - closed;
                println!("PALISADE-SCAN {round} {} ({closed} closed, {other} other)", open.join(","));
            }
            Err(e) => {
                eprintln!("scan failed: {e}");
                std::process::exit(1);
            }
        }
    }
}
