//! gdb client, page walk and RAM file against a real QEMU guest (TCG, `-cpu max`: LA57).
//! Needs root and qemu-system-x86 (kernel and busybox-static are fetched with apt); fails
//! loudly without them.

mod support;

use std::time::{Duration, Instant};

use palisade_vmi::gdb::{Breakpoint, GdbClient, StopReason, StopReply, WatchKind};
use palisade_vmi::paging::CR4_LA57;
use palisade_vmi::{AddressSpace, Gva, PhysMemory, VirtMemory};
use support::{TestGuest, MEM_MIB};

#[test]
fn gdb_registers_memory_and_breakpoints_agree_with_the_page_walk() {
    let guest = TestGuest::boot("gdb", 2, support::read_loop(None));
    let mut gdb = GdbClient::connect_unix(guest.guest.gdb_path()).expect("connect to QEMU's gdb stub");
    gdb.set_timeout(Duration::from_secs(10));

    // QEMU's habits: a T02 on connect; `cs_base`..`es_base` commented out of i386-64bit.xml,
    // so fs_base follows gs (18..23) as number 24.
    assert!(matches!(gdb.initial_stop(), Some(StopReply::Stopped { signal: 2, .. })), "{:?}", gdb.initial_stop());
    assert!(gdb.target().register("cs_base").is_none());
    assert_eq!(gdb.target().register("fs_base").map(|r| r.regnum), Some(24));

    // Registers: the system ones QEMU exposes after target.xml.
    let regs = gdb.read_registers().unwrap();
    for name in ["rip", "rsp", "eflags", "cs", "cr0", "cr3", "cr4", "efer", "fs_base", "gs_base", "mxcsr"] {
        // One `g` packet gave them all; each agrees with its own `p`.
        let from_g = regs.get(name).unwrap_or_else(|| panic!("no {name} in {:?}", regs.0));
        assert_eq!(gdb.read_register(name).unwrap(), from_g, "{name}");
    }
    let (cr3, cr4, rip) = (regs.get("cr3").unwrap(), regs.get("cr4").unwrap(), regs.get("rip").unwrap());
    println!("stopped at rip={rip:#x} cr3={cr3:#x} cr4={cr4:#x}");
    assert_ne!(cr4 & CR4_LA57, 0, "-cpu max under TCG should run the kernel with 5-level paging");

    // The same kernel bytes through gdb `m` and through page walk + RAM file.
    let ram = guest.ram();
    let space = AddressSpace::from_registers(cr3, cr4);
    let vm = VirtMemory::new(&ram, space);
    let at = Gva(rip & !0xff);
    let via_walk = vm.read_vec(at, 4096).unwrap();
    let via_gdb = gdb.read_memory(at, 4096).unwrap();
    assert_eq!(via_walk, via_gdb);

    // Kernel text, by the address the guest printed for `_text` (test-only symbol source).
    let text = Gva(guest.symbol("_text"));
    let t = vm.translate(text).unwrap();
    assert!(t.gpa.0 < MEM_MIB << 20 && !t.user, "{t:?}");
    assert_eq!(vm.read_vec(text, 8192).unwrap(), gdb.read_memory(text, 8192).unwrap());

    // The direct map: the kernel's per-cpu base lies in it, so its translation gives
    // page_offset_base; then physical 0.. is linear from there.
    let percpu = [regs.get("gs_base").unwrap(), regs.get("k_gs_base").unwrap_or(0)]
        .into_iter()
        .find(|v| v >> 63 == 1)
        .expect("a kernel gs base");
    let page_offset = percpu - vm.translate(Gva(percpu)).unwrap().gpa.0;
    println!("page_offset_base={page_offset:#x}");
    assert_eq!(vm.translate(Gva(page_offset + 0x10_0000)).unwrap().gpa.0, 0x10_0000);
    let dm = Gva(page_offset + 0x100_0000);
    assert_eq!(vm.read_vec(dm, 512).unwrap(), gdb.read_memory(dm, 512).unwrap());

    // Throughput: 64 MiB of the direct map through the page walk and the RAM file.
    let len = 64usize << 20;
    let mut buf = vec![0u8; 1 << 20];
    let t0 = Instant::now();
    for off in (0..len).step_by(buf.len()) {
        let r = vm.read(Gva(page_offset + off as u64), &mut buf);
        assert!(r.is_complete(), "direct map hole at {off:#x}");
    }
    let secs = t0.elapsed().as_secs_f64();
    println!("virtual read throughput: {:.0} MB/s (64 MiB direct map, 1 MiB reads)", len as f64 / secs / 1e6);
    // Baselines: the same bytes by physical address (no walk), and through gdb `m`.
    let t0 = Instant::now();
    for off in (0..len).step_by(buf.len()) {
        ram.read(palisade_vmi::Gpa(off as u64), &mut buf).unwrap();
    }
    println!("baseline physical read: {:.0} MB/s (64 MiB, 1 MiB reads)", len as f64 / t0.elapsed().as_secs_f64() / 1e6);
    let t0 = Instant::now();
    gdb.read_memory(Gva(page_offset), 1 << 20).unwrap();
    println!("baseline gdb `m` read: {:.1} MB/s (1 MiB)", 1.048576 / t0.elapsed().as_secs_f64());
    // 4 KiB reads, a page walk each.
    let mut page = [0u8; 4096];
    let t0 = Instant::now();
    for off in (0..(16usize << 20)).step_by(4096) {
        vm.read_exact(Gva(page_offset + off as u64), &mut page).unwrap();
    }
    println!(
        "virtual read throughput: {:.0} MB/s (16 MiB in 4 KiB reads)",
        (16 << 20) as f64 / t0.elapsed().as_secs_f64() / 1e6
    );

    // Round trip: `p` of rip.
    let n = 200;
    let t0 = Instant::now();
    for _ in 0..n {
        gdb.read_register("rip").unwrap();
    }
    println!(
        "gdb round trip: {:.1} us per `p` (unix socket, {n} requests)",
        t0.elapsed().as_secs_f64() * 1e6 / n as f64
    );

    // Threads, and breakpoints on a kernel function the guest's workload calls.
    let threads = gdb.threads().unwrap();
    assert_eq!(threads.len(), 2, "one thread per vCPU");
    gdb.set_thread(threads[0]).unwrap();
    let sys_read = guest.symbol("__x64_sys_read");
    for kind in [Breakpoint::Software, Breakpoint::Hardware] {
        gdb.insert_breakpoint(kind, Gva(sys_read), 1).unwrap();
        gdb.cont().unwrap();
        let stop = gdb.wait_stop(Duration::from_secs(30)).unwrap();
        assert!(matches!(stop, StopReply::Stopped { signal: 5, .. }), "{kind:?}: {stop:?}");
        assert_eq!(gdb.read_register("rip").unwrap(), sys_read, "{kind:?}");
        gdb.remove_breakpoint(kind, Gva(sys_read), 1).unwrap();
    }

    // Watchpoints on jiffies (written every tick, read all the time): each stops with its
    // own reason.
    let jiffies = Gva(guest.symbol("jiffies"));
    for (bp, want) in [
        (Breakpoint::Write, WatchKind::Write),
        (Breakpoint::Read, WatchKind::Read),
        (Breakpoint::Access, WatchKind::Access),
    ] {
        gdb.insert_breakpoint(bp, jiffies, 8).unwrap();
        gdb.cont().unwrap();
        let stop = gdb.wait_stop(Duration::from_secs(30)).unwrap();
        println!("{bp:?} watchpoint stop: {stop:?}");
        let StopReply::Stopped { reason: Some(StopReason::Watch { kind, addr }), .. } = stop else {
            panic!("expected a watchpoint stop, got {stop:?}")
        };
        assert_eq!((kind, addr), (want, jiffies));
        gdb.remove_breakpoint(bp, jiffies, 8).unwrap();
    }

    // Register write round trip (restored before running again).
    let rax = gdb.read_register("rax").unwrap();
    gdb.write_register("rax", 0x1234_5678_9abc_def0).unwrap();
    assert_eq!(gdb.read_register("rax").unwrap(), 0x1234_5678_9abc_def0);
    gdb.write_register("rax", rax).unwrap();

    // A step moves rip; an interrupt stops a running guest.
    let stop = gdb.step().unwrap();
    assert!(matches!(stop, StopReply::Stopped { signal: 5, .. }), "{stop:?}");
    gdb.cont().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    gdb.interrupt().unwrap();
    let stop = gdb.wait_stop(Duration::from_secs(10)).unwrap();
    assert!(matches!(stop, StopReply::Stopped { signal: 2, .. }), "{stop:?}");
    gdb.detach().unwrap();
}
