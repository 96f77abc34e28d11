//! `labels.csv` files are user input: the parser (`palisade_nad::labels`, which the detector
//! reads them with) never panics on any bytes, and what it accepts keeps the format's promises.
//! Seeds: seeds/labels_csv (the head of a generated dataset's labels, CRLF line ends, a BOM,
//! decimal window starts, and a few broken files).
//! Run: cargo fuzz run labels_csv corpus/labels_csv seeds/labels_csv
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use palisade_nad::labels::{Labels, LabelsError};

fuzz_target!(|data: &[u8]| {
    match Labels::parse(data, Path::new("labels.csv")) {
        Ok(labels) => {
            for l in labels.by_start.values() {
                // A named attack is always an abnormal window, and a name is never empty.
                if let Some(a) = &l.attack {
                    assert!(l.abnormal && !a.is_empty());
                }
            }
        }
        Err(LabelsError::Bad { line, .. }) => assert!(line >= 1),
        Err(LabelsError::Read { .. } | LabelsError::Write { .. }) => unreachable!("parse does not touch files"),
    }
});
