//! Captured frames are attacker-controlled: the packet decoder never panics on any bytes, for
//! any link type. The first byte picks the link type; the rest is the frame.
//! Seeds: seeds/nad_decode (hand-built frames: Ethernet with 0-3 VLAN tags, SLL, SLL2, raw
//! IPv4/IPv6 with extension headers, fragments, cut headers).
//! Run: cargo fuzz run nad_decode corpus/nad_decode seeds/nad_decode
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_nad::{decode, Decoded, LinkType};

const LINKS: [u16; 7] = [1, 101, 113, 228, 229, 276, 0];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else { return };
    let link = LinkType(LINKS[usize::from(pick) % LINKS.len()]);
    if let Decoded::Ip(p) = decode(link, frame) {
        // Ports exist only with a transport header; a SYN is always TCP.
        assert!(!p.transport.is_syn() || p.transport.ports().is_some());
    }
});
