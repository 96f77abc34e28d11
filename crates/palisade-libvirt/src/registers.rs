//! vCPU control registers from HMP `info registers -a`: the page-table root (CR3) and paging
//! mode each vCPU runs with, which tell the kernel it runs from other images left in RAM.
//!
//! QEMU 7.2 prints, per vCPU, a `CPU#N` line and then `KEY=hex` fields, among them
//! `CR0=80050033 CR2=... CR3=0000000102c4a000 CR4=00350ef0` and `EFER=0000000000000d01`
//! (CR3 in 8 digits outside long mode). Output of one vCPU without a `CPU#` line is vCPU 0.

/// CR0.PG.
const CR0_PG: u64 = 1 << 31;
/// EFER.LMA: long mode active.
const EFER_LMA: u64 = 1 << 10;

/// The paging-relevant registers of one vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuRegisters {
    /// QEMU's CPU index.
    pub cpu: u32,
    /// CR0.
    pub cr0: u64,
    /// CR3 (page-table root, PCID and flags).
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER.
    pub efer: u64,
}

impl VcpuRegisters {
    /// Paging on, in long mode: CR3 roots 4- or 5-level page tables that can map a 64-bit
    /// kernel. (Firmware in real or 32-bit mode, or a bootloader, may be elsewhere.)
    pub fn long_mode_paging(&self) -> bool {
        self.cr0 & CR0_PG != 0 && self.efer & EFER_LMA != 0
    }
}

/// Every vCPU with all of CR0, CR3, CR4 and EFER in `text`, in the order printed. A block
/// missing one of them, or with a value that is not hex, is left out; nothing panics.
pub fn parse_info_registers(text: &str) -> Vec<VcpuRegisters> {
    let mut out = Vec::new();
    let mut block: Option<Partial> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(n) = line.strip_prefix("CPU#") {
            out.extend(block.take().and_then(Partial::complete));
            block = n.trim().parse().ok().map(Partial::new);
            continue;
        }
        for (key, value) in line.split_whitespace().filter_map(|field| field.split_once('=')) {
            let slot = match key {
                "CR0" => 0,
                "CR3" => 1,
                "CR4" => 2,
                "EFER" => 3,
                _ => continue,
            };
            let b = block.get_or_insert_with(|| Partial::new(0));
            b.fields[slot] = u64::from_str_radix(value, 16).ok();
        }
    }
    out.extend(block.and_then(Partial::complete));
    out
}

struct Partial {
    cpu: u32,
    fields: [Option<u64>; 4],
}

impl Partial {
    fn new(cpu: u32) -> Partial {
        Partial { cpu, fields: [None; 4] }
    }

    fn complete(self) -> Option<VcpuRegisters> {
        let [cr0, cr3, cr4, efer] = self.fields;
        Some(VcpuRegisters { cpu: self.cpu, cr0: cr0?, cr3: cr3?, cr4: cr4?, efer: efer? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real output of a 2-vCPU Debian 12 domain under QEMU 7.2 (TCG), CRLF as virsh returns it.
    const TWO_VCPUS: &str = include_str!("../../../fuzz/seeds/libvirt_text/info_registers.txt");

    #[test]
    fn info_registers_of_a_real_two_vcpu_domain() {
        let vcpus = parse_info_registers(TWO_VCPUS);
        assert_eq!(vcpus.len(), 2);
        assert_eq!(vcpus[0], VcpuRegisters { cpu: 0, cr0: 0x8005_0033, cr3: 0x21d9_2000, cr4: 0x6b0, efer: 0xd01 });
        assert_eq!(vcpus[1].cpu, 1);
        assert!(vcpus.iter().all(VcpuRegisters::long_mode_paging));
    }

    #[test]
    fn firmware_in_real_mode_is_not_long_mode_paging() {
        let text = "CPU#3\nCR0=00000010 CR2=00000000 CR3=00000000 CR4=00000000\nEFER=0000000000000000\n";
        let vcpus = parse_info_registers(text);
        assert_eq!(vcpus.iter().map(|v| (v.cpu, v.long_mode_paging())).collect::<Vec<_>>(), [(3, false)]);
    }

    #[test]
    fn incomplete_or_garbled_blocks_are_left_out() {
        let single = "CR0=80050033 CR3=1000 CR4=20\nEFER=d01\n";
        assert_eq!(parse_info_registers(single).len(), 1, "one vCPU without a CPU# line is vCPU 0");
        assert!(parse_info_registers("CPU#0\nCR0=80050033 CR3=zz CR4=20\nEFER=d01\n").is_empty());
        assert!(parse_info_registers("CPU#0\nCR0=80050033 CR4=20\nEFER=d01\nCPU#1\n").is_empty());
        assert!(parse_info_registers("error: Domain not found").is_empty());
        assert!(parse_info_registers("CPU#99999999999\nCR0==\n=\nCR3=ffffffffffffffffff").is_empty());
    }
}
