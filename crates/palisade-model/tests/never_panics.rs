//! The policy parser never panics: mutated real files and random bytes (seeded, deterministic).
//! The coverage-guided version of this is `fuzz/fuzz_targets/policy_file.rs`.

use palisade_model::{merge_file, Inventory};
use palisade_rng::Rng;

const SEEDS: [&str; 2] = [include_str!("../../../examples/lab.yaml"), include_str!("../../../examples/redirect.yaml")];

#[test]
fn mutated_files_never_panic() {
    // A fixed seed keeps the test deterministic.
    let mut rng = Rng::new(0x5a15_2026);
    let alphabet = b" \n:-[]{},\"'&*!|>#0123456789abcdef./";
    let mut rejected = 0;
    for i in 0..3000 {
        let mut bytes = SEEDS[i % 2].as_bytes().to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes[at] = alphabet[rng.below(alphabet.len())],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, alphabet[rng.below(alphabet.len())]),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if merge_file("m.yaml", &text, &Inventory::default()).is_err() {
            rejected += 1;
        }
    }
    // Most mutations must be caught; if none were, the parser is not checking anything.
    assert!(rejected > 1000, "only {rejected} of 3000 mutated files rejected");
}
