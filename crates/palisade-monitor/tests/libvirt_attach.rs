//! Issue #15 proof (root, libvirt, QEMU; fails loudly without them): a VM Palisade did not
//! start — a libvirt domain booted from a real Debian 12 disk image through OVMF and
//! systemd-boot into its own kernel and systemd, libvirt's default (anonymous) memory — is
//! attached to with no change to its definition. The symbols recovered from its RAM equal its
//! /proc/kallsyms; the monitor is injected through a gdb stub started at run time; a file
//! operation over SSH produces its event and a `block` rule denies `cat /etc/shadow` with
//! "Operation not permitted"; after unhooking and detaching, the hooked pages equal a snapshot
//! taken before injection, the stub and its socket are gone, the domain's XML is unchanged and
//! the domain keeps running. Twice: Debian's 6.1 cloud kernel with libvirt's default anonymous
//! RAM (read through the QEMU process), and the archive's 6.12 cloud kernel (execmem, .ko.xz)
//! with memfd RAM (read through the memfd), both kernels of one disk image.

mod support;

use std::time::{Duration, Instant};

use palisade_libvirt::{AttachOptions, Attachment, Libvirt};
use palisade_monitor::{inject, Action, EventReader, InjectOptions, Syscall};
use palisade_testkit::libvirt::{Bed, DomainOptions};
use palisade_vmi::kallsyms::KernelSymbols;
use palisade_vmi::{Gpa, PhysMemory, RamFile};

const SYSCALLS: [&str; 3] = ["read", "openat", "close"];

/// One TCG domain at a time: two would share the machine's two cores with each other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The guest's own core-kernel /proc/kallsyms lines (no `[module]` owner).
fn guest_kallsyms(dom: &palisade_testkit::libvirt::Domain) -> Vec<String> {
    palisade_testkit::guest::core_kallsyms(&dom.ssh("cat /proc/kallsyms").stdout)
}

fn assert_same_symbols(attachment: &Attachment, want: &[String]) {
    let got: Vec<String> = attachment.symbols().symbols().iter().map(ToString::to_string).collect();
    palisade_testkit::guest::assert_same_kallsyms(&got, want);
}

/// The pages of kernel text holding each hooked handler's entry.
fn handler_pages(ram: &RamFile, symbols: &KernelSymbols) -> Vec<(String, Vec<u8>)> {
    SYSCALLS
        .iter()
        .map(|sc| {
            let name = format!("__x64_sys_{sc}");
            let addr = symbols.by_name(&name).unwrap_or_else(|| panic!("no {name}")).addr.0;
            let page = (symbols.phys_base().0 + (addr - symbols.virt_base().0)) & !0xfff;
            let mut bytes = vec![0u8; 8192];
            ram.read(Gpa(page), &mut bytes).expect("read kernel text");
            (name, bytes)
        })
        .collect()
}

/// The proof on one domain of a fresh bed: `release` (a kernel of the test image), RAM in a
/// memfd or libvirt's default.
fn attach_monitor_detach(tag: &str, subnet: u8, release: Option<String>, memfd: bool) {
    let _one = one_at_a_time();
    let image = palisade_testkit::libvirt::disk_image();
    let mut bed = Bed::new(tag, subnet);
    let dom = bed.start("web", &image, DomainOptions { memfd, release, ..DomainOptions::default() });
    let release = dom.ssh("uname -r").stdout.trim().to_owned();
    let want = guest_kallsyms(&dom);
    let xml_before = dom.xml();

    // Attach: RAM and symbols, nothing changed in the domain yet.
    let run_dir = tempfile::tempdir().unwrap();
    let options = AttachOptions { run_dir: run_dir.path().to_owned() };
    let libvirt = Libvirt::default();
    let mut attachment = Attachment::attach(&libvirt, &dom.name, &options).unwrap_or_else(|e| panic!("attach: {e:#?}"));
    println!(
        "attached to {} ({release}) in {:?}: RAM through {} ({:?}), read at {:.0} MiB/s",
        dom.name,
        attachment.elapsed(),
        attachment.access().method(),
        attachment.access(),
        attachment.throughput_mib_s()
    );
    let method = if memfd { "mapped file" } else { "process memory" };
    assert_eq!(attachment.access().method(), method, "{:?}", attachment.access());
    assert_same_symbols(&attachment, &want);
    let before = handler_pages(attachment.ram(), attachment.symbols());

    // A guest at rest makes few system calls; keep one shell busy so that the hijacked calls
    // find a safe point quickly (an idle guest is injected when it next enters one).
    let busy = dom.keep_busy();

    // Inject through a stub started now.
    let t = Instant::now();
    let gdb = attachment.gdb().unwrap_or_else(|e| panic!("gdb stub: {e:#?}"));
    let opts = InjectOptions {
        safe_point: "__x64_sys_read".into(),
        timeout: Duration::from_secs(120),
        syscalls: SYSCALLS.iter().map(|n| Syscall::by_name(n).unwrap()).collect(),
        rules: support::record_and_block_shadow(),
        method: None,
    };
    let mut monitor = inject(gdb, attachment.open_ram().unwrap(), attachment.symbols(), &opts)
        .unwrap_or_else(|e| panic!("inject: {}", palisade_host::chain(&e)));
    println!("injected in {:?} ({:?}, {:?})", t.elapsed(), monitor.allocator(), monitor.timings());
    let mut reader = EventReader::new(monitor.mem_s()).unwrap();

    // A file operation over SSH produces its event; cat /etc/shadow is denied.
    let wrote = dom.ssh("mkdir -p /tmp/pal && echo palisade > /tmp/pal/f && cat /tmp/pal/f");
    assert_eq!((wrote.status, wrote.stdout.trim()), (Some(0), "palisade"), "{wrote:?}");
    let denied = dom.ssh("cat /etc/shadow");
    assert_eq!(denied.status, Some(1), "{denied:?}");
    assert!(denied.stderr.contains("/etc/shadow: Operation not permitted"), "{denied:?}");
    std::thread::sleep(Duration::from_millis(300));
    let batch = reader.poll(monitor.mem_s()).unwrap();
    for e in &batch.events {
        println!("{}  (rule {}, {})", e.figure12(), e.rule, e.action);
    }
    assert_eq!(batch.lost, 0);
    assert!(
        batch
            .events
            .iter()
            .any(|e| e.rule == 1 && e.process == "cat" && e.path == "/tmp/pal/f" && e.syscall == Some("read")),
        "no event for cat reading /tmp/pal/f"
    );
    assert!(
        batch
            .events
            .iter()
            .any(|e| e.rule == 2 && e.process == "cat" && e.path == "/etc/shadow" && e.action == Action::Block),
        "no block event for cat /etc/shadow"
    );

    // Unhook, detach: the kernel's bytes as before, no stub, no socket, the same definition.
    monitor.unhook().unwrap_or_else(|e| panic!("unhook: {e:#?}"));
    monitor.detach().unwrap_or_else(|e| panic!("detach gdb: {e:#?}"));
    let after = handler_pages(attachment.ram(), attachment.symbols());
    attachment.detach().unwrap_or_else(|e| panic!("detach: {e:#?}"));
    drop(busy);
    for ((name, b), (_, a)) in before.iter().zip(&after) {
        assert!(b == a, "the pages of {name} differ from the snapshot taken before injection");
    }
    assert_eq!(std::fs::read_dir(run_dir.path()).unwrap().count(), 0, "a socket directory was left behind");
    assert_eq!(dom.xml(), xml_before, "the domain's definition changed");
    assert_eq!(dom.state(), "running");
    let readable = dom.ssh("cat /etc/shadow > /dev/null");
    assert_eq!(readable.status, Some(0), "{readable:?}");
}

#[test]
fn a_libvirt_domain_on_the_6_1_kernel_with_default_ram_is_attached_monitored_and_left_as_it_was() {
    attach_monitor_detach("mon", 213, None, false);
}

/// RAM that already lives in a memfd (`<memoryBacking><source type='memfd'/>`, as hugepage and
/// vhost-user setups have it) is read through that memfd, not the process; the kernel is 6.12
/// (execmem allocator).
#[test]
fn a_libvirt_domain_on_the_6_12_kernel_with_memfd_ram_is_attached_monitored_and_left_as_it_was() {
    let image = palisade_testkit::libvirt::disk_image();
    let release = image.kernels.iter().find(|k| k.starts_with("6.12.")).expect("a 6.12 kernel in the test image");
    attach_monitor_detach("memfd", 215, Some(release.clone()), true);
}
