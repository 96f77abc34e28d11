//! The benign background: a web/UDP service VM and its clients, seen at the VM.
//!
//! Sessions start as a Poisson process whose rate follows a smooth daily cycle (low at night,
//! high in the afternoon), a weekly one (quieter weekends) and slowly varying noise. A session
//! is an HTTP(S) connection (handshake, request, response segments with ACKs, keep-alive
//! requests, FIN or RST), a UDP request/reply exchange on port 53, ICMP echoes, an outbound
//! NTP or HTTPS fetch by the VM, or a long interactive SSH session. Clients come from a fixed
//! population with Zipf popularity; a monitor health-checks the VM every 30 s. Now and then a
//! benign surge (a flash crowd: 2-4 times the sessions for 15-60 minutes, ramping up and down)
//! gives the detector normal windows that are not typical.
//!
//! Packets come out in time order with bounded memory: sessions are generated one step (one
//! window) at a time into a heap, and a packet leaves the heap once every session that could
//! precede it has been generated (all later sessions start at or after the step's end).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};
use std::net::Ipv4Addr;

use palisade_nad::build::L4;
use palisade_nad::decode::tcp_flags::{ACK, FIN, PSH, RST, SYN};
use serde::Serialize;

use super::packet::{header_frame, Packet};
use palisade_rng::{Rng, Zipf};

/// Mean sessions per minute at the cycle's average level.
const SESSIONS_PER_MIN: f64 = 8.0;
/// Size of the client population.
const CLIENTS: usize = 6000;
/// First octets of client addresses (public ranges; none of them is used for attackers).
pub(crate) const CLIENT_NETS: [u8; 14] = [23, 31, 37, 62, 77, 81, 89, 93, 109, 151, 176, 188, 203, 212];
/// The monitor that health-checks the service.
pub(crate) const MONITOR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Servers the VM itself contacts (NTP, package mirror).
const UPSTREAM: [Ipv4Addr; 3] =
    [Ipv4Addr::new(162, 159, 200, 1), Ipv4Addr::new(162, 159, 200, 123), Ipv4Addr::new(199, 232, 18, 132)];
/// Day-of-week levels, Monday first.
const WEEK: [f64; 7] = [1.0, 1.03, 1.02, 1.0, 0.95, 0.72, 0.68];

#[derive(Debug, Clone, Copy)]
struct Client {
    addr: Ipv4Addr,
    rtt_ns: u64,
}

/// A packet waiting in the heap, ordered by time then by when it was made.
#[derive(Debug)]
struct Queued(Packet, u64);

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.0.ts_ns, self.1).cmp(&(o.0.ts_ns, o.1))
    }
}

/// The level of activity at `t_s` (Unix seconds) relative to the average: daily and weekly.
pub(crate) fn level(t_s: f64) -> f64 {
    let hour = (t_s % 86_400.0) / 3600.0;
    let tau = std::f64::consts::TAU;
    let daily = 1.0 + 0.55 * (tau * (hour - 15.0) / 24.0).cos() + 0.12 * (2.0 * tau * (hour - 10.0) / 24.0).cos();
    // Unix day 0 was a Thursday; interpolate between the middays of neighbouring days.
    let day = t_s / 86_400.0 + 3.0 - 0.5;
    let i = day.floor();
    let f = day - i;
    let a = WEEK[(i as i64).rem_euclid(7) as usize];
    let b = WEEK[(i as i64 + 1).rem_euclid(7) as usize];
    daily * (a + (b - a) * f)
}

/// A benign flash crowd: the session rate rises to `factor` times its level and back.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Surge {
    /// Start, Unix nanoseconds.
    pub start_ns: u64,
    /// Length in nanoseconds.
    pub duration_ns: u64,
    /// Peak multiplier of the session rate.
    pub factor: f64,
}

impl Surge {
    /// The rate multiplier at `t_ns`: a raised-cosine bump, 1 outside the surge.
    fn multiplier(&self, t_ns: u64) -> f64 {
        if t_ns < self.start_ns || t_ns >= self.start_ns + self.duration_ns {
            return 1.0;
        }
        let x = (t_ns - self.start_ns) as f64 / self.duration_ns as f64;
        1.0 + (self.factor - 1.0) * 0.5 * (1.0 - (std::f64::consts::TAU * x).cos())
    }
}

/// Surges over `[start_ns, end_ns)`: a Poisson number with `per_day` a day on average, in time order.
pub(crate) fn plan_surges(seed: u64, start_ns: u64, end_ns: u64, per_day: f64) -> Vec<Surge> {
    let mut rng = Rng::stream(seed, 3);
    let days = (end_ns - start_ns) as f64 / 86_400e9;
    let mut v: Vec<Surge> = (0..rng.poisson(per_day.max(0.0) * days))
        .map(|_| {
            let duration_ns = rng.range(15, 60) * 60_000_000_000;
            let room = (end_ns - start_ns).saturating_sub(duration_ns);
            Surge { start_ns: start_ns + rng.below_u64(room + 1), duration_ns, factor: rng.uniform(2.0, 4.0) }
        })
        .collect();
    v.sort_by_key(|s| s.start_ns);
    v
}

/// The background packets of one VM over `[start_ns, end_ns)`, in time order.
#[derive(Debug)]
pub(crate) struct Background {
    rng: Rng,
    vm: Ipv4Addr,
    clients: Vec<Client>,
    popularity: Zipf,
    end_ns: u64,
    step_ns: u64,
    generated_until: u64,
    heap: BinaryHeap<Reverse<Queued>>,
    made: u64,
    noise: f64,
    surges: Vec<Surge>,
    scratch: Vec<Packet>,
}

impl Background {
    pub(crate) fn new(seed: u64, vm: Ipv4Addr, start_ns: u64, end_ns: u64, step_ns: u64, surges: Vec<Surge>) -> Self {
        let mut rng = Rng::stream(seed, 1);
        let mut seen = HashSet::new();
        let mut clients = Vec::with_capacity(CLIENTS);
        while clients.len() < CLIENTS {
            let net = CLIENT_NETS[rng.below(CLIENT_NETS.len())];
            let addr = Ipv4Addr::from(u32::from(net) << 24 | (rng.next_u64() as u32 & 0x00ff_ffff));
            if addr.octets()[3] == 0 || addr.octets()[3] == 255 || !seen.insert(addr) {
                continue;
            }
            // Round trips of 8 ms to ~400 ms, log-uniform.
            let rtt_ns = (8e6 * (50f64).powf(rng.unit())) as u64;
            clients.push(Client { addr, rtt_ns });
        }
        Background {
            rng,
            vm,
            clients,
            popularity: Zipf::new(CLIENTS, 1.1),
            end_ns,
            step_ns: step_ns.max(1),
            generated_until: start_ns,
            heap: BinaryHeap::new(),
            made: 0,
            noise: 0.0,
            surges,
            scratch: Vec::new(),
        }
    }

    /// Generates the sessions that start in the next step.
    fn step(&mut self) {
        let s = self.generated_until;
        let e = s.saturating_add(self.step_ns).min(self.end_ns);
        // Health checks at :07 and :37 of every minute.
        let (check, offset) = (30_000_000_000u64, 7_000_000_000u64);
        let mut t = s.saturating_sub(offset).div_ceil(check) * check + offset;
        while t < e {
            self.web(t, Client { addr: MONITOR, rtt_ns: 300_000 }, 80, false);
            t += check;
        }
        self.noise = 0.85 * self.noise + 0.5268 * self.rng.normal();
        let mid_s = (s / 2 + e / 2) as f64 / 1e9;
        let secs = (e - s) as f64 / 1e9;
        let surge: f64 = self.surges.iter().map(|x| x.multiplier(s / 2 + e / 2)).product();
        let mean = SESSIONS_PER_MIN / 60.0 * secs * level(mid_s) * (0.12 * self.noise).exp() * surge;
        for _ in 0..self.rng.poisson(mean) {
            let t = s + self.rng.below_u64(e - s);
            self.session(t);
        }
        for p in self.scratch.drain(..) {
            if p.ts_ns < self.end_ns {
                self.made += 1;
                self.heap.push(Reverse(Queued(p, self.made)));
            }
        }
        self.generated_until = e;
    }

    fn client(&mut self) -> Client {
        self.clients[self.popularity.sample(&mut self.rng)]
    }

    fn session(&mut self, t: u64) {
        let roll = self.rng.unit();
        let c = self.client();
        if roll < 0.74 {
            let port = if self.rng.chance(0.01) {
                8080
            } else if self.rng.chance(0.7) {
                443
            } else {
                80
            };
            self.web(t, c, port, false);
        } else if roll < 0.92 {
            self.udp(t, c);
        } else if roll < 0.94 {
            self.icmp(t, c);
        } else if roll < 0.99 {
            let server = UPSTREAM[self.rng.below(UPSTREAM.len())];
            let up = Client { addr: server, rtt_ns: 2_000_000 + self.rng.below_u64(30_000_000) };
            if self.rng.chance(0.5) {
                self.ntp(t, up);
            } else {
                self.web(t, up, 443, true);
            }
        } else {
            self.ssh(t, c);
        }
    }

    fn conv(&mut self, c: Client, port: u16, outbound: bool) -> Conv {
        let eph = 32768 + self.rng.below_u64(28232) as u16;
        let (client, server) = if outbound { (self.vm, c.addr) } else { (c.addr, self.vm) };
        let ip_id = self.rng.next_u64() as u16;
        Conv {
            client,
            server,
            cport: eph,
            sport: port,
            cseq: self.rng.next_u64() as u32,
            sseq: self.rng.next_u64() as u32,
            ip_id,
        }
    }

    /// Processing delay at a server: mostly short, now and then slow.
    fn think(&mut self) -> u64 {
        (self.rng.exp(4.0) * 1e6) as u64 + 100_000
    }

    /// An HTTP(S) connection; `port` 8080 is closed and answered with a reset.
    fn web(&mut self, mut t: u64, c: Client, port: u16, outbound: bool) {
        let mut cv = self.conv(c, port, outbound);
        let out = &mut self.scratch;
        cv.tcp(out, t, true, SYN, 0, 20);
        t += 60_000;
        if port == 8080 {
            cv.tcp(out, t, false, RST | ACK, 0, 0);
            return;
        }
        cv.tcp(out, t, false, SYN | ACK, 0, 20);
        t += c.rtt_ns;
        cv.tcp(out, t, true, ACK, 0, 0);
        let requests = if self.rng.chance(0.25) { 2 + self.rng.below_u64(3) } else { 1 };
        for r in 0..requests {
            if r > 0 {
                t += (self.rng.exp(1.5) * 1e9) as u64 + c.rtt_ns;
            }
            t += 150_000;
            let req = 180 + self.rng.below(700);
            cv.tcp(&mut self.scratch, t, true, PSH | ACK, req, 0);
            t += self.think();
            let mut segs = 1;
            while segs < 40 && self.rng.chance(0.65) {
                segs += 1;
            }
            for i in 0..segs {
                let last = i + 1 == segs;
                let len = if last { 100 + self.rng.below(1360) } else { 1460 };
                cv.tcp(&mut self.scratch, t, false, if last { PSH | ACK } else { ACK }, len, 0);
                if i % 2 == 1 || last {
                    cv.tcp(&mut self.scratch, t + c.rtt_ns, true, ACK, 0, 0);
                }
                t += 120_000 + self.rng.below_u64(200_000);
            }
            t += c.rtt_ns;
        }
        t += self.rng.below_u64(2_000_000_000);
        let out = &mut self.scratch;
        if self.rng.chance(0.03) {
            cv.tcp(out, t, true, RST | ACK, 0, 0);
        } else {
            cv.tcp(out, t, true, FIN | ACK, 0, 0);
            cv.tcp(out, t + 50_000, false, FIN | ACK, 0, 0);
            cv.tcp(out, t + 50_000 + c.rtt_ns, true, ACK, 0, 0);
        }
    }

    /// One to three UDP requests to the service on port 53, each answered.
    fn udp(&mut self, mut t: u64, c: Client) {
        let mut cv = self.conv(c, 53, false);
        for _ in 0..1 + self.rng.below_u64(3) {
            let q = 20 + self.rng.below(40);
            cv.udp(&mut self.scratch, t, true, q);
            t += self.think() / 4;
            let a = 60 + self.rng.below(340);
            cv.udp(&mut self.scratch, t, false, a);
            t += c.rtt_ns + (self.rng.exp(0.3) * 1e9) as u64;
        }
    }

    fn icmp(&mut self, mut t: u64, c: Client) {
        let mut cv = self.conv(c, 0, false);
        for _ in 0..1 + self.rng.below_u64(4) {
            cv.icmp(&mut self.scratch, t, true);
            cv.icmp(&mut self.scratch, t + 40_000, false);
            t += 1_000_000_000;
        }
    }

    /// The VM asks a time server.
    fn ntp(&mut self, t: u64, up: Client) {
        let mut cv = self.conv(up, 123, true);
        cv.cport = 123;
        cv.udp(&mut self.scratch, t, true, 48);
        cv.udp(&mut self.scratch, t + up.rtt_ns, false, 48);
    }

    /// An interactive SSH session: small packets both ways for up to ten minutes.
    fn ssh(&mut self, mut t: u64, c: Client) {
        let mut cv = self.conv(c, 22, false);
        cv.tcp(&mut self.scratch, t, true, SYN, 0, 20);
        cv.tcp(&mut self.scratch, t + 60_000, false, SYN | ACK, 0, 20);
        t += 60_000 + c.rtt_ns;
        cv.tcp(&mut self.scratch, t, true, ACK, 0, 0);
        for _ in 0..20 + self.rng.below_u64(180) {
            t += (self.rng.exp(2.5) * 1e9) as u64;
            let n = 36 + self.rng.below(160);
            cv.tcp(&mut self.scratch, t, true, PSH | ACK, n, 0);
            cv.tcp(&mut self.scratch, t + 200_000, false, PSH | ACK, n + 16, 0);
            cv.tcp(&mut self.scratch, t + 200_000 + c.rtt_ns, true, ACK, 0, 0);
        }
        t += c.rtt_ns;
        cv.tcp(&mut self.scratch, t, true, FIN | ACK, 0, 0);
        cv.tcp(&mut self.scratch, t + 60_000, false, FIN | ACK, 0, 0);
        cv.tcp(&mut self.scratch, t + 60_000 + c.rtt_ns, true, ACK, 0, 0);
    }
}

impl Iterator for Background {
    type Item = Packet;

    fn next(&mut self) -> Option<Packet> {
        loop {
            let done = self.generated_until >= self.end_ns;
            if let Some(Reverse(q)) = self.heap.peek() {
                if done || q.0.ts_ns < self.generated_until {
                    return self.heap.pop().map(|Reverse(q)| q.0);
                }
            }
            if done {
                return None;
            }
            self.step();
        }
    }
}

/// Both ends of one conversation and their TCP sequence numbers.
#[derive(Debug)]
struct Conv {
    client: Ipv4Addr,
    server: Ipv4Addr,
    cport: u16,
    sport: u16,
    cseq: u32,
    sseq: u32,
    ip_id: u16,
}

impl Conv {
    /// A TCP segment with `payload` bytes (plus `options` header bytes, left zero).
    fn tcp(&mut self, out: &mut Vec<Packet>, t: u64, from_client: bool, flags: u8, payload: usize, options: usize) {
        let (src, dst, sp, dp) = self.ends(from_client);
        let (own, other) = if from_client { (self.cseq, self.sseq) } else { (self.sseq, self.cseq) };
        let ack = if flags & ACK != 0 { other } else { 0 };
        self.ip_id = self.ip_id.wrapping_add(1);
        out.push(header_frame(
            t,
            src,
            dst,
            L4::Tcp(sp, dp, flags),
            40 + options + payload,
            self.ip_id,
            (own, ack),
            false,
        ));
        let next = own.wrapping_add(payload as u32 + u32::from(flags & (SYN | FIN) != 0));
        if from_client {
            self.cseq = next;
        } else {
            self.sseq = next;
        }
    }

    fn udp(&mut self, out: &mut Vec<Packet>, t: u64, from_client: bool, payload: usize) {
        let (src, dst, sp, dp) = self.ends(from_client);
        self.ip_id = self.ip_id.wrapping_add(1);
        out.push(header_frame(t, src, dst, L4::Udp(sp, dp), 28 + payload, self.ip_id, (0, 0), false));
    }

    fn icmp(&mut self, out: &mut Vec<Packet>, t: u64, from_client: bool) {
        let (src, dst, _, _) = self.ends(from_client);
        self.ip_id = self.ip_id.wrapping_add(1);
        out.push(header_frame(t, src, dst, L4::Icmp, 84, self.ip_id, (0, 0), !from_client));
    }

    fn ends(&self, from_client: bool) -> (Ipv4Addr, Ipv4Addr, u16, u16) {
        if from_client {
            (self.client, self.server, self.cport, self.sport)
        } else {
            (self.server, self.client, self.sport, self.cport)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000_000_000;
    const MONDAY: u64 = 1_767_571_200_000_000_000;

    #[test]
    fn packets_are_in_time_order_inside_the_span_and_involve_the_vm() {
        let vm = Ipv4Addr::new(10, 0, 0, 5);
        let bg = Background::new(5, vm, MONDAY, MONDAY + DAY / 8, 60_000_000_000, Vec::new());
        let mut last = 0;
        let mut n = 0;
        for p in bg {
            assert!(p.ts_ns >= last && p.ts_ns >= MONDAY && p.ts_ns < MONDAY + DAY / 8);
            last = p.ts_ns;
            let ip = &p.frame[14..];
            assert!(ip[12..16] == vm.octets() || ip[16..20] == vm.octets(), "every packet is the VM's");
            n += 1;
        }
        assert!(n > 1000, "three hours of background hold more than {n} packets");
    }

    #[test]
    fn afternoon_is_busier_than_night_and_weekdays_than_weekends() {
        let at = |day: u64, hour: u64| (MONDAY / 1_000_000_000 + day * 86_400 + hour * 3600) as f64;
        assert!(level(at(1, 15)) > 2.0 * level(at(1, 3)));
        assert!(level(at(2, 15)) > 1.2 * level(at(6, 15)), "Wednesday over Sunday");
        // Smooth: no jump at midnight.
        assert!((level(at(3, 0) - 1.0) - level(at(3, 0))).abs() < 0.01);
    }

    #[test]
    fn the_volume_follows_the_cycle() {
        let vm = Ipv4Addr::new(10, 0, 0, 5);
        let count = |from: u64| Background::new(9, vm, from, from + DAY / 24, 60_000_000_000, Vec::new()).count();
        let night = count(MONDAY + 3 * DAY / 24);
        let afternoon = count(MONDAY + 15 * DAY / 24);
        assert!(afternoon > 2 * night, "afternoon {afternoon} vs night {night} packets per hour");
    }

    #[test]
    fn a_surge_raises_the_volume_and_is_gone_after() {
        let vm = Ipv4Addr::new(10, 0, 0, 5);
        let from = MONDAY + 14 * DAY / 24;
        let hour = DAY / 24;
        let surge = Surge { start_ns: from, duration_ns: hour, factor: 4.0 };
        let count = |surges: Vec<Surge>, to: u64| Background::new(9, vm, from, to, 60_000_000_000, surges).count();
        let (plain, surged) = (count(Vec::new(), from + hour), count(vec![surge], from + hour));
        assert!(surged as f64 > 1.8 * plain as f64, "a x4 surge: {surged} vs {plain} packets in its hour");
        assert_eq!(surge.multiplier(from + hour), 1.0);
        let planned = plan_surges(1, MONDAY, MONDAY + 30 * DAY, 0.4);
        assert!((4..=24).contains(&planned.len()), "{} surges in 30 days at 0.4 a day", planned.len());
        assert!(planned.iter().all(|s| s.start_ns + s.duration_ns <= MONDAY + 30 * DAY && s.factor >= 2.0));
    }
}
