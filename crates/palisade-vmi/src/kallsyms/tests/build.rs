//! Builds kallsyms table sets the way scripts/kallsyms.c writes them (real token compression,
//! real encodings), and a small kernel image around them in fake guest memory.

use crate::{FakeMemory, Gpa, PhysMemory};

/// Where the address table goes and how it is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addrs {
    /// `kallsyms_offsets` + `kallsyms_relative_base`.
    Relative { absolute_percpu: bool },
    /// `kallsyms_addresses` (3.10 style: `num_syms` is a `PTR` too).
    Absolute,
}

/// A table-set recipe.
#[derive(Clone, Debug)]
pub struct Spec {
    pub addrs: Addrs,
    pub seqs: bool,
    /// 6.4+ order: num_syms, names, markers, token_table, token_index, offsets, base, seqs.
    pub new_order: bool,
    pub marker_width: u8,
}

/// One input symbol: runtime address, type, name, absolute per-cpu.
#[derive(Clone, Debug)]
pub struct In {
    pub addr: u64,
    pub kind: u8,
    pub name: String,
    pub percpu: bool,
}

/// Offsets of the tables inside the built blob.
#[derive(Debug, Default)]
pub struct Built {
    pub bytes: Vec<u8>,
    pub token_table: usize,
    pub names: usize,
    /// Names written with a two-byte length.
    pub big_names: usize,
}

fn align8(v: &mut Vec<u8>) {
    while v.len() & 7 != 0 {
        v.push(0);
    }
}

/// The token table and each symbol's codes, by scripts/kallsyms.c's algorithm: codes used by a
/// real character stand for it; every free code, from 255 down, takes the most frequent
/// adjacent pair of codes until no pair is left.
fn compress(raw: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut tokens: Vec<Vec<u8>> = vec![Vec::new(); 256];
    let mut syms: Vec<Vec<u8>> = raw.to_vec();
    for s in &syms {
        for &c in s {
            tokens[usize::from(c)] = vec![c];
        }
    }
    for code in (0..=255u8).rev() {
        if !tokens[usize::from(code)].is_empty() {
            continue;
        }
        let mut counts = vec![0u32; 65536];
        for s in &syms {
            for w in s.windows(2) {
                counts[usize::from(w[0]) << 8 | usize::from(w[1])] += 1;
            }
        }
        let (best, &n) = counts.iter().enumerate().max_by_key(|(i, &c)| (c, usize::MAX - i)).unwrap();
        if n == 0 {
            break;
        }
        let (a, b) = ((best >> 8) as u8, (best & 0xff) as u8);
        tokens[usize::from(code)] = [tokens[usize::from(a)].clone(), tokens[usize::from(b)].clone()].concat();
        for s in &mut syms {
            let mut out = Vec::with_capacity(s.len());
            let mut i = 0;
            while i < s.len() {
                if i + 1 < s.len() && s[i] == a && s[i + 1] == b {
                    out.push(code);
                    i += 2;
                } else {
                    out.push(s[i]);
                    i += 1;
                }
            }
            *s = out;
        }
    }
    (tokens, syms)
}

/// Writes the table set for `syms` (sorted by address here, as the kernel does).
pub fn build(spec: &Spec, syms: &[In]) -> Built {
    let mut syms = syms.to_vec();
    syms.sort_by_key(|s| s.addr);
    let n = syms.len();
    let raw: Vec<Vec<u8>> = syms.iter().map(|s| [vec![s.kind], s.name.as_bytes().to_vec()].concat()).collect();
    let (tokens, codes) = compress(&raw);
    let base = syms.iter().find(|s| !s.percpu).map(|s| s.addr).unwrap();

    let mut addr_table = Vec::new();
    match spec.addrs {
        Addrs::Relative { absolute_percpu } => {
            for s in &syms {
                let off: i32 = if absolute_percpu && s.percpu {
                    i32::try_from(s.addr).unwrap()
                } else if absolute_percpu {
                    i32::try_from(-(i128::from(s.addr) - i128::from(base)) - 1).unwrap()
                } else {
                    u32::try_from(s.addr - base).unwrap() as i32
                };
                addr_table.extend(off.to_le_bytes());
            }
            align8(&mut addr_table);
            addr_table.extend(base.to_le_bytes());
        }
        Addrs::Absolute => syms.iter().for_each(|s| addr_table.extend(s.addr.to_le_bytes())),
    }
    align8(&mut addr_table);

    let mut names = Vec::new();
    let mut markers = Vec::new();
    let big_names = codes.iter().filter(|c| c.len() > 0x7f).count();
    for (i, c) in codes.iter().enumerate() {
        if i % 256 == 0 {
            markers.push(names.len() as u64);
        }
        if c.len() > 0x7f {
            names.push((c.len() & 0x7f) as u8 | 0x80);
            names.push((c.len() >> 7) as u8);
        } else {
            names.push(c.len() as u8);
        }
        names.extend(c);
    }
    let mut seqs = Vec::new();
    if spec.seqs {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| syms[a].name.cmp(&syms[b].name).then(a.cmp(&b)));
        for i in order {
            seqs.extend([(i >> 16) as u8, (i >> 8) as u8, i as u8]);
        }
        align8(&mut seqs);
    }
    let mut marker_bytes = Vec::new();
    for m in markers {
        if spec.marker_width == 8 {
            marker_bytes.extend(m.to_le_bytes());
        } else {
            marker_bytes.extend((m as u32).to_le_bytes());
        }
    }
    align8(&mut marker_bytes);
    let mut table = Vec::new();
    let mut index = Vec::new();
    for t in &tokens {
        index.extend((table.len() as u16).to_le_bytes());
        table.extend(t);
        table.push(0);
    }
    align8(&mut table);

    let mut out = Built { big_names, ..Built::default() };
    let b = &mut out.bytes;
    if !spec.new_order {
        b.extend(&addr_table);
    }
    if spec.addrs == Addrs::Absolute {
        b.extend((n as u64).to_le_bytes());
    } else {
        b.extend((n as u32).to_le_bytes());
        align8(b);
    }
    out.names = b.len();
    b.extend(&names);
    align8(b);
    b.extend(&marker_bytes);
    if spec.seqs && !spec.new_order {
        b.extend(&seqs);
    }
    out.token_table = b.len();
    b.extend(&table);
    b.extend(&index);
    if spec.new_order {
        b.extend(&addr_table);
        b.extend(&seqs);
    }
    out
}

/// A fake kernel image: `_text` at `vbase`, physically at `pbase`, tables at image offset
/// `TABLES`, a `linux_banner` and a relocated `phys_base` in place.
pub struct Image {
    pub vbase: u64,
    pub pbase: u64,
    pub syms: Vec<In>,
}

pub const MEM: u64 = 16 << 20;
pub const TABLES: u64 = 0x10_0000;
const BANNER: u64 = 0x1000;
const PHYS_BASE_VAR: u64 = 0x2000;
const END: u64 = 0x40_0000;

impl Image {
    /// A kernel at `slide` (VA) and `pbase` (PA) with `extra` symbols besides the fixed ones.
    pub fn new(slide: u64, pbase: u64, percpu: bool, extra: &[(u64, u8, &str)]) -> Image {
        let vbase = 0xffff_ffff_8100_0000 + slide;
        let mut syms = vec![
            In { addr: vbase, kind: b'T', name: "_text".into(), percpu: false },
            In { addr: vbase, kind: b'T', name: "startup_64".into(), percpu: false },
            In { addr: vbase + 0x40, kind: b'T', name: "_stext".into(), percpu: false },
            In { addr: vbase + BANNER, kind: b'D', name: "linux_banner".into(), percpu: false },
            In { addr: vbase + PHYS_BASE_VAR, kind: b'D', name: "phys_base".into(), percpu: false },
            In { addr: vbase + END, kind: b'B', name: "_end".into(), percpu: false },
        ];
        if percpu {
            syms.push(In { addr: 0, kind: b'A', name: "fixed_percpu_data".into(), percpu: true });
            syms.push(In { addr: 0x1000, kind: b'A', name: "cpu_debug_store".into(), percpu: true });
        }
        for &(off, kind, name) in extra {
            syms.push(In { addr: vbase + off, kind, name: name.into(), percpu: false });
        }
        Image { vbase, pbase, syms }
    }

    /// Fake guest memory holding the image with tables built per `spec`.
    pub fn memory(&self, spec: &Spec) -> (FakeMemory, Built) {
        self.memory_sized(spec, MEM)
    }

    /// The same in `size` bytes of RAM.
    pub fn memory_sized(&self, spec: &Spec, size: u64) -> (FakeMemory, Built) {
        let mem = FakeMemory::new(size);
        let built = build(spec, &self.syms);
        mem.write(Gpa(self.pbase + BANNER), b"Linux version 6.1.0-test (fake)\n").unwrap();
        let phys_base = self.pbase.wrapping_sub(self.vbase - 0xffff_ffff_8000_0000);
        mem.write(Gpa(self.pbase + PHYS_BASE_VAR), &phys_base.to_le_bytes()).unwrap();
        mem.write(Gpa(self.pbase + TABLES), &built.bytes).unwrap();
        (mem, built)
    }
}

/// `count` kernel-looking names, seeded.
pub fn names(count: usize, seed: u64) -> Vec<String> {
    const PARTS: [&str; 16] = [
        "do_", "sys_", "vfs_", "read", "write", "_page", "inode", "__x64_", "net", "_init", "sched", "_lock", "tcp_",
        "irq", "mm_", "file",
    ];
    let mut rng = palisade_rng::Rng::new(seed);
    (0..count)
        .map(|i| {
            let k = 2 + rng.below(3);
            let mut s: String = (0..k).map(|_| PARTS[rng.below(PARTS.len())]).collect();
            s.push_str(&format!("{i}"));
            s
        })
        .collect()
}
