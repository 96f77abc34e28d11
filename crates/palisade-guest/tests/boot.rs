//! A real guest end to end: boot under KASLR, kallsyms dump on ttyS1, QMP pause/resume, the
//! workload finishes, clean poweroff, nothing left behind.

mod common;

use std::time::{Duration, Instant};

use palisade_guest::initramfs::{self, READY_MARKER, WORKLOAD_DONE_MARKER};
use palisade_guest::{Accel, Guest};

const ITERATIONS: u32 = 40;

#[test]
fn guest_boots_dumps_kallsyms_pauses_resumes_and_powers_off_cleanly() {
    common::init_tracing();
    common::require_qemu();
    let mut workload = initramfs::health_workload(ITERATIONS);
    workload.insert(0, "sleep 2".into()); // time to pause the guest mid-workload
    let initrd = common::initramfs("boot-test.cpio", workload);
    let config = common::config("boot", &initrd);

    let started = Instant::now();
    let mut guest = Guest::start(&config).unwrap_or_else(|e| panic!("start: {e:#?}"));
    let ready = guest.wait_for_console(READY_MARKER, common::BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e:#?}"));
    let boot_time = started.elapsed();
    eprintln!("boot to ready marker: {boot_time:?} under {:?} ({})", guest.accel().accel, guest.accel().reason);

    // The accelerator decision is explicit either way.
    if guest.accel().accel == Accel::Tcg {
        assert!(guest.accel().reason.starts_with("KVM rejected"), "{}", guest.accel().reason);
    }
    let kernel = common::kernel();
    assert!(ready.ends_with(&kernel.release), "ready line {ready:?} lacks the release {}", kernel.release);
    assert_eq!(guest.memory_bytes(), 512 << 20);
    assert_eq!(std::fs::metadata(guest.ram_path()).unwrap().len(), 512 << 20, "RAM file is the guest's RAM");
    assert!(guest.gdb_path().exists() && guest.qmp_path().exists());

    // The full /proc/kallsyms with real addresses (kptr_restrict lifted).
    let dump_started = Instant::now();
    let kallsyms = guest.kallsyms_dump(Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e:#?}"));
    eprintln!("kallsyms dump complete {:?} after the ready marker", dump_started.elapsed());
    let lines: Vec<&str> = kallsyms.lines().collect();
    eprintln!("kallsyms: {} lines, first {:?}", lines.len(), lines.first());
    assert!(lines.len() > 50_000, "only {} kallsyms lines", lines.len());
    let zero = lines.iter().filter(|l| l.starts_with("0000000000000000 ")).count();
    assert!(zero < lines.len() / 100, "{zero} of {} addresses are zero: kptr_restrict not lifted?", lines.len());
    let text = common::symbol_address(&kallsyms, "_text").expect("_text in kallsyms");
    assert_eq!(text >> 32, 0xffff_ffff, "_text {text:#x} is not a kernel text address");
    assert_eq!(text % (2 << 20), 0, "_text {text:#x} is not 2 MiB aligned");
    assert!(!kallsyms.contains('['), "module symbols in a dump taken before modules load");

    // Pause and resume over QMP.
    let qmp = guest.qmp().unwrap();
    assert!(qmp.query_status().unwrap().running);
    qmp.stop().unwrap();
    let paused = qmp.query_status().unwrap();
    let console_at_pause = guest.console_text().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let console_later = guest.console_text().unwrap();
    let qmp = guest.qmp().unwrap();
    qmp.cont().unwrap();
    let resumed = qmp.query_status().unwrap();
    assert_eq!((paused.running, paused.status.as_str()), (false, "paused"));
    assert_eq!((resumed.running, resumed.status.as_str()), (true, "running"));
    assert_eq!(console_at_pause, console_later, "the console moved while the guest was paused");

    // The workload finishes and the guest powers itself off.
    let done =
        guest.wait_for_console(WORKLOAD_DONE_MARKER, Duration::from_secs(180)).unwrap_or_else(|e| panic!("{e:#?}"));
    let exit = guest.wait_exit(Duration::from_secs(60)).unwrap();
    let console = guest.console_text().unwrap();
    assert_eq!(done, format!("{WORKLOAD_DONE_MARKER} status=0"), "console:\n{console}");
    assert!(exit.is_clean(), "{exit:?}");
    assert!(console.contains(&format!("PALISADE-WORKLOAD {ITERATIONS}/{ITERATIONS}")));
    assert!(!console.contains("Kernel panic"), "{console}");
    assert!(!console.contains("PALISADE-INSMOD-FAILED"), "{console}");

    // Nothing remains.
    let (pid, ram, run_dir) = (guest.pid(), guest.ram_path().to_path_buf(), guest.run_dir().unwrap());
    guest.stop().unwrap();
    assert!(!common::process_alive(pid), "QEMU {pid} still running");
    assert!(!ram.exists(), "{} left behind", ram.display());
    assert!(!run_dir.exists(), "{} left behind", run_dir.display());
    assert!(matches!(guest.console_text(), Err(palisade_guest::GuestError::Stopped(_))));
}

#[test]
fn a_kernel_panic_is_reported_as_an_unclean_exit() {
    common::init_tracing();
    common::require_qemu();
    // The workload runs in a subshell, so crash the kernel through sysrq instead of killing init.
    let initrd = common::initramfs("panic-test.cpio", vec!["echo c > /proc/sysrq-trigger".into()]);
    let config = common::config("panic", &initrd);
    let mut guest = Guest::start(&config).unwrap_or_else(|e| panic!("start: {e:#?}"));

    let exit = guest.wait_exit(Duration::from_secs(120)).unwrap();

    assert!(exit.kernel_panic && !exit.is_clean(), "{exit:?}\n{}", guest.console_text().unwrap());
    assert!(!guest.console_text().unwrap().contains(WORKLOAD_DONE_MARKER));
}

#[test]
fn dropping_a_running_guest_kills_qemu_and_removes_its_files() {
    common::init_tracing();
    common::require_qemu();
    let initrd = common::initramfs("drop-test.cpio", vec!["sleep 600".into()]);
    let config = common::config("drop", &initrd);
    let guest = Guest::start(&config).unwrap_or_else(|e| panic!("start: {e:#?}"));
    let (pid, ram, run_dir) = (guest.pid(), guest.ram_path().to_path_buf(), guest.run_dir().unwrap());
    assert!(common::process_alive(pid) && ram.exists());

    drop(guest);

    assert!(!common::process_alive(pid), "QEMU {pid} survived drop");
    assert!(!ram.exists(), "{} left behind", ram.display());
    assert!(!run_dir.exists(), "{} left behind", run_dir.display());
}
