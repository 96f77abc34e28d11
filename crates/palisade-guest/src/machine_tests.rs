//! Machine configuration, RAM layout and QEMU command-line construction.

use super::*;

fn config(dir: &Path) -> GuestConfig {
    let kernel = dir.join("vmlinuz");
    let initrd = dir.join("initrd.cpio");
    std::fs::write(&kernel, b"k").unwrap();
    std::fs::write(&initrd, b"i").unwrap();
    GuestConfig::new("t1", kernel, initrd)
}

/// The value following `flag` each time it appears.
fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect()
}

#[test]
fn small_guests_have_all_ram_below_the_pci_hole() {
    let layout = q35_ram_layout(512 << 20);

    assert_eq!(layout, [RamRegion { gpa: 0, len: 512 << 20, file_offset: 0 }]);
    // Just under the limit: still one region.
    assert_eq!(q35_ram_layout(Q35_LOWMEM_LIMIT - (1 << 20)).len(), 1);
}

#[test]
fn large_guests_are_split_at_2g_with_the_rest_above_4g() {
    let layout = q35_ram_layout(4 << 30);

    assert_eq!(
        layout,
        [
            RamRegion { gpa: 0, len: 2 << 30, file_offset: 0 },
            RamRegion { gpa: 4 << 30, len: 2 << 30, file_offset: 2 << 30 },
        ]
    );
    // Exactly at the limit the split already applies.
    assert_eq!(q35_ram_layout(Q35_LOWMEM_LIMIT)[1].len, Q35_LOWMEM_LIMIT - Q35_SPLIT_LOWMEM);
}

#[test]
fn tcg_command_line_has_shared_ram_sockets_serials_and_no_nokaslr() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let paths = RunPaths::new(Path::new("/run/g"), cfg.ram_path());

    let args = qemu_args(&cfg, Accel::Tcg, &paths);

    assert_eq!(values(&args, "-accel"), ["tcg"]);
    assert_eq!(values(&args, "-cpu"), ["max"]);
    assert_eq!(values(&args, "-m"), ["512M"]);
    assert_eq!(
        values(&args, "-object"),
        ["memory-backend-file,id=ram0,size=512M,mem-path=/dev/shm/palisade-t1.ram,share=on"]
    );
    assert_eq!(values(&args, "-machine"), ["q35,memory-backend=ram0"]);
    assert_eq!(
        values(&args, "-chardev"),
        [
            "socket,id=qmp0,path=/run/g/qmp.sock,server=on,wait=off",
            "socket,id=gdb0,path=/run/g/gdb.sock,server=on,wait=off",
            "file,id=ttyS0,path=/run/g/ttyS0.log",
            "file,id=ttyS1,path=/run/g/ttyS1.kallsyms",
        ]
    );
    assert_eq!(values(&args, "-serial"), ["chardev:ttyS0", "chardev:ttyS1"], "ttyS0 then ttyS1");
    assert_eq!(values(&args, "-gdb"), ["chardev:gdb0"]);
    assert_eq!(values(&args, "-mon"), ["chardev=qmp0,mode=control"]);
    assert_eq!(values(&args, "-display"), ["none"]);
    for flag in ["-no-reboot", "-nodefaults"] {
        assert!(args.iter().any(|a| a == flag), "{flag} missing");
    }
    assert_eq!(values(&args, "-append"), ["console=ttyS0 panic=-1 quiet"]);
    assert!(!args.iter().any(|a| a.contains("nokaslr")));
    assert!(values(&args, "-netdev").is_empty());
}

#[test]
fn kvm_uses_the_host_cpu_and_a_nic_adds_a_tap_and_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.nic =
        Some(NicConfig { tap: "pgt-t1".into(), mac: "52:54:00:12:34:56".into(), ip: "198.51.100.2/30".parse().ok() });
    cfg.extra_cmdline = vec!["loglevel=4".into()];
    let paths = RunPaths::new(Path::new("/run/g"), cfg.ram_path());

    let args = qemu_args(&cfg, Accel::Kvm, &paths);

    assert_eq!(values(&args, "-accel"), ["kvm"]);
    assert_eq!(values(&args, "-cpu"), ["host"]);
    assert_eq!(values(&args, "-netdev"), ["tap,id=n0,ifname=pgt-t1,script=no,downscript=no"]);
    assert_eq!(values(&args, "-device"), ["virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,csum=off"]);
    assert_eq!(values(&args, "-append"), ["console=ttyS0 panic=-1 quiet palisade.ip=198.51.100.2/30 loglevel=4"]);
}

#[test]
fn commas_in_option_values_are_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let paths = RunPaths::new(Path::new("/run/a,b"), PathBuf::from("/dev/shm/x,y.ram"));

    let args = qemu_args(&cfg, Accel::Tcg, &paths);

    assert!(values(&args, "-object")[0].contains("mem-path=/dev/shm/x,,y.ram,share=on"));
    assert_eq!(values(&args, "-chardev")[0], "socket,id=qmp0,path=/run/a,,b/qmp.sock,server=on,wait=off");
}

#[test]
fn invalid_configurations_are_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = config(dir.path());
    good.validate().unwrap();
    type Case = (fn(&mut GuestConfig), &'static str);
    let cases: Vec<Case> = vec![
        (|c| c.name = "Bad Name".into(), "guest name"),
        (|c| c.name = String::new(), "guest name"),
        (|c| c.memory_mib = 16, "memory"),
        (|c| c.vcpus = 0, "vCPUs"),
        (|c| c.kernel = PathBuf::from("/nonexistent/vmlinuz"), "kernel"),
        (
            |c| {
                c.nic =
                    Some(NicConfig { tap: "a-very-long-tap-name".into(), mac: "52:54:00:00:00:01".into(), ip: None })
            },
            "tap",
        ),
        (|c| c.nic = Some(NicConfig { tap: "t0".into(), mac: "52:54:00:00:00".into(), ip: None }), "MAC"),
        (|c| c.extra_cmdline = vec!["a b".into()], "command-line word"),
        (|c| c.disks = vec![PathBuf::from("/nonexistent/disk.img")], "disk image"),
    ];
    for (mutate, field) in cases {
        let mut cfg = good.clone();
        mutate(&mut cfg);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains(field), "{err:?} does not name {field}");
    }
}

#[test]
fn disks_become_virtio_blk_devices_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    let (a, b) = (dir.path().join("a.img"), dir.path().join("b,c.img"));
    std::fs::write(&a, [0u8; 512]).unwrap();
    std::fs::write(&b, [0u8; 512]).unwrap();
    cfg.disks = vec![a.clone(), b];
    cfg.validate().unwrap_err(); // the comma
    cfg.disks.pop();
    cfg.validate().unwrap();

    let args = qemu_args(&cfg, Accel::Tcg, &RunPaths::new(dir.path(), dir.path().join("r.ram")));

    assert_eq!(values(&args, "-drive"), [format!("file={},format=raw,if=none,id=disk0,cache=writeback", a.display())]);
    assert_eq!(values(&args, "-device"), ["virtio-blk-pci,drive=disk0"]);
}

#[test]
fn an_owned_guest_carries_its_owner_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    let paths = RunPaths::new(dir.path(), c.ram_path());
    assert!(!values(&qemu_args(&c, Accel::Tcg, &paths), "-object").iter().any(|v| v.contains("palisade-owner")));

    c.owner = Some("a1b2".into());
    let args = qemu_args(&c, Accel::Tcg, &paths);
    assert!(values(&args, "-object").contains(&owner_arg("a1b2").as_str()), "{args:?}");
    assert_eq!(owner_arg("x,y"), "secret,id=palisade-owner,data=x,,y");
}
