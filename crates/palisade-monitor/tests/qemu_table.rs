//! The paper's table-redirect method, forced on a real guest whose kernel dispatches through
//! `x64_sys_call` (root + QEMU TCG; fails loudly without them): the evidence calls for entry
//! calls; forced anyway, `sys_call_table[read]` is pointed at the payload's first stub (after
//! checking it held `__x64_sys_read`), and — as the evidence predicts — not one read(2) of the
//! running workload reaches the payload. Unhooking puts the handler's address back exactly and
//! the guest finishes and powers off cleanly.

mod support;

use std::time::Duration;

use palisade_monitor::hooks::{HookMethod, STUB_SIZE};
use palisade_monitor::{inject, Action, InjectOptions, Rule, Syscall};
use palisade_vmi::gdb::GdbClient;
use palisade_vmi::kallsyms;
use support::TestGuest;

#[test]
fn a_forced_table_redirect_intercepts_nothing_on_an_x64_sys_call_kernel_and_unhooks_exactly() {
    let workload = vec![
        "echo PALISADE-TABLE-LOOP".to_owned(),
        "for i in $(seq 1 150); do read -r up < /proc/uptime; sleep 0.02; done".to_owned(),
    ];
    let mut tg = TestGuest::boot("table", 2, workload, "PALISADE-TABLE-LOOP");
    let ram = tg.ram();
    let symbols = kallsyms::recover(&ram).unwrap_or_else(|e| panic!("kallsyms recovery: {e:#?}"));
    let read = Syscall::by_name("read").unwrap();
    let handler = symbols.by_name("__x64_sys_read").unwrap().addr.0;
    let table = symbols.by_name("sys_call_table").unwrap().addr.0;
    let gdb = GdbClient::connect_unix(tg.guest.gdb_path()).expect("connect to QEMU's gdb stub");
    let opts = InjectOptions {
        safe_point: "__x64_sys_read".into(),
        timeout: Duration::from_secs(60),
        syscalls: vec![read],
        rules: vec![Rule { id: 1, nr: None, subject: None, object: None, action: Action::Record }],
        method: Some(HookMethod::TableRedirect),
    };

    let mut monitor = inject(gdb, tg.ram(), &symbols, &opts).unwrap_or_else(|e| panic!("inject: {e:#?}"));

    assert_eq!(monitor.method(), HookMethod::TableRedirect);
    let h = monitor.hooks()[0].clone();
    assert_eq!((h.addr, h.original.clone()), (table, handler.to_le_bytes().to_vec()));
    let slot = monitor.read_kernel(table, 8).unwrap();
    assert_eq!(u64::from_le_bytes(slot.try_into().unwrap()), h.entry, "the slot points at the stub");
    let stub = monitor.read_kernel(h.entry, STUB_SIZE as usize).unwrap();
    assert_eq!((stub[0], stub[5], stub[6]), (0xe8, 0xff, 0x25), "call trampoline; jmp *orig(%rip)");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(monitor.mem_s().counters().unwrap().hits, 0, "x64_sys_call never reads the table");

    monitor.unhook().unwrap();
    assert_eq!(monitor.read_kernel(table, 8).unwrap(), handler.to_le_bytes());
    monitor.detach().unwrap();
    let done = tg.wait(palisade_guest::initramfs::WORKLOAD_DONE_MARKER);
    assert!(done.ends_with("status=0"), "{done}");
    assert!(tg.guest.wait_exit(Duration::from_secs(60)).unwrap().is_clean());
}
