//! Policy files are untrusted: parsing and validating any bytes must never panic.
//! Seed corpus: examples/*.yaml. Run: cargo fuzz run policy_file ../examples
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_model::{merge_file, Inventory};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = merge_file("fuzz.yaml", text, &Inventory::default());
    }
});
