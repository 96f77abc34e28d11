//! Guest images: the real Debian cloud kernel fetched and unpacked (not installed), and the
//! initramfs this crate writes.

mod common;

use std::time::Instant;

use palisade_guest::cpio::{self, S_IFCHR, S_IFLNK, S_IFREG};
use palisade_guest::initramfs;
use palisade_guest::KernelImage;

#[test]
fn cloud_kernel_is_fetched_unpacked_and_fetching_again_is_a_no_op() {
    common::init_tracing();
    let kernel = common::kernel();

    let started = Instant::now();
    let again = KernelImage::fetch_cloud(&common::cache_dir()).unwrap();
    let refetch = started.elapsed();

    assert_eq!(&again, kernel);
    assert!(
        kernel.package.starts_with("linux-image-") && kernel.package.ends_with("-cloud-amd64"),
        "{}",
        kernel.package
    );
    assert_eq!(kernel.package, format!("linux-image-{}", kernel.release));
    assert!(std::fs::metadata(&kernel.vmlinuz).unwrap().len() > 4 << 20, "vmlinuz is suspiciously small");
    assert!(kernel.modules_dir.join("modules.builtin").is_file());
    // Debian's package ships only a System.map stub; it must not be passed off as real.
    assert_eq!(kernel.system_map, None);
    assert_eq!(kernel.config_value("CONFIG_RANDOMIZE_BASE").unwrap().as_deref(), Some("y"));
    // Not installed on the host: dpkg does not know the package.
    let status =
        std::process::Command::new("dpkg-query").args(["-W", "-f=${Status}", &kernel.package]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("install ok installed"),
        "kernel was installed on the host"
    );
    eprintln!("second fetch (cached) took {refetch:?}");
}

#[test]
fn virtio_net_modules_come_with_their_dependencies_first() {
    let kernel = common::kernel();
    assert_eq!(kernel.config_value("CONFIG_VIRTIO_NET").unwrap().as_deref(), Some("m"), "test assumes a module");

    let modules = kernel.module_closure(initramfs::VIRTIO_NET_MODULES).unwrap();

    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    let pos = |n: &str| names.iter().position(|m| *m == n).unwrap_or_else(|| panic!("{n} missing from {names:?}"));
    assert!(pos("failover") < pos("net_failover") && pos("net_failover") < pos("virtio_net"), "{names:?}");
    assert!(pos("virtio_ring") < pos("virtio") && pos("virtio") < pos("virtio_pci"), "{names:?}");
    assert_eq!(names.last(), Some(&"virtio_net"));
    let unknown = kernel.module_closure(&["no_such_module"]).unwrap_err();
    assert!(unknown.to_string().contains("no_such_module"), "{unknown}");
}

#[test]
fn initramfs_holds_static_busybox_applets_modules_console_and_init() {
    let path = common::initramfs("images-test.cpio", initramfs::health_workload(3));

    let entries = cpio::parse(&std::fs::read(&path).unwrap()).unwrap();

    let get = |name: &str| entries.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("{name} missing"));
    let busybox = get("bin/busybox");
    assert_eq!(busybox.mode, S_IFREG | 0o755);
    let elf = palisade_elf::Image::parse(&busybox.data).unwrap();
    assert!(!elf.has_interpreter().unwrap(), "busybox in the initramfs must be static");
    assert_eq!(get("bin/sh").file_type(), S_IFLNK);
    assert_eq!(get("bin/sh").data, b"../bin/busybox");
    assert_eq!(get("sbin/poweroff").data, b"../bin/busybox");
    assert_eq!(get("dev/console").mode & 0o170000, S_IFCHR);
    assert_eq!(get("dev/console").rdev, (5, 1));
    let module = &get("lib/modules/virtio_net.ko").data;
    let info = palisade_guest::modinfo(module).unwrap();
    assert!(info.iter().any(|(k, v)| k == "name" && v == "virtio_net"), "{info:?}");
    let init = String::from_utf8(get("init").data.clone()).unwrap();
    assert!(init.contains(initramfs::READY_MARKER) && init.contains("PALISADE-WORKLOAD $i/3"), "{init}");
}
