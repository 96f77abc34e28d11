//! Issue #15 benchmarks on libvirt domains booted from a real disk image (root, libvirt, QEMU):
//! attach time (RAM located and proven, symbols recovered) and attach-to-active time (plus a
//! gdb stub started at run time and the monitor injected and hooked) on a running domain, and
//! guest-RAM read throughput by access method (the QEMU process's memory for libvirt's default
//! anonymous RAM, the memfd for `<memoryBacking><source type='memfd'/>`) beside a raw read of
//! the same size from a /dev/shm file.
//!
//! `RUNS=5 cargo bench -p palisade-monitor --bench libvirt_attach` (prints a Markdown table).

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use palisade_libvirt::{AttachOptions, Attachment, Libvirt};
use palisade_monitor::{inject, Action, InjectOptions, Rule, Syscall};
use palisade_testkit::libvirt::{Bed, DomainOptions};

/// Bytes read for each throughput figure.
const SAMPLE: usize = 256 << 20;
const PIECE: usize = 2 << 20;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// MiB/s of reading SAMPLE bytes of guest RAM through `ram` in PIECE reads.
fn ram_throughput(ram: &palisade_vmi::RamFile) -> f64 {
    use palisade_vmi::PhysMemory;
    let mut buf = vec![0u8; PIECE];
    let t = Instant::now();
    for off in (0..SAMPLE).step_by(PIECE) {
        ram.read(palisade_vmi::Gpa(off as u64), &mut buf).expect("read RAM");
    }
    (SAMPLE >> 20) as f64 / t.elapsed().as_secs_f64()
}

/// MiB/s of reading a SAMPLE-byte /dev/shm file in PIECE preads: the boot form's access path
/// and the raw baseline.
fn raw_throughput() -> f64 {
    let path = format!("/dev/shm/palisade-bench-raw-{}", std::process::id());
    std::fs::write(&path, vec![0x5au8; SAMPLE]).expect("write /dev/shm file");
    let file = std::fs::File::open(&path).unwrap();
    let mut buf = vec![0u8; PIECE];
    let t = Instant::now();
    for off in (0..SAMPLE).step_by(PIECE) {
        file.read_exact_at(&mut buf, off as u64).unwrap();
    }
    let mib_s = (SAMPLE >> 20) as f64 / t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    mib_s
}

fn main() {
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let image = palisade_testkit::libvirt::disk_image();
    let libvirt = Libvirt::default();
    let run_dir = tempfile::tempdir().unwrap();
    let options = AttachOptions { run_dir: run_dir.path().to_owned() };
    let raw = raw_throughput();
    let mut rows = Vec::new();
    let mut bed = Bed::new("bench", 214);
    for (name, memfd) in [("anon", false), ("memfd", true)] {
        let dom = bed.start(name, &image, DomainOptions { memfd, ..DomainOptions::default() });
        let (mut attach, mut active, mut read) = (Vec::new(), Vec::new(), Vec::new());
        let mut method = String::new();
        let busy = dom.keep_busy();
        for _ in 0..runs {
            let t = Instant::now();
            let mut a = Attachment::attach(&libvirt, &dom.name, &options).unwrap_or_else(|e| panic!("attach: {e:#?}"));
            attach.push(t.elapsed().as_secs_f64());
            method = a.access().method().to_owned();
            read.push(ram_throughput(a.ram()));
            let gdb = a.gdb().unwrap();
            let opts = InjectOptions {
                safe_point: "__x64_sys_read".into(),
                timeout: Duration::from_secs(120),
                syscalls: ["read", "openat"].iter().map(|n| Syscall::by_name(n).unwrap()).collect(),
                rules: vec![Rule {
                    id: 1,
                    nr: None,
                    subject: None,
                    object: Some("/nonexistent/".into()),
                    action: Action::Record,
                }],
                method: None,
            };
            let mut m = inject(gdb, a.open_ram().unwrap(), a.symbols(), &opts)
                .unwrap_or_else(|e| panic!("inject: {}", palisade_host::chain(&e)));
            active.push(t.elapsed().as_secs_f64());
            m.unhook().unwrap();
            m.detach().unwrap();
            a.detach().unwrap();
        }
        drop(busy);
        eprintln!("{name}: attach {attach:?} active {active:?} read {read:?}");
        rows.push((name, method, median(&mut attach), median(&mut active), median(&mut read)));
        bed.stop(&dom);
    }
    println!("| domain RAM | access method | attach (median of {runs}) | attach to active (median) | RAM read, {} MiB in 2 MiB reads (median) | raw /dev/shm file read, same size |", SAMPLE >> 20);
    println!("|---|---|---|---|---|---|");
    for (name, method, attach, active, read) in rows {
        println!("| {name} | {method} | {attach:.2} s | {active:.2} s | {read:.0} MiB/s | {raw:.0} MiB/s |");
    }
}
