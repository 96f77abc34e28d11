//! Introspection benchmarks on a real guest (issue #3), each beside a baseline in the same run:
//!
//! - boot to introspection-ready (symbols recovered from memory) vs boot to the guest's own
//!   init (its console's ready line);
//! - kernel symbol recovery on a running guest vs reading its whole RAM file once (the I/O floor);
//! - virtual-memory reads (page walk + RAM file) vs physical reads of the same bytes, and vs the
//!   gdb stub's `m` packets;
//! - a hijacked `module_alloc` call (from the safe point) vs one gdb register read round trip,
//!   and the first call including the wait for a vCPU to reach the safe point.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use palisade_guest::initramfs::{self, READY_MARKER};
use palisade_guest::{Guest, GuestConfig};
use palisade_vmi::gdb::GdbClient;
use palisade_vmi::hijack::hijack_call;
use palisade_vmi::kallsyms::{self, KernelSymbols};
use palisade_vmi::{AddressSpace, Gpa, Gva, PhysMemory, RamFile, RamLayout, RamRegion, VirtMemory};

/// Arguments of `vmi`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Guest RAM in MiB.
    #[arg(long, default_value_t = 512)]
    memory_mb: u64,
    /// Boots measured (boot-to-ready figures).
    #[arg(long, default_value_t = 3)]
    boots: usize,
    /// Repetitions of each in-guest measurement.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Image cache.
    #[arg(long, env = "PALISADE_GUEST_CACHE", default_value = palisade_guest::DEFAULT_CACHE_DIR)]
    cache: PathBuf,
}

/// A busy guest: read(2) in a tight shell loop, so safe points come often.
const WORKLOAD: &[&str] = &["echo PALISADE-BENCH-LOOP", "while true; do read -r up < /proc/uptime; done"];

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

pub(crate) fn ram(guest: &Guest) -> anyhow::Result<RamFile> {
    let layout = RamLayout::new(
        guest
            .ram_layout()
            .iter()
            .map(|r| RamRegion { start: Gpa(r.gpa), len: r.len, file_offset: r.file_offset })
            .collect(),
    )?;
    Ok(RamFile::open(guest.ram_path(), layout)?)
}

fn symbol(k: &KernelSymbols, name: &str) -> anyhow::Result<Gva> {
    Ok(Gva(k.by_name(name).with_context(|| format!("no symbol {name}"))?.addr.0))
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let initrd = dir.path().join("bench.cpio");
    let workload = WORKLOAD.iter().map(|s| s.to_string()).collect();
    let (kernel, _) = initramfs::cloud_images(&args.cache, workload, false, &initrd)?;
    let base = GuestConfig::for_kernel("bench-vmi", &kernel, &initrd)?;
    let config = |i: usize| GuestConfig {
        name: format!("bench-vmi-{}-{i}", std::process::id()),
        memory_mib: args.memory_mb,
        ..base.clone()
    };

    // 1. Boot to introspection-ready vs boot to the guest's init.
    let (mut to_symbols, mut to_init) = (Vec::new(), Vec::new());
    let mut accel = String::new();
    // Separate boots for the two, so polling memory does not slow the boot it measures.
    for i in 0..args.boots {
        let t0 = Instant::now();
        let mut guest = Guest::start(&config(2 * i))?;
        guest.wait_for_console(READY_MARKER, Duration::from_secs(120))?;
        to_init.push(t0.elapsed().as_secs_f64());
        guest.stop()?;

        let t0 = Instant::now();
        let mut guest = Guest::start(&config(2 * i + 1))?;
        accel = format!("{:?} ({})", guest.accel().accel, guest.accel().reason);
        let mem = ram(&guest)?;
        let mut symbols_at = None;
        while t0.elapsed() < Duration::from_secs(120) {
            if kallsyms::recover(&mem).is_ok() {
                symbols_at = Some(t0.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        to_symbols.push(symbols_at.context("symbols never became recoverable")?.as_secs_f64());
        guest.stop()?;
    }

    // The remaining figures on one running guest.
    let mut guest = Guest::start(&config(1000))?;
    guest.wait_for_console("PALISADE-BENCH-LOOP", Duration::from_secs(120))?;
    let mem = ram(&guest)?;
    let total: u64 = guest.ram_layout().iter().map(|r| r.len).sum();

    // 2. Symbol recovery vs one sequential read of all RAM.
    let (mut recover_s, mut read_all_s) = (Vec::new(), Vec::new());
    let mut syms = None;
    let mut buf = vec![0u8; 2 << 20];
    for _ in 0..args.runs {
        let t = Instant::now();
        for r in mem.layout().regions() {
            let mut off = 0;
            while off < r.len {
                let n = buf.len().min((r.len - off) as usize);
                mem.read(Gpa(r.start.0 + off), &mut buf[..n])?;
                off += n as u64;
            }
        }
        read_all_s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        syms = Some(kallsyms::recover(&mem)?);
        recover_s.push(t.elapsed().as_secs_f64());
    }
    let syms = syms.context("no runs")?;

    // 3. Virtual reads vs physical reads vs gdb `m`, over the kernel's direct map.
    let mut gdb = GdbClient::connect_unix(guest.gdb_path())?;
    let regs = gdb.read_registers()?;
    let (cr3, cr4) = (regs.get("cr3").context("no cr3")?, regs.get("cr4").context("no cr4")?);
    let space = AddressSpace::from_registers(cr3, cr4);
    let virt = VirtMemory::new(&mem, space);
    let page_offset_base = virt.read_u64(symbol(&syms, "page_offset_base")?)?;
    let span = (total / 2).min(256 << 20);
    let chunk = 1 << 20;
    let (mut v_mbs, mut p_mbs) = (Vec::new(), Vec::new());
    for _ in 0..args.runs.min(5) {
        let t = Instant::now();
        let mut off = 0;
        while off < span {
            let got = virt.read(Gva(page_offset_base + off), &mut buf[..chunk]);
            if !got.is_complete() {
                bail!("direct map not fully mapped at +{off:#x}");
            }
            off += chunk as u64;
        }
        v_mbs.push(span as f64 / 1e6 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut off = 0;
        while off < span {
            mem.read(Gpa(off), &mut buf[..chunk])?;
            off += chunk as u64;
        }
        p_mbs.push(span as f64 / 1e6 / t.elapsed().as_secs_f64());
    }
    let gdb_span = 1 << 20;
    let t = Instant::now();
    gdb.read_memory(Gva(page_offset_base), gdb_span)?;
    let gdb_mbs = gdb_span as f64 / 1e6 / t.elapsed().as_secs_f64();

    // 4. Hijacked calls vs a gdb round trip.
    let safe_point = symbol(&syms, "__x64_sys_read")?;
    let module_alloc = symbol(&syms, "module_alloc")?;
    let t = Instant::now();
    let first = hijack_call(&mut gdb, safe_point, module_alloc, &[4096], Duration::from_secs(30))?;
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    if !(0xffff_ffff_a000_0000..0xffff_ffff_ff00_0000).contains(&first) {
        bail!("module_alloc returned {first:#x}, not a module-area address");
    }
    let (mut call_ms, mut rtt_ms) = (Vec::new(), Vec::new());
    for _ in 0..args.runs {
        let t = Instant::now();
        hijack_call(&mut gdb, safe_point, module_alloc, &[4096], Duration::from_secs(10))?;
        call_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        gdb.read_register("rip")?;
        rtt_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    gdb.detach()?;
    // The guest carries on after the calls.
    std::thread::sleep(Duration::from_millis(500));
    if guest.wait_exit(Duration::ZERO).is_ok() {
        bail!("the guest died after the hijacked calls");
    }
    guest.stop()?;

    println!("guest: {} MiB, {accel}, kernel {}", args.memory_mb, kernel.release);
    println!("| measurement | baseline (same run) | Palisade | goal |");
    println!("|---|---|---|---|");
    println!(
        "| boot to ready, median of {} | guest's init prints its ready line: {:.2} s | kernel symbols recoverable from memory: {:.2} s | — |",
        args.boots,
        median(&mut to_init),
        median(&mut to_symbols)
    );
    println!(
        "| symbol recovery ({} symbols), median of {} | one sequential read of all {} MiB of RAM: {:.0} ms | kallsyms::recover: {:.0} ms | < 1 s |",
        syms.symbols().len(),
        args.runs,
        total >> 20,
        median(&mut read_all_s) * 1e3,
        median(&mut recover_s) * 1e3
    );
    println!(
        "| memory read throughput, {} MiB of the direct map | physical (RAM file): {:.0} MB/s; gdb `m` packets: {:.1} MB/s | virtual (4/5-level walk + RAM file): {:.0} MB/s | — |",
        span >> 20,
        median(&mut p_mbs),
        gdb_mbs,
        median(&mut v_mbs)
    );
    println!(
        "| hijacked `module_alloc(4096)`, median of {} from the safe point | one gdb register read: {:.2} ms | {:.1} ms (first call, incl. waiting for `__x64_sys_read`: {:.1} ms) | < 50 ms |",
        args.runs,
        median(&mut rtt_ms),
        median(&mut call_ms),
        first_ms
    );
    Ok(())
}
