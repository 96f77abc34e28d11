//! The kernel compatibility table (issue #15; root + QEMU TCG, fails loudly without them): for
//! each kernel in [`KERNELS`] (Debian 12's 6.1 generic, cloud and real-time kernels and the
//! archive's 6.12 generic, cloud and real-time kernels; `PALISADE_KERNELS=6.12-amd64,...` runs others),
//! a guest boots that kernel and
//! - the symbols recovered from its RAM equal its own /proc/kallsyms, line for line;
//! - a hijacked call (`gcd(462, 1071)`) returns 21;
//! - the monitor injects (allocator and hook method chosen from the kernel's symbols and code),
//!   records a `cat` of a watched file, blocks `cat /etc/shadow` with "Operation not permitted",
//!   and unhooks back to the original bytes, after which the guest works on and powers off.
//!
//! Every kernel is tried even when one fails; the table (`kernel-compat.md` in the test
//! target's temporary directory, copied into `docs/kernels.md` by `scripts/kernel-table.sh`)
//! says what passed, and the test fails if anything did not.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use palisade_guest::initramfs::{READY_MARKER, WORKLOAD_DONE_MARKER};
use palisade_guest::KernelChoice;
use palisade_monitor::{inject, Action, EventReader, InjectOptions, Rule, Syscall};
use palisade_vmi::gdb::GdbClient;
use palisade_vmi::hijack::{hijack_call, reach_safe_point};
use palisade_vmi::{kallsyms, Gva};
use support::{value_after, TestGuest, MEM_MIB};

/// The kernels of the table, as `[SERIES-]FLAVOUR` (see `KernelChoice`).
const KERNELS: &[&str] = &["cloud-amd64", "amd64", "rt-amd64", "6.12-amd64", "6.12-cloud-amd64", "6.12-rt-amd64"];

const WAIT: &str = "PALISADE-K-WAIT";

fn workload() -> Vec<String> {
    [
        "mkdir -p /etc /tmp/pal",
        "echo 'root:*:19000:0:99999:7:::' > /etc/shadow",
        "echo palisade-watched > /tmp/pal/in.txt",
        "echo gate > /gate",
        &format!("echo {WAIT}"),
        // Until the monitor blocks `cat /gate`; read(2) each round is the hijack's safe point.
        "while cat /gate >/dev/null 2>&1; do read -r up < /proc/uptime; sleep 0.05; done",
        "cat /tmp/pal/in.txt; echo \"PALISADE-K-CAT-IN status=$?\"",
        "cat /etc/shadow; echo \"PALISADE-K-CAT-SHADOW status=$?\"",
        "echo PALISADE-K-CHECKED",
        "while ! cat /gate >/dev/null 2>&1; do sleep 0.05; done",
        "echo PALISADE-K-UNHOOKED-SEEN",
        "cat /etc/shadow > /dev/null || exit 3",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn rules() -> Vec<Rule> {
    let openat = Syscall::by_name("openat").map(|s| s.nr);
    let mut rules = support::record_and_block_shadow();
    rules.push(Rule {
        id: 3,
        nr: openat,
        subject: Some("cat".into()),
        object: Some("/gate".into()),
        action: Action::Block,
    });
    rules
}

/// One row of the table.
#[derive(Debug, Default)]
struct Row {
    choice: String,
    release: String,
    symbols: String,
    hijack: String,
    monitor: String,
    allocator: String,
    method: String,
    timings: String,
}

impl Row {
    fn passed(&self) -> bool {
        self.symbols.contains("exact") && self.hijack == "pass" && self.monitor == "pass"
    }

    fn markdown(&self) -> String {
        format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
            self.choice,
            self.release,
            self.symbols,
            self.hijack,
            self.monitor,
            self.allocator,
            self.method,
            self.timings
        )
    }
}

/// What a failed step says in the table: its message's first line.
fn failed(step: &str, message: &str) -> String {
    format!("**fails** ({step}: {})", message.lines().next().unwrap_or_default().replace('|', "/"))
}

/// Boots `choice` and fills `row` step by step; a step's failure ends the run (later columns
/// say what was not reached). Panics inside (a boot that never comes up) are caught by the
/// caller.
fn run(choice: &KernelChoice, row: &mut Row) {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    row.hijack = "not reached".into();
    row.monitor = "not reached".into();
    let t = Instant::now();
    let name = format!("kern-{}", choice.to_string().replace('.', "_"));
    let (guest, dump) = palisade_testkit::guest::boot_kernel(choice, &name, 2, MEM_MIB, workload(), tmp);
    let kallsyms_lines = dump.lines().filter(|l| !l.trim().is_empty()).count();
    let mut tg = TestGuest { guest, kallsyms_lines };
    let console = tg.console();
    row.release = console.lines().find_map(|l| l.split(READY_MARKER).nth(1)).unwrap_or("?").trim().to_owned();
    tg.wait(WAIT);
    let boot = t.elapsed();

    // Symbols from RAM against the guest's own /proc/kallsyms (core lines: no `[owner]`).
    let t = Instant::now();
    let ram = tg.ram();
    let symbols = match kallsyms::recover(&ram) {
        Ok(s) => s,
        Err(e) => {
            row.symbols = failed("recovery", &format!("{e}"));
            return;
        }
    };
    let recovery = t.elapsed();
    // The baseline for the symbol recovery time: one read of all RAM in 2 MiB pieces.
    let t = Instant::now();
    let mut buf = vec![0u8; 2 << 20];
    for (start, len) in palisade_vmi::PhysMemory::regions(&ram) {
        for off in (0..len).step_by(buf.len()) {
            let n = (len - off).min(buf.len() as u64) as usize;
            palisade_vmi::PhysMemory::read(&ram, palisade_vmi::Gpa(start.0 + off), &mut buf[..n]).expect("read RAM");
        }
    }
    let read_all = t.elapsed();
    let want = palisade_testkit::guest::core_kallsyms(&dump);
    let got: Vec<String> = symbols.symbols().iter().map(ToString::to_string).collect();
    let same = got.iter().zip(&want).filter(|(g, w)| g == w).count();
    row.symbols = if same == want.len() && got.len() == want.len() {
        format!("{same} / {} exact", want.len())
    } else {
        format!("**{same} / {} equal** ({} recovered)", want.len(), got.len())
    };

    // A hijacked call from the safe point.
    let mut gdb = GdbClient::connect_unix(tg.guest.gdb_path()).expect("connect to QEMU's gdb stub");
    let by_name = |n: &str| symbols.by_name(n).map(|s| Gva(s.addr.0));
    let (Some(read), Some(gcd)) = (by_name("__x64_sys_read"), by_name("gcd")) else {
        row.hijack = failed("symbols", "no __x64_sys_read or gcd");
        return;
    };
    let called = reach_safe_point(&mut gdb, &[read], Duration::from_secs(60))
        .and_then(|safe| hijack_call(&mut gdb, safe, gcd, &[462, 1071], Duration::from_secs(30)));
    row.hijack = match called {
        Ok(21) => "pass".into(),
        Ok(other) => failed("gcd(462, 1071)", &format!("returned {other}")),
        Err(e) => failed("hijack", &format!("{e}")),
    };
    // The guest stays stopped at the safe point: injection's hijacked calls start from there.

    // The monitor: inject, record, block, unhook.
    let t = Instant::now();
    let syscalls = ["read", "openat", "close"].iter().map(|n| Syscall::by_name(n).unwrap()).collect();
    let opts = InjectOptions {
        safe_point: "__x64_sys_read".into(),
        timeout: Duration::from_secs(60),
        syscalls,
        rules: rules(),
        method: None,
    };
    let mut monitor = match inject(gdb, tg.ram(), &symbols, &opts) {
        Ok(m) => m,
        Err(e) => {
            row.monitor = failed("inject", &palisade_host::chain(&e).to_string());
            return;
        }
    };
    let injected = t.elapsed();
    row.allocator = monitor.allocator().alloc_fn().to_owned();
    row.method = format!("{:?}", monitor.method());
    let mut reader = EventReader::new(monitor.mem_s()).unwrap();
    tg.wait("PALISADE-K-CHECKED");
    let batch = reader.poll(monitor.mem_s()).unwrap();
    let console = tg.console();
    let recorded = batch
        .events
        .iter()
        .any(|e| e.rule == 1 && e.process == "cat" && e.path == "/tmp/pal/in.txt" && e.action == Action::Record);
    let blocked_event = batch
        .events
        .iter()
        .any(|e| e.rule == 2 && e.process == "cat" && e.path == "/etc/shadow" && e.action == Action::Block);
    let denied = console.contains("can't open '/etc/shadow': Operation not permitted")
        && value_after(&console, "PALISADE-K-CAT-SHADOW status=").as_deref() == Some("1");
    let read_ok = value_after(&console, "PALISADE-K-CAT-IN status=").as_deref() == Some("0");
    if batch.lost != 0 || !recorded || !blocked_event || !denied || !read_ok {
        row.monitor = failed(
            "record/block",
            &format!(
                "lost {}, recorded {recorded}, block event {blocked_event}, denied {denied}, watched read {read_ok}",
                batch.lost
            ),
        );
        return;
    }
    let hooks = monitor.hooks().to_vec();
    if let Err(e) = monitor.unhook() {
        row.monitor = failed("unhook", &palisade_host::chain(&e).to_string());
        return;
    }
    for h in &hooks {
        let now = monitor.read_kernel(h.addr, h.original.len()).expect("read a hook site");
        if now != h.original {
            row.monitor = failed("unhook", &format!("{} holds {now:02x?}", h.syscall.name));
            return;
        }
    }
    tg.wait("PALISADE-K-UNHOOKED-SEEN");
    monitor.detach().expect("detach");
    let done = tg.wait(WORKLOAD_DONE_MARKER);
    if !done.ends_with("status=0") {
        row.monitor = failed("after unhooking", &done);
        return;
    }
    let exit = tg.guest.wait_exit(Duration::from_secs(60)).expect("guest exit");
    row.monitor = if exit.is_clean() { "pass".into() } else { failed("power-off", &format!("{exit:?}")) };
    row.timings = format!(
        "boot {:.0} s, symbols {} ms (one read of all RAM: {} ms), inject {} ms",
        boot.as_secs_f64(),
        recovery.as_millis(),
        read_all.as_millis(),
        injected.as_millis()
    );
}

#[test]
fn every_kernel_of_the_table_is_introspected_hijacked_and_monitored() {
    let kernels: Vec<String> = match std::env::var("PALISADE_KERNELS") {
        Ok(list) if !list.trim().is_empty() => list.split(',').map(|k| k.trim().to_owned()).collect(),
        _ => KERNELS.iter().map(|k| k.to_string()).collect(),
    };
    let mut rows = Vec::new();
    for text in &kernels {
        let choice: KernelChoice = text.parse().unwrap_or_else(|e| panic!("{e}"));
        let mut row = Row { choice: text.clone(), symbols: "not reached".into(), ..Row::default() };
        let t = Instant::now();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(&choice, &mut row))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let step = if row.symbols == "not reached" { "boot" } else { "test" };
            let cell = failed(step, &message);
            if row.symbols == "not reached" {
                row.symbols = cell;
            } else if row.hijack == "not reached" {
                row.hijack = cell;
            } else {
                row.monitor = cell;
            }
        }
        eprintln!("{text}: {row:?} ({:?})", t.elapsed());
        rows.push(row);
    }
    let mut table = String::from(
        "| kernel | release | symbols vs /proc/kallsyms | hijacked call | monitor inject/record/block/unhook | \
         allocator | hook method | times (TCG) |\n|---|---|---|---|---|---|---|---|\n",
    );
    for row in &rows {
        table.push_str(&row.markdown());
        table.push('\n');
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernel-compat.md");
    std::fs::write(&out, &table).expect("write the table");
    println!("{table}\n(written to {})", out.display());
    let failing: Vec<&str> = rows.iter().filter(|r| !r.passed()).map(|r| r.choice.as_str()).collect();
    assert!(failing.is_empty(), "kernels that do not pass: {failing:?}\n{table}");
}
