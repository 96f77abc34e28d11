//! The probe sender and the sniffer. Probes carry a magic, a sequence number and the send time.

use std::io::{Read, Write};
use std::net::{SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

const MAGIC: &[u8; 8] = b"PLSDPRBE";
const ETH_P_ALL_BE: i32 = 0x0300; // htons(ETH_P_ALL)

/// Nanoseconds since the Unix epoch; the clock every process in every namespace shares.
pub fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Sends probes to `dst` every `interval_us` until killed.
pub fn send(dst: SocketAddrV4, interval_us: u64) -> anyhow::Result<()> {
    let sock = UdpSocket::bind("0.0.0.0:0").context("binding the probe socket")?;
    let gap = Duration::from_micros(interval_us.max(10));
    let start = Instant::now();
    let mut buf = [0u8; 24];
    buf[..8].copy_from_slice(MAGIC);
    for seq in 0u64.. {
        buf[8..16].copy_from_slice(&seq.to_be_bytes());
        buf[16..24].copy_from_slice(&unix_ns().to_be_bytes());
        // A refused send (ICMP port unreachable from the direct path) is expected; keep going.
        let _ = sock.send_to(&buf, dst);
        let next = gap * u32::try_from(seq + 1).unwrap_or(u32::MAX);
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}

/// Prints one line `seq unix_ns` per probe frame seen in this namespace (first sighting only).
pub fn sniff(port: u16) -> anyhow::Result<()> {
    let sock = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(ETH_P_ALL_BE)))
        .context("opening an AF_PACKET socket (needs root)")?;
    let mut out = std::io::stdout().lock();
    let mut frame = [0u8; 2048];
    let mut last_seq = None;
    loop {
        let n = (&sock).read(&mut frame).context("reading a frame")?;
        let now = unix_ns();
        if let Some(seq) = probe_seq(&frame[..n], port) {
            if last_seq != Some(seq) {
                last_seq = Some(seq);
                writeln!(out, "{seq} {now}")?;
                out.flush()?;
            }
        }
    }
}

/// The probe's sequence number if `frame` is an Ethernet/IPv4/UDP probe to `port`.
fn probe_seq(frame: &[u8], port: u16) -> Option<u64> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ethertype != 0x0800 {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if *ip.get(9)? != 17 || ihl < 20 {
        return None;
    }
    let udp = ip.get(ihl..)?;
    if u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]) != port {
        return None;
    }
    let payload = udp.get(8..24)?;
    if &payload[..8] != MAGIC {
        return None;
    }
    Some(u64::from_be_bytes(payload[8..16].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_frames_are_recognised_and_others_are_not() {
        let mut f = vec![0u8; 14 + 20 + 8 + 24];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = 17;
        f[34 + 2..34 + 4].copy_from_slice(&40000u16.to_be_bytes());
        f[42..50].copy_from_slice(MAGIC);
        f[50..58].copy_from_slice(&7u64.to_be_bytes());
        assert_eq!(probe_seq(&f, 40000), Some(7));
        assert_eq!(probe_seq(&f, 40001), None);
        assert_eq!(probe_seq(&f[..40], 40000), None);
        f[42] = b'X';
        assert_eq!(probe_seq(&f, 40000), None);
    }
}
