//! Model directories are read by the controller for every `anomaly` policy and by `palisade nad
//! eval|detect`: the loader never panics on any bytes and never allocates without bound.
//! The input is split into the three files: two little-endian u32 lengths, then model.json,
//! model.safetensors, and the rest as baselines.json.
//! Seeds: none checked in (a model is 0.8 MB); join a saved model's files the same way to make one.
//! Run: cargo fuzz run nad_model corpus/nad_model
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use palisade_detect::store;

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<8>() else { return };
    let a = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let b = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let (meta, rest) = rest.split_at(a.min(rest.len()));
    let (weights, baselines) = rest.split_at(b.min(rest.len()));
    if let Ok(model) = store::from_bytes(Path::new("m"), meta, weights, baselines) {
        // What loads is usable: sizes within bounds and every weight finite.
        let cfg = model.net.cfg;
        assert!(cfg.lstm1 <= store::MAX_WIDTH && cfg.steps >= 1);
        assert!(model.net.params.iter().all(|p| p.is_finite()));
    }
});
