//! Rows as CSV (with the spec's header) or JSON lines. Floats print as the shortest decimal that
//! reads back as the same `f64` (at least as precise as the 6 significant digits the spec asks).

use std::io::{self, Write};

use super::{Features, Row, RowSink, Seconds};

/// The spec's columns: the VM, the window's start, then [`Features::NAMES`].
fn header() -> String {
    format!("vm,window_start,{}", Features::NAMES.join(","))
}

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
            writeln!(out, "{}", header())?;
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
        let vm = self.labels.get(r.vm_index).map_or_else(|| r.vm.to_string(), Clone::clone);
        let start = self.window.format_instant(r.window_start_ns);
        let values = r.features.values();
        self.line.clear();
        // Writing to a String cannot fail.
        match self.format {
            Format::Csv => {
                let _ = write!(self.line, "{vm},{start}");
                for v in values {
                    let _ = write!(self.line, ",{v}");
                }
                self.line.push('\n');
            }
            Format::Jsonl => {
                let _ = write!(self.line, "{{\"vm\":\"{vm}\",\"window_start\":{start}");
                for (name, v) in Features::NAMES.iter().zip(values) {
                    let _ = write!(self.line, ",\"{name}\":{v}");
                }
                self.line.push_str("}\n");
            }
        }
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
