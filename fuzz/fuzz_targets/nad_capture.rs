//! Capture files are untrusted: the pcap and pcapng readers and the whole extractor never panic,
//! whatever the bytes (damage ends reading with a reported stop, it is never fatal).
//! Seeds: seeds/nad_capture (small pcap in both magics and byte orders, pcapng with several
//! interfaces, sections of both byte orders, simple and obsolete packet blocks), and the real
//! captures, e.g. from fuzz/:
//! `cargo fuzz run nad_capture corpus/nad_capture seeds/nad_capture ../crates/palisade-traffic/testdata/pcaps`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_nad::{extract_bytes, Config, Seconds, Series};

fuzz_target!(|data: &[u8]| {
    // Every window between the first and last packet is a row: a long window keeps a wild
    // timestamp from asking for billions of them.
    let cfg = Config {
        vms: vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap(), "172.16.0.5".parse().unwrap()],
        window: Seconds::from_secs(10_000_000),
        reorder: Seconds::from_secs(1),
        series: Series::Bounded,
    };
    if let Ok((rows, report)) = extract_bytes(data, &cfg) {
        assert_eq!(rows.len() as u64, report.extract.rows);
        assert!(report.extract.counted <= report.extract.frames);
    }
});
