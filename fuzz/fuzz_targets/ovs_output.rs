//! Output of ovs-ofctl/ovs-vsctl is parsed without trusting it: any bytes, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = palisade_ovs::parse_dump_flows(&text);
    let _ = palisade_ovs::parse_dump_groups(&text);
    let _ = palisade_ovs::parse_interfaces(&text);
    let _ = palisade_ovs::parse_ports_desc(&text);
});
