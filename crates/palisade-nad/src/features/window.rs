//! One VM's counters for one window, and the 11 features computed from them. Everything is
//! cleared (capacity kept) when the window closes, so memory follows the peers of one window.

use rustc_hash::{FxHashMap, FxHashSet};

/// The 11 features of one VM in one window, in output column order.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Features {
    /// Entropy of the clients' shares of distinct destination ports on the VM.
    pub access_port: f64,
    /// Entropy of the peers' shares of the packets.
    pub ip_entro: f64,
    /// Entropy of the destination ports of inbound TCP/UDP packets.
    pub service_port_entro: f64,
    /// SYN packets / packets.
    pub syn_rate: f64,
    /// Bytes / window seconds.
    pub bps: f64,
    /// Packets / window seconds.
    pub pps: f64,
    /// Packets / distinct peers.
    pub packet_per_ip: f64,
    /// Distinct peers.
    pub ip_count: u64,
    /// SYN packets / distinct peers.
    pub syn_per_ip: f64,
    /// Bytes / distinct peers.
    pub bytes_per_ip: f64,
    /// SYN packets.
    pub syn_count: u64,
}

impl Features {
    /// How many features a window has.
    pub const COUNT: usize = 11;

    /// Their names, in output column (and model input) order: the spec's.
    pub const NAMES: [&'static str; Self::COUNT] = [
        "access_port",
        "ip_entro",
        "service_port_entro",
        "syn_rate",
        "bps",
        "pps",
        "packet_per_ip",
        "ip_count",
        "syn_per_ip",
        "bytes_per_ip",
        "syn_count",
    ];

    /// The values in [`Features::NAMES`] order; the two counts as `f64` (exact below 2^53,
    /// and printed the same way as the integers).
    pub fn values(&self) -> [f64; Self::COUNT] {
        [
            self.access_port,
            self.ip_entro,
            self.service_port_entro,
            self.syn_rate,
            self.bps,
            self.pps,
            self.packet_per_ip,
            self.ip_count as f64,
            self.syn_per_ip,
            self.bytes_per_ip,
            self.syn_count as f64,
        ]
    }
}

/// Counters of one VM in one window.
#[derive(Debug, Default)]
pub(crate) struct WindowCounts {
    packets: u64,
    bytes: u64,
    syns: u64,
    /// Peer address -> dense index into the vectors below.
    peer_index: FxHashMap<u128, u32>,
    peer_packets: Vec<u64>,
    /// Per peer as a client: distinct destination ports it sent to on the VM.
    client_ports: Vec<u32>,
    /// Per peer: the destination port of its previous inbound TCP/UDP packet (`u32::MAX`:
    /// none), so a client's run of packets to one port skips the pair set.
    last_port: Vec<u32>,
    /// `(peer index << 16) | destination port` for every (client, port) pair seen.
    client_port_pairs: FxHashSet<u64>,
    /// Destination port of inbound TCP/UDP packets -> packets.
    service: FxHashMap<u16, u64>,
    service_total: u64,
}

impl WindowCounts {
    /// Counts one packet. `inbound_port` is the destination port of an inbound TCP/UDP packet.
    #[inline]
    pub(crate) fn add(&mut self, peer: u128, bytes: u32, syn: bool, inbound_port: Option<u16>) {
        self.packets += 1;
        self.bytes += u64::from(bytes);
        self.syns += u64::from(syn);
        let next = self.peer_packets.len() as u32;
        let idx = *self.peer_index.entry(peer).or_insert(next);
        if idx == next {
            self.peer_packets.push(0);
            self.client_ports.push(0);
            self.last_port.push(u32::MAX);
        }
        let i = idx as usize;
        self.peer_packets[i] += 1;
        if let Some(port) = inbound_port {
            if self.last_port[i] != u32::from(port) {
                self.last_port[i] = u32::from(port);
                if self.client_port_pairs.insert((u64::from(idx) << 16) | u64::from(port)) {
                    self.client_ports[i] += 1;
                }
            }
            *self.service.entry(port).or_insert(0) += 1;
            self.service_total += 1;
        }
    }

    /// The features over a window of `window_s` seconds.
    pub(crate) fn features(&self, window_s: f64) -> Features {
        let n = self.packets as f64;
        let bytes = self.bytes as f64;
        let syn = self.syns as f64;
        let ip_count = self.peer_packets.len() as u64;
        let peers = ip_count as f64;
        let client_total: u64 = self.client_ports.iter().map(|&c| u64::from(c)).sum();
        Features {
            access_port: entropy(self.client_ports.iter().map(|&c| u64::from(c)), client_total),
            ip_entro: entropy(self.peer_packets.iter().copied(), self.packets),
            service_port_entro: entropy(self.service.values().copied(), self.service_total),
            syn_rate: ratio(syn, n),
            bps: ratio(bytes, window_s),
            pps: ratio(n, window_s),
            packet_per_ip: ratio(n, peers),
            ip_count,
            syn_per_ip: ratio(syn, peers),
            bytes_per_ip: ratio(bytes, peers),
            syn_count: self.syns,
        }
    }

    /// Forgets the window, keeping allocations for the next one.
    pub(crate) fn clear(&mut self) {
        self.packets = 0;
        self.bytes = 0;
        self.syns = 0;
        self.peer_index.clear();
        self.peer_packets.clear();
        self.client_ports.clear();
        self.last_port.clear();
        self.client_port_pairs.clear();
        self.service.clear();
        self.service_total = 0;
    }
}

/// "Any ratio with a zero denominator is 0."
#[inline]
pub(crate) fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// `-sum p log2 p` over the non-zero counts, `p = count / total`; "an entropy over fewer than
/// two categories is 0".
pub(crate) fn entropy(counts: impl Iterator<Item = u64> + Clone, total: u64) -> f64 {
    if counts.clone().filter(|&c| c > 0).take(2).count() < 2 {
        return 0.0;
    }
    let total = total as f64;
    -counts.filter(|&c| c > 0).map(|c| c as f64 / total).map(|p| p * p.log2()).sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_fewer_than_two_categories_is_zero() {
        assert_eq!(entropy([].into_iter(), 0), 0.0);
        assert_eq!(entropy([7].into_iter(), 7), 0.0);
        assert_eq!(entropy([0, 7, 0].into_iter(), 7), 0.0);
        assert!(entropy([7, 0].into_iter(), 7).is_sign_positive());
    }

    #[test]
    fn entropy_of_uniform_categories_is_log2_of_their_number() {
        assert_eq!(entropy([3, 3].into_iter(), 6), 1.0);
        assert!((entropy([1, 1, 1, 1].into_iter(), 4) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn ratios_with_zero_denominators_are_zero() {
        let f = WindowCounts::default().features(1.0);
        assert_eq!(f, Features::default());
        assert_eq!(ratio(5.0, 0.0), 0.0);
    }
}
