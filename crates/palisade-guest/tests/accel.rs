//! The accelerator is chosen by really booting a guest under KVM, and the choice is explained.
//! Hosts differ in how KVM fails: no usable /dev/kvm, a guest that hangs, QEMU aborting with
//! "failed to set MSR" (issue #14). So the test asserts behaviour, not wording: the guest boots
//! under the accelerator chosen, as QEMU itself reports it (QMP `query-kvm`), a later start in
//! the same process makes the same choice, and a TCG choice says that KVM was rejected and why.

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
    let kvm = guest.qmp().unwrap().execute("query-kvm", None).unwrap_or_else(|e| panic!("query-kvm: {e:#?}"));
    guest.stop().unwrap();
    let mut again = Guest::start(&common::config("accel-again", &initrd)).unwrap_or_else(|e| panic!("{e:#?}"));
    let second = again.accel().clone();
    again.stop().unwrap();

    eprintln!("accelerator: {:?} because {}; QEMU says {kvm}", choice.accel, choice.reason);
    assert!(!choice.reason.contains("probed earlier"), "{}", choice.reason);
    assert_eq!(
        kvm["enabled"].as_bool(),
        Some(choice.accel == Accel::Kvm),
        "the guest booted under the accelerator chosen ({:?}): query-kvm {kvm}",
        choice.accel
    );
    assert_eq!(second, choice, "a second start in the same process chooses the same");
    if choice.accel == Accel::Tcg {
        let why = choice.reason.strip_prefix("KVM rejected: ");
        assert!(
            why.is_some_and(|w| !w.trim().is_empty()),
            "TCG without saying why KVM was rejected: {}",
            choice.reason
        );
    }
}
