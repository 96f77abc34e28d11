//! Hijacked kernel calls on a real QEMU guest: arguments in, result out, state restored;
//! `module_alloc` memory made read-only and executable by hijacked `set_memory_ro`/`set_memory_x`,
//! checked in the page tables through our own walk; the guest then finishes its workload and
//! powers off cleanly.
//! Needs root and qemu-system-x86 (kernel and busybox-static are fetched with apt); fails
//! loudly without them.

mod support;

use std::time::{Duration, Instant};

use palisade_vmi::gdb::GdbClient;
use palisade_vmi::hijack::{hijack_call, TASK_REGISTERS};
use palisade_vmi::{AddressSpace, Gva, VirtMemory};
use support::TestGuest;

#[test]
fn hijacked_module_alloc_returns_a_module_area_address_and_the_guest_carries_on() {
    let mut guest = TestGuest::boot("hijack", 2, support::read_loop(Some(150)));
    let safe_point = Gva(guest.symbol("__x64_sys_read"));
    let mut gdb = GdbClient::connect_unix(guest.guest.gdb_path()).expect("connect to QEMU's gdb stub");

    // First call: waits for a vCPU to enter read(2), then calls gcd(84, 36).
    let t0 = Instant::now();
    let gcd = hijack_call(&mut gdb, safe_point, Gva(guest.symbol("gcd")), &[84, 36], Duration::from_secs(30)).unwrap();
    println!("first hijacked call (incl. waiting for the safe point): {:?}", t0.elapsed());
    assert_eq!(gcd, 12);
    let at_safe_point = gdb.read_registers().unwrap();
    assert_eq!(at_safe_point.get("rip"), Some(safe_point.0));

    // Further calls from the safe point: the call itself.
    let n = 20;
    let t0 = Instant::now();
    for i in 0..n {
        let x: u64 = 1_000_000 + i;
        let r = hijack_call(&mut gdb, safe_point, Gva(guest.symbol("int_sqrt")), &[x * x], Duration::from_secs(10))
            .unwrap();
        assert_eq!(r, x);
    }
    let per_call = t0.elapsed() / n as u32;
    println!("hijacked call latency: {per_call:?} per call ({n} calls of int_sqrt)");
    assert!(per_call < Duration::from_millis(50), "goal < 50 ms, got {per_call:?}");

    let t0 = Instant::now();
    let addr =
        hijack_call(&mut gdb, safe_point, Gva(guest.symbol("module_alloc")), &[4096], Duration::from_secs(10)).unwrap();
    println!("module_alloc(4096) = {addr:#x} in {:?}", t0.elapsed());
    assert!((0xffff_ffff_a000_0000..0xffff_ffff_ff00_0000).contains(&addr), "{addr:#x} not in the module area");
    assert_eq!(addr & 0xfff, 0);
    // The allocation is mapped: the guest's own view reads it (fresh vmalloc pages).
    assert_eq!(gdb.read_memory(Gva(addr), 64).unwrap().len(), 64);

    // set_memory_ro / set_memory_x on it, seen in the page tables through our own walk.
    let ram = guest.ram();
    let space = AddressSpace::from_registers(at_safe_point.get("cr3").unwrap(), at_safe_point.get("cr4").unwrap());
    let vm = VirtMemory::new(&ram, space);
    let pte = vm.translate(Gva(addr)).unwrap();
    assert!(pte.writable && pte.nx, "fresh module memory is RW+NX: {pte:?}");
    for (func, check) in [("set_memory_ro", "read-only"), ("set_memory_x", "executable")] {
        let ret =
            hijack_call(&mut gdb, safe_point, Gva(guest.symbol(func)), &[addr, 1], Duration::from_secs(10)).unwrap();
        assert_eq!(ret as i32, 0, "{func} returned {ret:#x}");
        let pte = vm.translate(Gva(addr)).unwrap();
        println!("after {func}: {pte:?}");
        match check {
            "read-only" => assert!(!pte.writable, "{pte:?}"),
            _ => assert!(!pte.writable && !pte.nx, "{pte:?}"),
        }
    }

    // The task's registers are as at the safe point (per-CPU ones may differ if the task
    // resumed on the other vCPU).
    let now = gdb.read_registers().unwrap();
    for name in TASK_REGISTERS {
        assert_eq!(now.get(name), at_safe_point.get(name), "{name}");
    }

    // The guest carries on: it finishes its workload and powers off.
    gdb.detach().unwrap();
    let done = guest
        .guest
        .wait_for_console(palisade_guest::initramfs::WORKLOAD_DONE_MARKER, support::TIMEOUT)
        .unwrap_or_else(|e| {
            let console = std::fs::read_to_string(guest.guest.console_path()).unwrap_or_default();
            panic!("{e}\nconsole:\n{console}")
        });
    assert!(done.ends_with("status=0"), "{done}");
    let exit = guest.guest.wait_exit(Duration::from_secs(60)).unwrap();
    assert!(exit.is_clean(), "{exit:?}");
}
