//! Attack captures are untrusted: the synthetic dataset's address rewriter
//! (`palisade_traffic::synth::rewrite_ipv4`) never panics on any bytes, keeps their length, and
//! leaves a whole IPv4 header with a right checksum.
//! Seeds: seeds/nad_rewrite (IPv4 packets of the shared captures, written by
//! `cargo test -p palisade-traffic --test synth write_fuzz_seeds -- --ignored`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_traffic::synth::rewrite_ipv4;

fn ones_sum(b: &[u8]) -> u32 {
    let mut acc: u32 = b.chunks(2).map(|w| u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0))).sum();
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

fuzz_target!(|data: &[u8]| {
    let mut b = data.to_vec();
    rewrite_ipv4(&mut b, &|a| a.rotate_left(8) ^ 0x0a00_0005);
    assert_eq!(b.len(), data.len());
    if b.len() >= 20 && b[0] >> 4 == 4 && b[0] & 15 >= 5 {
        let hl = usize::from(b[0] & 15) * 4;
        if hl <= b.len() {
            assert_eq!(ones_sum(&b[..hl]), 0xffff, "header checksum");
        }
    }
});
