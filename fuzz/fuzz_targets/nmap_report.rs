//! nmap's XML report is read from a scanner that talked to a tenant's VM (service banners and
//! script output are the target's words): parsing it never panics, whatever the bytes.
//! Seeds: seeds/nmap_report (a real nmap 7.93 report, see docs/testing.md).
//! Run: cargo fuzz run nmap_report corpus/nmap_report seeds/nmap_report
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = palisade_scan::nmap::parse_report(data) {
        // Ports come out sorted and without duplicates, whatever the report's order.
        assert!(report.ports.windows(2).all(|w| w[0] < w[1]));
    }
});
