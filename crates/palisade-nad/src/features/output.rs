//! Rows as CSV (with the spec's header) or JSON lines. Floats print as the shortest decimal that
//! reads back as the same `f64` (at least as precise as the 6 significant digits the spec asks).

use std::io::{self, Write};

use super::{Row, RowSink, Seconds};

/// The spec's column order.
pub const HEADER: &str = "vm,window_start,access_port,ip_entro,service_port_entro,syn_rate,bps,pps,\
packet_per_ip,ip_count,syn_per_ip,bytes_per_ip,syn_count";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Comma-separated values with a header line.
    #[default]
    Csv,
    /// One JSON object per line, same field names.
    Jsonl,
}

/// Writes rows to `W`; flushes after every window it completes when asked to (live capture).
#[derive(Debug)]
pub struct RowWriter<W: Write> {
    out: W,
    format: Format,
    window: Seconds,
    labels: Vec<String>,
    flush_each: bool,
    line: String,
}

impl<W: Write> RowWriter<W> {
    /// A writer for rows of the given VMs (labels in [`super::Config::vms`] order); writes the
    /// CSV header at once.
    pub fn new(mut out: W, format: Format, window: Seconds, vms: &[std::net::IpAddr]) -> io::Result<Self> {
        if format == Format::Csv {
            writeln!(out, "{HEADER}")?;
        }
        let labels = vms.iter().map(ToString::to_string).collect();
        Ok(RowWriter { out, format, window, labels, flush_each: false, line: String::with_capacity(256) })
    }

    /// Flush after every row (for live output read by another program).
    pub fn flush_each_row(mut self, yes: bool) -> Self {
        self.flush_each = yes;
        self
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }

    fn render(&mut self, r: &Row) {
        use std::fmt::Write as _;
        let f = &r.features;
        let vm = self.labels.get(r.vm_index).map_or_else(|| r.vm.to_string(), Clone::clone);
        let start = self.window.format_instant(r.window_start_ns);
        self.line.clear();
        // Writing to a String cannot fail.
        let _ = match self.format {
            Format::Csv => writeln!(
                self.line,
                "{vm},{start},{},{},{},{},{},{},{},{},{},{},{}",
                f.access_port,
                f.ip_entro,
                f.service_port_entro,
                f.syn_rate,
                f.bps,
                f.pps,
                f.packet_per_ip,
                f.ip_count,
                f.syn_per_ip,
                f.bytes_per_ip,
                f.syn_count
            ),
            Format::Jsonl => writeln!(
                self.line,
                "{{\"vm\":\"{vm}\",\"window_start\":{start},\"access_port\":{},\"ip_entro\":{},\
                 \"service_port_entro\":{},\"syn_rate\":{},\"bps\":{},\"pps\":{},\"packet_per_ip\":{},\
                 \"ip_count\":{},\"syn_per_ip\":{},\"bytes_per_ip\":{},\"syn_count\":{}}}",
                f.access_port,
                f.ip_entro,
                f.service_port_entro,
                f.syn_rate,
                f.bps,
                f.pps,
                f.packet_per_ip,
                f.ip_count,
                f.syn_per_ip,
                f.bytes_per_ip,
                f.syn_count
            ),
        };
    }
}

impl<W: Write> RowSink for RowWriter<W> {
    type Error = io::Error;

    fn row(&mut self, r: &Row) -> io::Result<()> {
        self.render(r);
        self.out.write_all(self.line.as_bytes())?;
        if self.flush_each {
            self.out.flush()?;
        }
        Ok(())
    }
}
