//! The policy parser never panics: mutated real files and random bytes (seeded, deterministic).
//! The coverage-guided version of this is `fuzz/fuzz_targets/policy_file.rs`.

use palisade_model::{merge_file, Inventory};

const SEEDS: [&str; 2] = [include_str!("../../../examples/lab.yaml"), include_str!("../../../examples/redirect.yaml")];

/// xorshift64*: a fixed seed keeps the test deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn mutated_files_never_panic() {
    let mut rng = Rng(0x5a15_2026);
    let alphabet = b" \n:-[]{},\"'&*!|>#0123456789abcdef./";
    let mut rejected = 0;
    for i in 0..3000 {
        let mut bytes = SEEDS[i % 2].as_bytes().to_vec();
        for _ in 0..1 + rng.next() % 8 {
            let at = (rng.next() as usize) % bytes.len().max(1);
            match rng.next() % 3 {
                0 => bytes[at] = alphabet[(rng.next() as usize) % alphabet.len()],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, alphabet[(rng.next() as usize) % alphabet.len()]),
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
