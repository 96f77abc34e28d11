//! The monitor's cost and its loss accounting on a real guest (root + QEMU TCG; fails loudly
//! without them). `dd bs=1` makes 2 x N read/write calls in one process, timed by the guest's
//! own clock: before injection, hooked with no matching rule, and hooked with a `record` rule
//! for every one of them while the host polls the ring every few milliseconds. Every recorded
//! call is either received by the host or counted as lost: received + lost = calls.

mod support;

use std::time::{Duration, Instant};

use palisade_monitor::classic::breakpoint_cost;
use palisade_monitor::{inject, Action, EventReader, InjectOptions, Rule, Syscall};
use palisade_vmi::gdb::GdbClient;
use palisade_vmi::kallsyms;
use support::TestGuest;

const N: u64 = 50_000;

fn workload() -> Vec<String> {
    [
        "echo gate > /gate1",
        "echo gate > /gate2",
        "echo gate > /gate3",
        "cs() { read -r up _ < /proc/uptime; echo \"${up%.*}${up#*.}\"; }",
        &format!("run() {{ a=$(cs); dd if=/dev/zero of=/dev/null bs=1 count={N} 2>/dev/null; b=$(cs); echo \"PALISADE-T $1 $((b - a))\"; }}"),
        "run plain",
        "run plain",
        "echo PALISADE-MON-WAIT",
        "while cat /gate1 >/dev/null 2>&1; do read -r up < /proc/uptime; sleep 0.05; done",
        "run hooked",
        "run hooked",
        "echo PALISADE-MON-HOOKED-DONE",
        "while cat /gate2 >/dev/null 2>&1; do sleep 0.05; done",
        "run recorded",
        "echo PALISADE-MON-RECORDED-DONE",
        "while cat /gate3 >/dev/null 2>&1; do sleep 0.05; done",
        "echo PALISADE-MON-BP-PHASE",
        // Classic VMI for comparison: the host traps read(2) with a gdb breakpoint meanwhile.
        "dd if=/dev/zero of=/dev/null bs=1 count=2000000 2>/dev/null",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn gate_rules() -> Vec<Rule> {
    let openat = Syscall::by_name("openat").map(|s| s.nr);
    vec![
        // Object rules match by prefix: no gate's name may be a prefix of another's, or the first
        // rule would open every gate at once and `run recorded` would start before its rule.
        Rule { id: 9, nr: openat, subject: Some("cat".into()), object: Some("/gate1".into()), action: Action::Block },
        Rule { id: 10, nr: openat, subject: Some("cat".into()), object: Some("/gate2".into()), action: Action::Block },
    ]
}

fn centis(console: &str, phase: &str) -> Vec<u64> {
    let key = format!("PALISADE-T {phase} ");
    console.lines().filter_map(|l| l.split(&key).nth(1)).filter_map(|v| v.trim().parse().ok()).collect()
}

#[test]
fn per_event_cost_is_measured_and_every_lost_event_is_counted() {
    let mut tg = TestGuest::boot("overhead", 2, workload(), "PALISADE-MON-WAIT");
    let ram = tg.ram();
    let symbols = kallsyms::recover(&ram).unwrap_or_else(|e| panic!("kallsyms recovery: {e:#?}"));
    let gdb = GdbClient::connect_unix(tg.guest.gdb_path()).expect("connect to QEMU's gdb stub");
    let syscalls = ["read", "write", "openat"].iter().map(|n| Syscall::by_name(n).unwrap()).collect();
    let opts = InjectOptions {
        safe_point: "__x64_sys_read".into(),
        timeout: Duration::from_secs(60),
        syscalls,
        rules: vec![gate_rules()[0].clone()],
        method: None,
    };
    let mut monitor = inject(gdb, tg.ram(), &symbols, &opts).unwrap_or_else(|e| panic!("inject: {e:#?}"));
    println!("injection: {:?}", monitor.timings());
    tg.wait("PALISADE-MON-HOOKED-DONE");

    // Record every read/write of dd, open the second gate, and keep reading the ring.
    let mut rules = gate_rules();
    rules.insert(
        0,
        Rule { id: 1, nr: None, subject: Some("dd".into()), object: Some("/dev/".into()), action: Action::Record },
    );
    let mut reader = EventReader::new(monitor.mem_s()).unwrap();
    let before = monitor.mem_s().counters().unwrap();
    monitor.set_policy(&rules).unwrap();
    let (mut received, mut lost, mut polls) = (0u64, 0u64, 0u64);
    let t = Instant::now();
    loop {
        let batch = reader.poll(monitor.mem_s()).unwrap();
        polls += 1;
        lost += batch.lost;
        for e in &batch.events {
            if e.rule == 1 {
                assert_eq!((e.process.as_str(), e.uid), ("dd", 0));
                assert!(e.path == "/dev/zero" || e.path == "/dev/null", "{e:?}");
                received += 1;
            }
        }
        if polls % 16 == 0 && tg.console().contains("PALISADE-MON-RECORDED-DONE") {
            // One last poll for what was committed meanwhile.
            let batch = reader.poll(monitor.mem_s()).unwrap();
            lost += batch.lost;
            received += batch.events.iter().filter(|e| e.rule == 1).count() as u64;
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(600), "the recorded run did not finish");
        std::thread::sleep(Duration::from_micros(500));
    }
    let after = monitor.mem_s().counters().unwrap();
    // Stop recording dd, then let the guest on to the breakpoint phase.
    let mut rules = gate_rules();
    let openat = Syscall::by_name("openat").map(|s| s.nr);
    rules.push(Rule {
        id: 11,
        nr: openat,
        subject: Some("cat".into()),
        object: Some("/gate3".into()),
        action: Action::Block,
    });
    monitor.set_policy(&rules).unwrap();
    tg.wait("PALISADE-MON-BP-PHASE");
    monitor.unhook().unwrap();
    monitor.detach().unwrap();
    let gdb = GdbClient::connect_unix(tg.guest.gdb_path()).expect("reconnect to the gdb stub");
    let per_trap = breakpoint_cost(gdb, symbols.by_name("__x64_sys_read").unwrap().addr.0, 200).unwrap();

    let console = tg.console();
    let (plain, hooked, recorded) =
        (centis(&console, "plain"), centis(&console, "hooked"), centis(&console, "recorded"));
    println!(
        "guest times (centiseconds) for {} calls: plain {plain:?}, hooked {hooked:?}, recorded {recorded:?}",
        2 * N
    );
    let best = |v: &[u64]| *v.iter().min().unwrap_or_else(|| panic!("no timing:\n{console}")) as f64;
    let per_call_ns = |t: f64| t * 1e7 / (2 * N) as f64;
    println!(
        "per call: plain {:.0} ns, hooked (no rule matches) {:.0} ns, recorded {:.0} ns => {:.0} ns per recorded event",
        per_call_ns(best(&plain)),
        per_call_ns(best(&hooked)),
        per_call_ns(best(&recorded)),
        per_call_ns(best(&recorded) - best(&plain)),
    );
    println!(
        "ring: {received} received, {lost} lost ({polls} polls), payload overflow counter {} -> {}",
        before.overflow, after.overflow
    );
    let recorded_ns = per_call_ns(best(&recorded) - best(&plain));
    println!(
        "breakpoint per read(2): {per_trap:?} => the injected monitor is {:.0}x cheaper per event",
        per_trap.as_nanos() as f64 / recorded_ns
    );
    // dd's reads and writes, plus its final stats write to /dev/null and its exit.
    assert!(received + lost >= 2 * N, "{received} + {lost} < {}", 2 * N);
    assert!(received + lost <= 2 * N + 8, "{received} + {lost}");
    assert_eq!(lost, after.overflow - before.overflow, "every dropped event is counted");
    tg.wait(palisade_guest::initramfs::WORKLOAD_DONE_MARKER);
    assert!(tg.guest.wait_exit(Duration::from_secs(60)).unwrap().is_clean());
}
