//! Bootable disk images (issue #15), checked without booting them: the qcow2, its GPT, the ESP
//! with systemd-boot and one entry per kernel, the root filesystem's guest configuration, the
//! cache, and an overlay booting the other kernel. The image has two kernels (the cloud
//! kernel, the default, and the 6.12 cloud kernel); its first build takes about two minutes
//! (mmdebstrap), later runs find it in the guest cache. Needs root and the tools
//! `scripts/setup.sh` installs; a missing one fails the test.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use palisade_guest::{DiskImage, DiskSpec};
use palisade_testkit::{is_root, sh};

/// The image the libvirt tests boot too (one image for the suite).
fn spec() -> DiskSpec {
    palisade_testkit::libvirt::disk_spec()
}

/// The test image, built (or found in the cache) once per test binary.
fn image() -> &'static DiskImage {
    static IMAGE: OnceLock<DiskImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        common::init_tracing();
        assert!(is_root(), "this test needs root (CI runs as root): mmdebstrap --mode=root and chroot");
        let started = Instant::now();
        let image =
            DiskImage::build(&spec(), &common::cache_dir()).unwrap_or_else(|e| panic!("disk image build: {e:#?}"));
        eprintln!("disk image {} ready in {:?}", image.path.display(), started.elapsed());
        image
    })
}

/// A scratch directory for raw conversions, removed when dropped.
fn scratch(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("disk-{tag}-")).tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// `qcow2` converted to a raw file in `dir`.
fn to_raw(qcow2: &Path, dir: &Path) -> PathBuf {
    let raw = dir.join("disk.raw");
    sh(&["qemu-img", "convert", "-f", "qcow2", "-O", "raw", &qcow2.to_string_lossy(), &raw.to_string_lossy()]);
    raw
}

/// The partitions `sfdisk --json` reads from `raw`: (start, size, type, uuid).
fn partitions(raw: &Path) -> Vec<(u64, u64, String, String)> {
    let json: serde_json::Value = serde_json::from_str(&sh(&["sfdisk", "--json", &raw.to_string_lossy()])).unwrap();
    assert_eq!(json["partitiontable"]["label"], "gpt", "{json}");
    let parts = json["partitiontable"]["partitions"].as_array().unwrap_or_else(|| panic!("{json}"));
    parts
        .iter()
        .map(|p| {
            let text = |k: &str| p[k].as_str().unwrap_or_default().to_ascii_lowercase();
            (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap(), text("type"), text("uuid"))
        })
        .collect()
}

/// `mtools` image argument for the ESP of `raw` (the first partition).
fn esp_of(raw: &Path) -> String {
    let start = partitions(raw)[0].0;
    format!("{}@@{}", raw.display(), start * 512)
}

/// A file of the root filesystem of `raw` (the second partition), read with debugfs.
fn root_file(raw: &Path, path: &str) -> String {
    let start = partitions(raw)[1].0;
    sh(&["debugfs", "-R", &format!("cat {path}"), &format!("{}?offset={}", raw.display(), start * 512)])
}

/// Bytes `offset..offset + len` of `raw` written to `out`.
fn extract(raw: &Path, offset: u64, len: u64, out: &Path) -> PathBuf {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(raw).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    let mut bytes = Vec::new();
    file.take(len).read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len() as u64, len);
    std::fs::write(out, bytes).unwrap();
    out.to_path_buf()
}

#[test]
fn the_image_is_a_qcow2_with_an_esp_booting_systemd_boot_and_a_configured_root() {
    let image = image();
    let dir = scratch("layout");

    let info: serde_json::Value =
        serde_json::from_str(&sh(&["qemu-img", "info", "--output=json", &image.path.to_string_lossy()])).unwrap();
    assert_eq!(info["format"], "qcow2", "{info}");
    let raw = to_raw(&image.path, dir.path());

    let parts = partitions(&raw);
    assert_eq!(parts.len(), 2, "{parts:?}");
    let (esp_start, esp_size, esp_type, _) = &parts[0];
    assert_eq!((*esp_start, esp_type.as_str()), (2048, "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"));
    assert!(*esp_size >= 64 * 2048, "ESP of {esp_size} sectors");
    let (root_start, root_size, root_type, root_uuid) = &parts[1];
    assert_eq!(*root_start, esp_start + esp_size);
    assert_eq!((*root_size, root_type.as_str()), (1200 * 2048, "0fc63daf-8483-4772-8e79-3d69d8477de4"));
    assert_eq!(root_uuid, image.root_partuuid.as_str());

    let esp = esp_of(&raw);
    let boot_dir = sh(&["mdir", "-b", "-i", &esp, "::/EFI/BOOT"]);
    assert!(boot_dir.lines().any(|l| l.trim() == "::/EFI/BOOT/BOOTX64.EFI"), "{boot_dir}");
    let entries = sh(&["mdir", "-b", "-i", &esp, "::/loader/entries"]);
    let top = sh(&["mdir", "-b", "-i", &esp, "::/"]);
    assert_eq!(image.kernels.len(), 2, "{:?}", image.kernels);
    assert!(image.kernels.contains(&image.default_release));
    assert!(image.default_release.starts_with("6.1.") && image.default_release.ends_with("-cloud-amd64"));
    for release in &image.kernels {
        assert!(entries.contains(&format!("::/loader/entries/{release}.conf")), "{entries}");
        for file in [format!("::/vmlinuz-{release}"), format!("::/initrd.img-{release}")] {
            assert!(top.lines().any(|l| l.trim() == file), "{file} not in {top}");
        }
        let entry = sh(&["mtype", "-i", &esp, &format!("::/loader/entries/{release}.conf")]);
        assert!(entry.contains(&format!("linux /vmlinuz-{release}\n")), "{entry}");
        assert!(entry.contains(&format!("options root=PARTUUID={root_uuid} ro console=ttyS0")), "{entry}");
    }
    let loader = sh(&["mtype", "-i", &esp, "::/loader/loader.conf"]);
    assert!(loader.starts_with(&format!("default {}.conf\ntimeout 0\n", image.default_release)), "{loader}");

    let key = std::fs::read_to_string(&image.ssh_public_key).unwrap();
    assert!(key.starts_with("ssh-ed25519 "), "{key}");
    assert_eq!(root_file(&raw, "/root/.ssh/authorized_keys"), key);
    assert_eq!(root_file(&raw, "/etc/fstab"), format!("PARTUUID={root_uuid} / ext4 defaults 0 1\n"));
    assert_eq!(root_file(&raw, "/etc/hostname"), "paltest-disk\n");
    assert!(root_file(&raw, "/etc/systemd/network/20-wired.network").contains("DHCP=ipv4"));
    assert!(!root_file(&raw, "/etc/resolv.conf").contains("nameserver"), "the host's name server was left");
    let drop_in = root_file(&raw, "/etc/systemd/system/ssh.service.d/palisade-host-keys.conf");
    assert!(drop_in.contains("ExecStartPre=/usr/bin/ssh-keygen -A"), "{drop_in}");
    let rootfs = format!("{}?offset={}", raw.display(), root_start * 512);
    let wants = sh(&["debugfs", "-R", "ls /etc/systemd/system/multi-user.target.wants", &rootfs]);
    assert!(wants.contains("systemd-networkd.service") && wants.contains("ssh.service"), "{wants}");
    for unit in
        ["apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer", "systemd-timesyncd.service"]
    {
        let stat = sh(&["debugfs", "-R", &format!("stat /etc/systemd/system/{unit}"), &rootfs]);
        assert!(stat.contains("Fast link dest: \"/dev/null\""), "{unit} is not masked: {stat}");
    }
    let ssh_dir = sh(&["debugfs", "-R", "ls /etc/ssh", &rootfs]);
    assert!(ssh_dir.contains("sshd_config") && !ssh_dir.contains("ssh_host_"), "host keys in the image: {ssh_dir}");
    sh(&["e2fsck", "-fn", &rootfs]);
}

#[test]
fn a_second_build_of_the_same_spec_is_a_cache_hit() {
    let image = image();

    let started = Instant::now();
    let again = DiskImage::build(&spec(), &common::cache_dir()).unwrap_or_else(|e| panic!("{e:#?}"));
    let elapsed = started.elapsed();

    assert_eq!(&again, image);
    assert!(elapsed < Duration::from_secs(10), "the cached build took {elapsed:?}");
    eprintln!("cache hit in {elapsed:?}");
}

#[test]
fn an_overlay_boots_the_other_kernel_and_leaves_the_base_unchanged() {
    let image = image();
    let dir = scratch("overlay");
    let other = image.kernels.iter().find(|k| **k != image.default_release).unwrap().clone();
    let overlay = dir.path().join("domain.qcow2");
    let base_before = std::fs::metadata(&image.path).unwrap().modified().unwrap();

    let started = Instant::now();
    image.overlay(&overlay, &other).unwrap_or_else(|e| panic!("{e:#?}"));
    eprintln!("overlay created in {:?}", started.elapsed());

    let info: serde_json::Value =
        serde_json::from_str(&sh(&["qemu-img", "info", "--output=json", &overlay.to_string_lossy()])).unwrap();
    assert_eq!(info["format"], "qcow2", "{info}");
    assert_eq!(info["backing-filename"], image.path.to_string_lossy().as_ref(), "{info}");
    let raw = to_raw(&overlay, dir.path());
    let loader = sh(&["mtype", "-i", &esp_of(&raw), "::/loader/loader.conf"]);
    assert!(loader.starts_with(&format!("default {other}.conf\ntimeout 0\n")), "{loader}");
    let (esp_start, esp_size, ..) = partitions(&raw)[0];
    let esp = extract(&raw, esp_start * 512, esp_size * 512, &dir.path().join("esp.img"));
    sh(&["fsck.vfat", "-n", &esp.to_string_lossy()]);
    assert_eq!(std::fs::metadata(&image.path).unwrap().modified().unwrap(), base_before, "the base was written");

    let again = image.overlay(&overlay, &image.default_release).unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
    let unknown = image.overlay(&dir.path().join("x.qcow2"), "5.10.0-1-amd64").unwrap_err();
    assert!(unknown.to_string().contains(&other), "{unknown}");
    assert!(!dir.path().join("x.qcow2").exists());
}
