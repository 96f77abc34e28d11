//! A domain rebooted inside the same QEMU process while attached (root, libvirt, QEMU; fails
//! loudly without them). RAM keeps the previous boot's kernel image, whose kallsyms tables pass
//! every check at their own physical address; only the vCPUs' page tables tell the live boot.
//! The attachment notices the reboot (`check` stops saying `Same`), attaching again fails with
//! `Booting` until the new kernel runs and then recovers the new boot's symbols, equal to the
//! guest's /proc/kallsyms, never the stale ones; once the domain is destroyed, `check` says
//! `Gone`.

use std::time::{Duration, Instant};

use palisade_libvirt::{AttachOptions, Attachment, Libvirt, LibvirtError, Liveness};
use palisade_testkit::libvirt::{Bed, Domain, DomainOptions};

/// How long the test waits for each step (a TCG guest reboots in about a minute).
const NOTICE_TIMEOUT: Duration = Duration::from_secs(120);
const REATTACH_TIMEOUT: Duration = Duration::from_secs(240);

fn guest_kallsyms(dom: &Domain) -> Vec<String> {
    palisade_testkit::guest::core_kallsyms(&dom.ssh("cat /proc/kallsyms").stdout)
}

fn assert_same_symbols(attachment: &Attachment, want: &[String]) {
    let got: Vec<String> = attachment.symbols().symbols().iter().map(ToString::to_string).collect();
    palisade_testkit::guest::assert_same_kallsyms(&got, want);
}

/// Attaches, retrying while the guest is still booting; returns the attachment and how many
/// `Booting` refusals came first.
fn attach_when_booted(libvirt: &Libvirt, name: &str, options: &AttachOptions) -> (Attachment, u32) {
    let t = Instant::now();
    let mut booting = 0;
    loop {
        match Attachment::attach(libvirt, name, options) {
            Ok(a) => return (a, booting),
            Err(LibvirtError::Booting { detail, .. }) if t.elapsed() < REATTACH_TIMEOUT => {
                if booting == 0 {
                    println!("{:?}: booting: {detail}", t.elapsed());
                }
                booting += 1;
            }
            Err(e) => {
                panic!("attach after {:?} ({booting} Booting refusals): {}", t.elapsed(), palisade_host::chain(&e))
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn a_reboot_is_noticed_and_the_new_kernel_attached() {
    let image = palisade_testkit::libvirt::disk_image();
    let mut bed = Bed::new("reboot", 216);
    let dom = bed.start("web", &image, DomainOptions::default());
    let libvirt = Libvirt::default();
    let run_dir = tempfile::tempdir().unwrap();
    let options = AttachOptions { run_dir: run_dir.path().to_owned() };

    // Attached to the first boot.
    let old = Attachment::attach(&libvirt, &dom.name, &options).unwrap_or_else(|e| panic!("attach: {e:#?}"));
    assert_same_symbols(&old, &guest_kallsyms(&dom));
    let t = Instant::now();
    assert_eq!(old.check().unwrap(), Liveness::Same);
    println!(
        "first boot: _text {} at {}; check() took {:?}",
        old.symbols().virt_base(),
        old.symbols().phys_base(),
        t.elapsed()
    );

    // Reboot inside the same QEMU (the guest's own `systemctl reboot`: this image runs no
    // systemd-logind or acpid, so it ignores `virsh reboot`'s ACPI request): noticed.
    let reboot = dom.ssh("systemd-run --on-active=1 systemctl reboot");
    assert_eq!(reboot.status, Some(0), "{reboot:?}");
    let rebooted = Instant::now();
    let liveness = loop {
        match old.check().unwrap_or_else(|e| panic!("check: {}", palisade_host::chain(&e))) {
            Liveness::Same if rebooted.elapsed() < NOTICE_TIMEOUT => std::thread::sleep(Duration::from_secs(1)),
            other => break other,
        }
    };
    let noticed = rebooted.elapsed();
    println!("reboot noticed after {noticed:?}: {liveness:?}");
    assert!(matches!(liveness, Liveness::Replaced { .. }), "{liveness:?}");

    // Attached again once the new kernel runs: its symbols, not the stale ones still in RAM.
    let (new, booting) = attach_when_booted(&libvirt, &dom.name, &options);
    let reattached = rebooted.elapsed();
    println!(
        "re-attached {reattached:?} after the reboot ({booting} Booting refusals first; attach took {:?}): _text {} at {}",
        new.elapsed(),
        new.symbols().virt_base(),
        new.symbols().phys_base()
    );
    assert_eq!(new.pid(), old.pid(), "the same QEMU process");
    // What attach chose from (printed, not asserted: the new boot may reuse the old image's pages).
    let images = palisade_vmi::kallsyms::recover_all(new.ram()).unwrap_or_else(|e| panic!("{e}"));
    let stale = images.iter().any(|k| k.virt_base() == old.symbols().virt_base());
    println!("kernel images in RAM now: {} (the first boot's among them: {stale})", images.len());
    dom.wait_ssh(Duration::from_secs(300));
    assert_same_symbols(&new, &guest_kallsyms(&dom));
    assert_ne!(
        (new.symbols().virt_base(), new.symbols().phys_base()),
        (old.symbols().virt_base(), old.symbols().phys_base()),
        "KASLR placed the second boot elsewhere (if this ever fails by chance, rerun)"
    );
    assert_eq!(new.check().unwrap(), Liveness::Same);
    assert!(matches!(old.check().unwrap(), Liveness::Replaced { .. }));

    // Destroyed: gone, for both.
    bed.stop(&dom);
    for a in [&new, &old] {
        match a.check().unwrap_or_else(|e| panic!("check: {}", palisade_host::chain(&e))) {
            Liveness::Gone { state } => assert_eq!(state, "shut off"),
            other => panic!("after virsh destroy: {other:?}"),
        }
    }
}
