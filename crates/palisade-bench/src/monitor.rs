//! Agentless monitoring benchmarks on a real guest (issue #5), each beside its baseline in the
//! same run:
//!
//! - guest I/O: fio 4k random read/write 70:30 on a virtio disk (O_DIRECT, `sync` engine, so
//!   every I/O is one read(2) or write(2)), and a system-call loop (`dd bs=1`), before
//!   injection, with a `record` policy on read/write/openat/close matching every call, and
//!   after unhooking;
//! - host CPU and memory of the monitor (the thread polling mem-S, at the runtime's interval)
//!   beside QEMU's own CPU and memory in the same phase;
//! - time from QEMU start to the guest's init, and to monitoring active (symbols recovered,
//!   payload injected, hooks live).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use palisade_guest::initramfs::{self, ExtraFile, READY_MARKER, VIRTIO_BLK_MODULES};
use palisade_guest::{Guest, GuestConfig, InitramfsSpec, KernelImage};
use palisade_monitor::classic::breakpoint_cost;
use palisade_monitor::{inject, Action, EventReader, InjectOptions, MemS, Monitor, Rule, Syscall};
use palisade_vmi::gdb::GdbClient;
use palisade_vmi::kallsyms::{self, KernelSymbols};
use palisade_vmi::RamFile;

use crate::vmi::ram;

/// Arguments of `monitor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Guest RAM in MiB (the fio guest carries fio and its libraries in its initramfs).
    #[arg(long, default_value_t = 1024)]
    memory_mb: u64,
    /// Boots measured for boot-to-monitoring-active.
    #[arg(long, default_value_t = 3)]
    boots: usize,
    /// Runs of fio and of the loop in each phase.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds each fio run lasts.
    #[arg(long, default_value_t = 10)]
    fio_seconds: u32,
    /// `dd bs=1 count=N` in the system-call loop (2N calls).
    #[arg(long, default_value_t = 100_000)]
    loop_count: u64,
    /// The fio binary (its shared libraries come along, found by `ldd`).
    #[arg(long, default_value = "/usr/bin/fio")]
    fio: PathBuf,
    /// Image cache.
    #[arg(long, env = "PALISADE_GUEST_CACHE", default_value = palisade_guest::DEFAULT_CACHE_DIR)]
    cache: PathBuf,
}

/// The system calls the paper's Table 4 policy monitors.
const HOOKED: [&str; 4] = ["read", "write", "openat", "close"];
/// Trapped calls timed for the breakpoint baseline.
const BREAKPOINT_HITS: u32 = 200;
/// The rule id of the record-everything rule.
const RECORD_ALL: u32 = 1;

fn syscalls() -> Vec<Syscall> {
    HOOKED.iter().map(|n| Syscall::by_name(n).expect("a known system call")).collect()
}

/// Gate `n`: while its block rule is absent, `cat /gate<n>` succeeds and the guest waits there.
fn gate_rule(n: u32) -> Rule {
    let openat = Syscall::by_name("openat").map(|s| s.nr);
    Rule {
        id: 10 + n,
        nr: openat,
        subject: Some("cat".into()),
        object: Some(format!("/gate{n}")),
        action: Action::Block,
    }
}

/// `examples/monitor.yaml`'s record rules: accesses under /etc and /root are recorded, the rest
/// is checked against them and passes (fio's and dd's calls included).
fn record_sensitive() -> Vec<Rule> {
    ["/etc/", "/root/"]
        .iter()
        .enumerate()
        .map(|(i, o)| Rule {
            id: 2 + i as u32,
            nr: None,
            subject: None,
            object: Some(o.to_string()),
            action: Action::Record,
        })
        .collect()
}

fn record_all() -> Rule {
    Rule { id: RECORD_ALL, nr: None, subject: None, object: None, action: Action::Record }
}

fn options(rules: Vec<Rule>) -> InjectOptions {
    InjectOptions {
        safe_point: "__x64_sys_read".into(),
        timeout: Duration::from_secs(120),
        syscalls: syscalls(),
        rules,
        method: None,
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if !args.fio.is_file() {
        bail!("fio not found at {} (bench/monitor.sh installs Debian's fio)", args.fio.display());
    }
    let kernel = KernelImage::fetch_cloud(&args.cache)?;
    boot_to_active(args, &kernel)?;
    overhead(args, &kernel)
}

/// Boots a busy guest and injects as soon as its symbols can be recovered.
fn boot_to_active(args: &Args, kernel: &KernelImage) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let initrd = dir.path().join("boot.cpio");
    let workload = vec!["while true; do read -r up < /proc/uptime; done".to_string()];
    let spec = InitramfsSpec {
        busybox: initramfs::static_busybox(&args.cache)?,
        modules: Vec::new(),
        workload,
        files: Vec::new(),
    };
    initramfs::build(&spec, &initrd)?;
    println!("## Boot to monitoring active ({} boots, 512 MiB guest)\n", args.boots);
    println!("| boot | QEMU start -> init's ready line (kernel up) | -> symbols recovered | -> monitoring active | active after kernel up | inject: alloc / write / protect / hook |");
    println!("|---|---|---|---|---|---|");
    let mut after_init = Vec::new();
    for i in 0..args.boots {
        let config = GuestConfig::for_kernel(format!("bench-mon-boot-{}-{i}", std::process::id()), kernel, &initrd)?;
        let t0 = Instant::now();
        let mut guest = Guest::start(&config)?;
        let mem = ram(&guest)?;
        // The kernel is up when its init prints the ready line; the host then recovers the
        // symbols from RAM and injects. (Symbols become recoverable earlier, during boot, but
        // the hijacked calls need user space making system calls.)
        let mut ready = None;
        while ready.is_none() {
            if t0.elapsed() > Duration::from_secs(180) {
                bail!("the guest never printed its ready line");
            }
            if guest.console_text()?.contains(READY_MARKER) {
                ready = Some(t0.elapsed());
            } else {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let ready = ready.expect("loop ends when ready");
        let symbols: KernelSymbols = kallsyms::recover(&mem)?;
        let at_symbols = t0.elapsed();
        let gdb = GdbClient::connect_unix(guest.gdb_path())?;
        let monitor = inject(gdb, ram(&guest)?, &symbols, &options(vec![record_all()]))?;
        let at_active = t0.elapsed();
        let t = monitor.timings();
        let after = at_active.as_secs_f64() - ready.as_secs_f64();
        after_init.push(after);
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.0} / {:.0} / {:.0} / {:.0} ms |",
            i + 1,
            ready.as_secs_f64(),
            at_symbols.as_secs_f64(),
            at_active.as_secs_f64(),
            after,
            ms(t.alloc),
            ms(t.write),
            ms(t.protect),
            ms(t.hook),
        );
        monitor.detach().ok();
        guest.stop()?;
    }
    after_init.sort_by(f64::total_cmp);
    println!(
        "\nmedian time from kernel up to monitoring active: {:.2} s (accelerator: see the overhead run)\n",
        after_init[after_init.len() / 2]
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn workload(args: &Args) -> Vec<String> {
    let fio = format!(
        "fio --minimal --thread --name=bench --filename=/dev/vda --direct=1 --ioengine=sync --rw=randrw \
         --rwmixread=70 --bs=4k --size=240m --runtime={} --time_based --randseed=7",
        args.fio_seconds
    );
    let runs = args.runs;
    vec![
        "echo gate > /gate1; echo gate > /gate2".into(),
        "cs() { read -r up _ < /proc/uptime; echo \"${up%.*}${up#*.}\"; }".into(),
        format!("fio_run() {{ r=$({fio} 2>&1); echo \"PALISADE-FIO $1 $r\"; }}"),
        format!(
            "loop_run() {{ a=$(cs); dd if=/dev/zero of=/dev/null bs=1 count={} 2>/dev/null; b=$(cs); \
             echo \"PALISADE-LOOP $1 $((b - a))\"; }}",
            args.loop_count
        ),
        format!("for i in $(seq {runs}); do fio_run plain; loop_run plain; done"),
        "echo PALISADE-MON-WAIT".into(),
        // `cat` copies with sendfile(2): the `read` keeps read(2), the safe point, busy.
        "while cat /gate1 >/dev/null 2>&1; do read -r up < /proc/uptime; sleep 0.05; done".into(),
        format!("for i in $(seq {runs}); do fio_run hooked; loop_run hooked; done"),
        "echo PALISADE-HOOKED-DONE".into(),
        "while cat /gate2 >/dev/null 2>&1; do sleep 0.05; done".into(),
        format!("for i in $(seq {runs}); do fio_run recorded; loop_run recorded; done"),
        "echo PALISADE-MON-DONE".into(),
        "sleep 10".into(),
        "echo PALISADE-AFTER".into(),
        format!("for i in $(seq {runs}); do fio_run after; loop_run after; done"),
        // Classic VMI for comparison: the host traps read(2) with a gdb breakpoint meanwhile.
        "echo PALISADE-BP-PHASE".into(),
        "dd if=/dev/zero of=/dev/null bs=1 count=1000000 2>/dev/null".into(),
    ]
}

/// One phase's guest figures.
#[derive(Debug, Default)]
struct Phase {
    read_iops: Vec<f64>,
    write_iops: Vec<f64>,
    /// Loop times in centiseconds.
    loop_cs: Vec<f64>,
}

fn parse_phase(console: &str, phase: &str) -> anyhow::Result<Phase> {
    let mut p = Phase::default();
    let fio_key = format!("PALISADE-FIO {phase} ");
    let loop_key = format!("PALISADE-LOOP {phase} ");
    for line in console.lines() {
        if let Some(terse) = line.split(&fio_key).nth(1) {
            // Terse format v3: field 8 is read IOPS, field 49 write IOPS (1-based).
            let f: Vec<&str> = terse.trim().split(';').collect();
            let field = |i: usize| f.get(i - 1).and_then(|v| v.parse::<f64>().ok());
            match (f.first(), field(8), field(49)) {
                (Some(&"3"), Some(r), Some(w)) => {
                    p.read_iops.push(r);
                    p.write_iops.push(w);
                }
                _ => bail!("fio in phase {phase} did not report: {line}"),
            }
        }
        if let Some(v) = line.split(&loop_key).nth(1) {
            p.loop_cs.push(v.trim().parse().with_context(|| format!("loop time in {line:?}"))?);
        }
    }
    Ok(p)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// CPU time of the calling thread, from the scheduler's own accounting (nanoseconds).
fn thread_cpu() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A process's user + system CPU time (nanoseconds, clock-tick resolution).
fn process_cpu(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    let tick = 1e9 / 100.0; // USER_HZ is 100 on Linux x86-64
    (f.iter().sum::<u64>() as f64 * tick) as u64
}

/// A process's resident set (bytes).
fn rss(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// What the polling thread did.
#[derive(Debug, Default)]
struct PollStats {
    events: u64,
    lost: u64,
    polls: u64,
    cpu_ns: u64,
    wall: Duration,
}

/// Polls mem-S at the runtime's interval until `stop`, as the runtime's monitor thread does.
fn poller(mems: MemS<RamFile>, stop: Arc<AtomicBool>) -> anyhow::Result<PollStats> {
    let mut reader = EventReader::new(&mems)?;
    let (cpu0, t0) = (thread_cpu(), Instant::now());
    let mut s = PollStats::default();
    while !stop.load(Ordering::Relaxed) {
        let batch = reader.poll(&mems)?;
        s.polls += 1;
        s.lost += batch.lost;
        s.events += batch.events.iter().filter(|e| e.rule == RECORD_ALL).count() as u64;
        std::thread::sleep(palisade_runtime::MONITOR_POLL);
    }
    let batch = reader.poll(&mems)?;
    s.lost += batch.lost;
    s.events += batch.events.iter().filter(|e| e.rule == RECORD_ALL).count() as u64;
    s.cpu_ns = thread_cpu() - cpu0;
    s.wall = t0.elapsed();
    Ok(s)
}

fn overhead(args: &Args, kernel: &KernelImage) -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in("/var/tmp")?;
    let initrd = dir.path().join("fio.cpio");
    let mut files: Vec<ExtraFile> = initramfs::host_program(&args.fio)?;
    files.dedup_by(|a, b| a.guest == b.guest);
    let spec = InitramfsSpec {
        busybox: initramfs::static_busybox(&args.cache)?,
        modules: kernel.module_closure(VIRTIO_BLK_MODULES)?,
        workload: workload(args),
        files,
    };
    let built = initramfs::build(&spec, &initrd)?;
    let disk = dir.path().join("disk.img");
    std::fs::File::create(&disk)?.set_len(256 << 20)?;
    let mut config = GuestConfig::for_kernel(format!("bench-mon-fio-{}", std::process::id()), kernel, &initrd)?;
    config.memory_mib = args.memory_mb;
    config.disks = vec![disk];
    let mut guest = Guest::start(&config)?;
    let accel = format!("{:?} ({})", guest.accel().accel, guest.accel().reason);
    eprintln!("fio guest started ({accel}); initramfs {} MiB; plain phase...", built.size >> 20);
    let phase_timeout = Duration::from_secs(120 + 4 * args.runs as u64 * (u64::from(args.fio_seconds) + 30));
    guest.wait_for_console("PALISADE-MON-WAIT", phase_timeout)?;

    let mem = ram(&guest)?;
    let symbols = kallsyms::recover(&mem)?;
    let rss_before = rss("self");
    let gdb = GdbClient::connect_unix(guest.gdb_path())?;
    let mut rules = vec![gate_rule(1)];
    rules.extend(record_sensitive());
    let mut monitor: Monitor = inject(gdb, ram(&guest)?, &symbols, &options(rules))?;
    let (_, mem_a) = monitor.allocation();
    let stop = Arc::new(AtomicBool::new(false));
    let mems = MemS::new(ram(&guest)?, monitor.mem_s().pages().to_vec());
    let poll_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || poller(mems, stop))
    };
    let (qemu_cpu0, t0) = (process_cpu(guest.pid()), Instant::now());
    eprintln!("monitor injected; phase with the example's record rules...");
    guest.wait_for_console("PALISADE-HOOKED-DONE", phase_timeout)?;
    // Live policy change: record every hooked call.
    monitor.set_policy(&[gate_rule(1), gate_rule(2), record_all()])?;
    eprintln!("record-everything phase...");
    guest.wait_for_console("PALISADE-MON-DONE", phase_timeout)?;
    let (qemu_cpu, wall) = (process_cpu(guest.pid()) - qemu_cpu0, t0.elapsed());
    let rss_during = rss("self");
    let qemu_rss = rss(&guest.pid().to_string());
    stop.store(true, Ordering::Relaxed);
    let polled = poll_thread.join().map_err(|_| anyhow::anyhow!("the polling thread panicked"))??;
    monitor.unhook()?;
    if guest.console_text()?.contains("PALISADE-AFTER") {
        bail!("unhooking took longer than the guest's 10 s pause: the `after` phase is not unmonitored");
    }
    monitor.detach()?;
    eprintln!("unhooked; after phase...");
    guest.wait_for_console("PALISADE-BP-PHASE", phase_timeout)?;
    let read_handler = symbols.by_name("__x64_sys_read").context("no __x64_sys_read")?.addr.0;
    let per_trap = breakpoint_cost(GdbClient::connect_unix(guest.gdb_path())?, read_handler, BREAKPOINT_HITS)?;
    guest.wait_for_console(initramfs::WORKLOAD_DONE_MARKER, phase_timeout)?;
    let console = guest.console_text()?;
    guest.wait_exit(Duration::from_secs(60))?;

    let plain = parse_phase(&console, "plain")?;
    let hooked = parse_phase(&console, "hooked")?;
    let recorded = parse_phase(&console, "recorded")?;
    let after = parse_phase(&console, "after")?;
    for (name, p) in [("plain", &plain), ("hooked", &hooked), ("recorded", &recorded), ("after", &after)] {
        if p.read_iops.len() != args.runs || p.loop_cs.len() != args.runs {
            bail!(
                "phase {name}: {} fio and {} loop results, expected {} each",
                p.read_iops.len(),
                p.loop_cs.len(),
                args.runs
            );
        }
    }
    report(args, &accel, [&plain, &hooked, &recorded, &after]);
    let per_call = |p: &Phase| mean(&p.loop_cs) * 1e7 / (2 * args.loop_count) as f64;
    let event_ns = per_call(&recorded) - (per_call(&plain) + per_call(&after)) / 2.0;
    println!("\n## Per-event cost: injected monitor vs a breakpoint per call (classic VMI)\n");
    println!("| | injected monitor (record, dd loop: recorded minus unmonitored, per call) | gdb software breakpoint on __x64_sys_read ({BREAKPOINT_HITS} hits) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| per event | {:.0} ns | {:.0} ns | {:.0}x cheaper |",
        event_ns,
        per_trap.as_nanos() as f64,
        per_trap.as_nanos() as f64 / event_ns.max(1.0)
    );
    let cpu_pct = polled.cpu_ns as f64 / polled.wall.as_nanos() as f64 * 100.0;
    println!("\n## Host cost of the monitor during the monitored phase ({:.0} s)\n", wall.as_secs_f64());
    println!(
        "| | monitor (mem-S polling thread, every {:?}) | QEMU (the guest itself) |",
        palisade_runtime::MONITOR_POLL
    );
    println!("|---|---|---|");
    println!("| CPU, % of one core | {:.3} % | {:.1} % |", cpu_pct, qemu_cpu as f64 / wall.as_nanos() as f64 * 100.0);
    println!("| CPU, % of the host ({} cores) | {:.4} % | |", cores(), cpu_pct / cores() as f64);
    println!(
        "| host memory | {:+.1} MiB process RSS after injection and polling | {:.0} MiB RSS |",
        (rss_during as f64 - rss_before as f64) / (1 << 20) as f64,
        qemu_rss as f64 / (1 << 20) as f64
    );
    println!(
        "| guest memory (mem-A: payload + mem-S) | {} KiB = {:.3} % of the guest's {} MiB | |",
        mem_a >> 10,
        mem_a as f64 / (args.memory_mb << 20) as f64 * 100.0,
        args.memory_mb
    );
    println!(
        "\nrecord-everything phase: events received {}, lost {} (ring full, counted by the payload), in {} polls over both monitored phases",
        polled.events, polled.lost, polled.polls
    );
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn report(args: &Args, accel: &str, [plain, hooked, recorded, after]: [&Phase; 4]) {
    let base = |f: fn(&Phase) -> &Vec<f64>| (mean(f(plain)) + mean(f(after))) / 2.0;
    let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ");
    println!(
        "## Guest I/O with and without monitoring ({accel}; {} runs per phase; fio {} s each)\n",
        args.runs, args.fio_seconds
    );
    println!(
        "Phases in order: before injection; hooked read/write/openat/close with examples/monitor.yaml's record \
         rules (/etc/, /root/: the benchmark's calls are checked and pass); the same hooks recording every call; \
         after unhook. Slowdown is against the mean of the two unmonitored phases.\n"
    );
    println!("| measure | before | record rules of the example | record everything | after unhook | slowdown: example rules | slowdown: everything |");
    println!("|---|---|---|---|---|---|---|");
    let per_call = |cs: f64| cs * 1e7 / (2 * args.loop_count) as f64;
    type Row = (String, fn(&Phase) -> &Vec<f64>, bool);
    let rows: [Row; 3] = [
        ("fio 4k randrw 70:30, read IOPS".into(), |p| &p.read_iops, true),
        ("fio 4k randrw 70:30, write IOPS".into(), |p| &p.write_iops, true),
        (format!("dd bs=1 ({} read/write calls), ns per call", 2 * args.loop_count), |p| &p.loop_cs, false),
    ];
    for (name, f, iops) in rows {
        let b = base(f);
        let slow = |p: &Phase| {
            let m = mean(f(p));
            if iops {
                (b - m) / b * 100.0
            } else {
                (m - b) / b * 100.0
            }
        };
        let show =
            |p: &Phase| if iops { fmt(f(p)) } else { fmt(&f(p).iter().map(|&c| per_call(c)).collect::<Vec<_>>()) };
        println!(
            "| {name} | {} | {} | {} | {} | {:.1} % | {:.1} % |",
            show(plain),
            show(hooked),
            show(recorded),
            show(after),
            slow(hooked),
            slow(recorded)
        );
    }
}
