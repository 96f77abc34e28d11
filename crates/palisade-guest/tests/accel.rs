//! The accelerator is chosen by really booting a guest under KVM, and the choice is explained.
//! On a host where /dev/kvm exists but cannot run an ordinary guest kernel (the CI machine),
//! the probe times out and TCG is used; where KVM works, the probe boots and KVM is used.

mod common;

use palisade_guest::initramfs::READY_MARKER;
use palisade_guest::{Accel, Guest};

#[test]
fn auto_accel_probes_kvm_with_a_real_boot_and_says_why() {
    common::init_tracing();
    common::require_qemu();
    let initrd = common::initramfs("accel-test.cpio", vec!["sleep 600".into()]);
    let mut config = common::config("accel", &initrd);
    config.kvm_probe_cache = None; // probe now, in this process, whatever an earlier run found

    let mut guest = Guest::start(&config).unwrap_or_else(|e| panic!("start: {e:#?}"));
    guest.wait_for_console(READY_MARKER, common::BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e:#?}"));
    let choice = guest.accel().clone();
    guest.stop().unwrap();

    eprintln!("accelerator: {:?} because {}", choice.accel, choice.reason);
    assert!(!choice.reason.contains("probed earlier"), "{}", choice.reason);
    match choice.accel {
        Accel::Kvm => assert!(choice.reason.contains("booted under KVM"), "{}", choice.reason),
        Accel::Tcg => assert!(
            choice.reason.starts_with("KVM rejected: a test guest did not boot under KVM")
                || choice.reason.starts_with("KVM rejected: /dev/kvm cannot be opened"),
            "{}",
            choice.reason
        ),
    }
}
