//! A guest that never calls read(2) is still injected (root + QEMU TCG; fails loudly without
//! them): its only activity is a shell starting `sleep` (fork, exec, clock_nanosleep, wait4;
//! the kernel reads the program itself, not through read(2)), so a hijacked call armed only at
//! `__x64_sys_read` would time out. With the fallback safe points armed too, injection runs
//! from whichever handler the guest enters first, hooks `openat`, a block rule makes `cat`
//! fail, and after unhooking the guest finishes its workload and powers off cleanly.

mod support;

use std::time::{Duration, Instant};

use palisade_monitor::{inject, Action, InjectOptions, Rule, Syscall};
use palisade_vmi::gdb::GdbClient;
use palisade_vmi::kallsyms;
use support::TestGuest;

#[test]
fn a_guest_that_never_reads_is_injected_from_another_handler() {
    let workload = vec![
        "echo gate > /gate".to_owned(),
        "echo PALISADE-IDLE".to_owned(),
        // No read(2) here: `cat` copies with sendfile(2), `sleep` sleeps.
        "while cat /gate >/dev/null 2>&1; do sleep 0.2; done".to_owned(),
        "echo PALISADE-GATE-CLOSED".to_owned(),
        "sleep 3".to_owned(),
    ];
    let mut tg = TestGuest::boot("idle", 1, workload, "PALISADE-IDLE");
    let symbols = kallsyms::recover(&tg.ram()).unwrap_or_else(|e| panic!("kallsyms recovery: {e:#?}"));
    let gdb = GdbClient::connect_unix(tg.guest.gdb_path()).expect("connect to QEMU's gdb stub");
    let openat = Syscall::by_name("openat").unwrap();
    let opts = InjectOptions {
        safe_point: "__x64_sys_read".into(),
        timeout: Duration::from_secs(60),
        syscalls: vec![openat],
        rules: vec![Rule {
            id: 1,
            nr: Some(openat.nr),
            subject: Some("cat".into()),
            object: Some("/gate".into()),
            action: Action::Block,
        }],
        method: None,
    };

    let t = Instant::now();
    let mut monitor = inject(gdb, tg.ram(), &symbols, &opts).unwrap_or_else(|e| panic!("inject: {e:#?}"));
    println!("injected in {:?} ({:?})", t.elapsed(), monitor.timings());

    tg.wait("PALISADE-GATE-CLOSED");
    monitor.unhook().unwrap();
    monitor.detach().unwrap();
    tg.wait(palisade_guest::initramfs::WORKLOAD_DONE_MARKER);
    assert!(tg.guest.wait_exit(Duration::from_secs(60)).unwrap().is_clean());
}
