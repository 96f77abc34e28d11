//! Replies from a gdb stub are untrusted: decoding packets, stop replies, thread ids and target
//! descriptions, and driving the client over an arbitrary byte stream, never panic.
//! Seeds: seeds/gdb_reply (replies recorded from QEMU 7.2).
//! Run: cargo fuzz run gdb_reply corpus/gdb_reply seeds/gdb_reply
#![no_main]

use std::io::{self, Read, Write};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use palisade_vmi::gdb::{packet, GdbClient, StopReply, TargetDescription, ThreadId, Transport};
use palisade_vmi::Gva;

/// A stub that answers with the fuzz input, whatever is asked.
struct Replay<'a>(&'a [u8]);

impl Read for Replay<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Replay<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Replay<'_> {
    fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = packet::decode(data);
    let _ = packet::unhex(data);
    let _ = StopReply::parse(data);
    let _ = ThreadId::parse(data);
    let _ = TargetDescription::parse(&String::from_utf8_lossy(data));
    if let Ok(mut c) = GdbClient::new(Replay(data)) {
        let _ = c.read_registers();
        let _ = c.read_memory(Gva(0xffff_ffff_8100_0000), 64);
        let _ = c.threads();
        let _ = c.wait_stop(Duration::from_millis(1));
    }
});
