//! A small seeded labelled scenario written as a real pcap file (Ethernet/IPv4/TCP/UDP), so
//! tests run the real extractor, labels parser, trainer and evaluator end to end.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::Path;

use palisade_rng::Rng;

/// Start of the scenario (Unix seconds).
pub const T0: u64 = 1_700_000_000;
/// The monitored VM.
pub const VM: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

/// pcap (microsecond) writer.
#[derive(Debug, Default)]
pub struct Pcap {
    pub bytes: Vec<u8>,
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

impl Pcap {
    pub fn new() -> Self {
        let mut bytes = Vec::new();
        bytes.extend(0xa1b2_c3d4u32.to_le_bytes());
        bytes.extend(2u16.to_le_bytes());
        bytes.extend(4u16.to_le_bytes());
        bytes.extend(0i32.to_le_bytes());
        bytes.extend(0u32.to_le_bytes());
        bytes.extend(65_535u32.to_le_bytes());
        bytes.extend(1u32.to_le_bytes()); // Ethernet
        Pcap { bytes }
    }

    fn frame(&mut self, ts_us: u64, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8], pad: usize) {
        let total = 20 + l4.len() + pad;
        let mut f = Vec::with_capacity(14 + total);
        f.extend([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]);
        f.extend([0x45, 0]);
        f.extend((total as u16).to_be_bytes());
        f.extend([0, 0, 0x40, 0, 64, proto, 0, 0]);
        f.extend(src.octets());
        f.extend(dst.octets());
        f.extend(l4);
        f.extend(std::iter::repeat_n(0u8, pad));
        self.bytes.extend(((ts_us / 1_000_000) as u32).to_le_bytes());
        self.bytes.extend(((ts_us % 1_000_000) as u32).to_le_bytes());
        self.bytes.extend((f.len() as u32).to_le_bytes());
        self.bytes.extend((f.len() as u32).to_le_bytes());
        self.bytes.extend(f);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn tcp(&mut self, ts_us: u64, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8, pad: usize) {
        let mut t = Vec::with_capacity(20);
        t.extend(sport.to_be_bytes());
        t.extend(dport.to_be_bytes());
        t.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        self.frame(ts_us, src, dst, 6, &t, pad);
    }

    pub fn udp(&mut self, ts_us: u64, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, pad: usize) {
        let mut u = Vec::with_capacity(8);
        u.extend(sport.to_be_bytes());
        u.extend(dport.to_be_bytes());
        u.extend(((8 + pad) as u16).to_be_bytes());
        u.extend([0, 0]);
        self.frame(ts_us, src, dst, 17, &u, pad);
    }
}

/// Which attack a window gets.
fn attack(k: u64, windows: u64) -> Option<&'static str> {
    if k % 37 >= 20 && k % 37 < 23 {
        Some("syn_flood")
    } else if k % 53 >= 30 && k % 53 < 32 {
        Some("port_scan")
    } else if k >= windows * 7 / 10 && k % 41 == 5 {
        Some("udp_flood") // only in the last 30%: an attack kind never seen in training
    } else {
        None
    }
}

/// Writes `windows` 1-second windows of a daily-cycle (period 100 s) service with scheduled
/// attacks to `dir/capture.pcap` and `dir/labels.csv`.
pub fn scenario(dir: &Path, windows: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut p = Pcap::new();
    let mut labels = String::from("window_start,label,attack\n");
    for k in 0..windows {
        let base = (T0 + k) * 1_000_000;
        let mut ts = base;
        let mut tick = |n: u64| {
            ts += n;
            ts
        };
        let cycle = (std::f64::consts::TAU * k as f64 / 100.0).sin();
        let clients = 3 + (4.0 * (1.0 + cycle)).round() as u8 + rng.below(2) as u8;
        for c in 0..clients {
            let ip = Ipv4Addr::new(10, 1, 0, c + 1);
            let sport = 40_000 + c as u16;
            p.tcp(tick(50), ip, sport, VM, 80, SYN, 0);
            p.tcp(tick(50), VM, 80, ip, sport, SYN | ACK, 0);
            for _ in 0..3 {
                p.tcp(tick(50), ip, sport, VM, 80, ACK, 100);
                p.tcp(tick(50), VM, 80, ip, sport, ACK, 1000);
            }
            if rng.unit() < 0.5 {
                p.udp(tick(50), ip, 5353, VM, 53, 40);
                p.udp(tick(50), VM, 53, ip, 5353, 80);
            }
        }
        let a = attack(k, windows);
        match a {
            Some("syn_flood") => {
                for i in 0..150u32 {
                    let ip = Ipv4Addr::new(172, 16, (rng.below(250) + 1) as u8, (i % 250 + 1) as u8);
                    p.tcp(tick(20), ip, 1024 + i as u16, VM, 80, SYN, 0);
                }
            }
            Some("port_scan") => {
                for port in 1..=120u16 {
                    p.tcp(tick(20), Ipv4Addr::new(10, 9, 9, 9), 50_000, VM, port, SYN, 0);
                }
            }
            Some(_) => {
                for i in 0..300u16 {
                    p.udp(tick(10), Ipv4Addr::new(10, 8, 8, 8), 6000, VM, 1000 + i % 50, 500);
                }
            }
            None => {}
        }
        labels += &format!("{},{},{}\n", T0 + k, u8::from(a.is_some()), a.unwrap_or(""));
    }
    std::fs::write(dir.join("capture.pcap"), &p.bytes).unwrap();
    std::fs::write(dir.join("labels.csv"), labels).unwrap();
}
