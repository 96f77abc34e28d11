//! What a run saw besides its rows: damage, skipped packets, late packets. Printed to stderr by
//! the CLI; every count is there so that nothing is dropped silently.

use std::fmt;

use crate::capture::{LinkType, ReadStats, Stop};
use crate::decode::Malformed;
use crate::features::ExtractStats;

/// The outcome of a run over a file or an interface.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Reader counters.
    pub read: ReadStats,
    /// Why the file ended early, if it did.
    pub stop: Option<Stop>,
    /// Extractor counters.
    pub extract: ExtractStats,
    /// Link types of the capture.
    pub links: Vec<LinkType>,
    /// Packets libpcap says the kernel dropped (live capture).
    pub kernel_drops: Option<u64>,
}

impl Report {
    /// Warnings a person should read: one line each, empty when all went well.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(stop) = &self.stop {
            w.push(format!("{stop}; rows cover the {} packets read before it", self.read.packets));
        }
        let e = &self.extract;
        if e.malformed_total() > 0 {
            let reasons: Vec<String> = Malformed::ALL
                .iter()
                .filter(|m| e.malformed[m.index()] > 0)
                .map(|m| format!("{} {m}", e.malformed[m.index()]))
                .collect();
            w.push(format!("{} malformed packets ({})", e.malformed_total(), reasons.join(", ")));
        }
        for link in self.links.iter().filter(|l| !l.is_supported()) {
            w.push(format!("{link} is not supported: its packets were ignored"));
        }
        if e.unsupported_link > 0 {
            w.push(format!("{} packets of unsupported link types ignored", e.unsupported_link));
        }
        if e.late > 0 {
            w.push(format!(
                "{} packets arrived after their window had closed (out of order by more than the reorder allowance) and are in no row",
                e.late
            ));
        }
        let r = &self.read;
        if r.unknown_interface > 0 {
            w.push(format!("{} packets name an undescribed pcapng interface and were skipped", r.unknown_interface));
        }
        if r.bad_timestamp > 0 {
            w.push(format!("{} packets have unusable timestamps and were skipped", r.bad_timestamp));
        }
        if r.untimed_skipped > 0 {
            w.push(format!("{} pcapng simple packets came before any timestamp and were skipped", r.untimed_skipped));
        }
        if r.untimed_placed > 0 {
            w.push(format!(
                "{} pcapng simple packets carry no timestamp and were placed at the previous packet's time",
                r.untimed_placed
            ));
        }
        if r.caplen_over_wire > 0 {
            w.push(format!(
                "{} records claim more captured bytes than wire bytes (wire length counted)",
                r.caplen_over_wire
            ));
        }
        if let Some(d) = self.kernel_drops.filter(|&d| d > 0) {
            w.push(format!("the kernel dropped {d} packets: rows undercount"));
        }
        w
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.extract;
        write!(
            f,
            "{} packets ({} bytes on the wire), {} IP, {} counted for the VMs, {} not IP, {} in more than two VLAN tags, {} malformed; {} rows",
            e.frames,
            e.wire_bytes,
            e.ip_packets,
            e.counted,
            e.not_ip,
            e.too_many_tags,
            e.malformed_total(),
            e.rows
        )
    }
}
