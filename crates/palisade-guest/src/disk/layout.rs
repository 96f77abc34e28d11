//! What a disk image holds, as text and numbers: the partition table, the boot loader's files,
//! the files written into the root tree, and the cache key. Pure; [`super`] runs the tools.

use sha2::{Digest, Sha256};

use super::DiskError;

/// One MiB, the unit partitions are sized and aligned in.
pub(crate) const MIB: u64 = 1 << 20;
/// Bytes per sector in the partition table.
const SECTOR: u64 = 512;
/// The ESP starts 1 MiB into the disk (after the protective MBR and the GPT).
const ESP_START_MIB: u64 = 1;
/// The smallest ESP: what the recipe was verified with, room for one kernel and its initrd.
pub(crate) const MIN_ESP_MIB: u64 = 64;
/// Room left at the end of the disk for the backup GPT.
const GPT_TAIL_MIB: u64 = 1;
/// GPT type of an EFI system partition.
const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// GPT type of a Linux filesystem partition.
const LINUX_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// Changes whenever the recipe changes what an image holds, so older cached images are not
/// mistaken for new ones.
const RECIPE_VERSION: u32 = 1;

/// systemd-boot's `loader.conf` is written exactly this long, whatever the default entry, so
/// that an overlay can replace its bytes in place without touching the FAT (see
/// [`super::DiskImage::overlay`]). One sector: it sits in one cluster.
pub(crate) const LOADER_CONF_LEN: usize = 512;

/// Units masked in the guest (linked to `/dev/null`): nothing in a guest may call out, and
/// these would (apt's timers fetch package lists, timesyncd asks NTP servers) or would do
/// unrequested work on a shared host (e2scrub, fstrim).
pub(crate) const MASKED_UNITS: &[&str] =
    &["apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer", "systemd-timesyncd.service"];

/// systemd-networkd's configuration: DHCPv4 on any wired NIC (`net.ifnames=0` names it eth0).
pub(crate) const WIRED_NETWORK: &str = "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n";

/// A drop-in for `ssh.service` that makes the SSH host keys at the first start: the image ships
/// none, so every guest booted from it (each through its own overlay) gets its own. `sshd -t`,
/// the unit's own check, needs the keys, so the list is restarted with the key generation first.
pub(crate) const SSH_HOST_KEYS_DROP_IN: &str = "\
# Palisade: host keys are made on the first boot, so guests sharing one image do not share them.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
";

/// The guest's `/etc/resolv.conf`: no name server (mmdebstrap leaves the host's there).
pub(crate) const RESOLV_CONF: &str = "# No name server: Palisade guests do not call out.\n";

/// A GPT partition UUID, lowercase `8-4-4-4-12` hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PartUuid(String);

impl TryFrom<String> for PartUuid {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        PartUuid::parse(&text).ok_or_else(|| format!("`{text}` is not a partition UUID"))
    }
}

impl From<PartUuid> for String {
    fn from(uuid: PartUuid) -> String {
        uuid.0
    }
}

impl PartUuid {
    /// Checks the form of `text` (any case) and keeps it lowercase.
    pub fn parse(text: &str) -> Option<PartUuid> {
        let text = text.trim().to_ascii_lowercase();
        let groups: Vec<&str> = text.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        let hex = groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()));
        (lengths == [8, 4, 4, 4, 12] && hex).then_some(PartUuid(text))
    }

    /// The UUID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PartUuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Partition sizes of a disk: the ESP, then the root filesystem, both MiB-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// ESP size in MiB.
    pub esp_mib: u64,
    /// Root partition size in MiB.
    pub root_mib: u64,
}

impl Layout {
    /// A layout whose ESP holds `esp_payload` bytes of files (boot loader, kernels, initrds)
    /// with a quarter and 8 MiB to spare for FAT overhead, and never less than
    /// [`MIN_ESP_MIB`].
    pub fn for_payload(esp_payload: u64, root_mib: u64) -> Layout {
        let needed = (esp_payload + esp_payload / 4).div_ceil(MIB) + 8;
        Layout { esp_mib: needed.max(MIN_ESP_MIB), root_mib }
    }

    /// Byte offset of the ESP in the disk.
    pub fn esp_offset(&self) -> u64 {
        ESP_START_MIB * MIB
    }

    /// Byte offset of the root partition in the disk.
    pub fn root_offset(&self) -> u64 {
        (ESP_START_MIB + self.esp_mib) * MIB
    }

    /// Size of the whole disk in bytes.
    pub fn disk_bytes(&self) -> u64 {
        (ESP_START_MIB + self.esp_mib + self.root_mib + GPT_TAIL_MIB) * MIB
    }

    /// The `sfdisk` script that writes this layout's GPT, the root partition's UUID set.
    pub fn sfdisk_script(&self, root: &PartUuid) -> String {
        let sectors = |bytes: u64| bytes / SECTOR;
        format!(
            "label: gpt\nstart={}, size={}, type={ESP_TYPE}\nstart={}, size={}, type={LINUX_TYPE}, uuid={root}\n",
            sectors(self.esp_offset()),
            sectors(self.esp_mib * MIB),
            sectors(self.root_offset()),
            sectors(self.root_mib * MIB),
        )
    }
}

/// systemd-boot's entry for kernel `release` (its files at the top of the ESP).
pub(crate) fn loader_entry(release: &str, root: &PartUuid) -> String {
    format!(
        "title Debian {release}\nlinux /vmlinuz-{release}\ninitrd /initrd.img-{release}\n\
         options root=PARTUUID={root} ro console=ttyS0 net.ifnames=0\n"
    )
}

/// systemd-boot's `loader.conf` booting `release`'s entry at once, padded with newlines to
/// [`LOADER_CONF_LEN`] bytes.
pub(crate) fn loader_conf(default_release: &str) -> Result<Vec<u8>, DiskError> {
    let text = format!(
        "default {default_release}.conf\ntimeout 0\n\
         # Palisade keeps this file {LOADER_CONF_LEN} bytes long: overlays rewrite it in place.\n"
    );
    if text.len() > LOADER_CONF_LEN {
        return Err(DiskError::InvalidSpec(format!(
            "the kernel release `{default_release}` is too long for loader.conf ({LOADER_CONF_LEN} bytes)"
        )));
    }
    let mut bytes = text.into_bytes();
    bytes.resize(LOADER_CONF_LEN, b'\n');
    Ok(bytes)
}

/// The guest's `/etc/fstab`: the root filesystem by partition UUID.
pub(crate) fn fstab(root: &PartUuid) -> String {
    format!("PARTUUID={root} / ext4 defaults 0 1\n")
}

/// Whether `release` is a kernel release that can be a file name on the ESP and in a loader
/// entry: letters, digits and `.+-_~`.
pub(crate) fn valid_release(release: &str) -> bool {
    !release.is_empty() && release.chars().all(|c| c.is_ascii_alphanumeric() || ".+-_~".contains(c))
}

/// Whether `name` is a valid host name (one RFC 1123 label).
pub(crate) fn valid_hostname(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Everything an image's contents depend on, in the form the cache key is taken of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyInputs<'a> {
    pub suite: &'a str,
    /// Kernel packages as resolved, the default first.
    pub kernel_packages: &'a [String],
    pub extra_packages: &'a [String],
    pub root_mib: u64,
    pub hostname: &'a str,
    /// The apt source lines the root tree is bootstrapped from.
    pub sources: &'a [String],
}

/// The name of an image's cache directory: `disk-` and 20 hex digits of a SHA-256 over the
/// inputs (extra packages in any order are the same image; kernels are not, the first is the
/// default).
pub(crate) fn cache_key(inputs: &KeyInputs<'_>) -> String {
    let mut extra: Vec<&str> = inputs.extra_packages.iter().map(String::as_str).collect();
    extra.sort_unstable();
    extra.dedup();
    let mut text = format!("recipe {RECIPE_VERSION}\nsuite {}\n", inputs.suite);
    for package in inputs.kernel_packages {
        text.push_str(&format!("kernel {package}\n"));
    }
    for package in extra {
        text.push_str(&format!("package {package}\n"));
    }
    text.push_str(&format!("root_mib {}\nhostname {}\n", inputs.root_mib, inputs.hostname));
    for line in inputs.sources {
        text.push_str(&format!("source {line}\n"));
    }
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("disk-{hex}")
}

/// Where `needle` occurs in `haystack` at a multiple of `align` (file data in a FAT starts on
/// a sector): its offset if exactly once, otherwise how many times.
pub(crate) fn find_unique_aligned(haystack: &[u8], needle: &[u8], align: usize) -> Result<usize, usize> {
    if needle.is_empty() || align == 0 {
        return Err(0);
    }
    let mut found = (0..haystack.len()).step_by(align).filter(|&i| haystack.get(i..i + needle.len()) == Some(needle));
    match (found.next(), found.count()) {
        (Some(offset), 0) => Ok(offset),
        (first, rest) => Err(usize::from(first.is_some()) + rest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid() -> PartUuid {
        PartUuid::parse("0B5F1A3E-2C4D-4E6F-8A9B-0C1D2E3F4A5B").unwrap()
    }

    #[test]
    fn partuuids_are_checked_and_kept_lowercase() {
        assert_eq!(uuid().as_str(), "0b5f1a3e-2c4d-4e6f-8a9b-0c1d2e3f4a5b");
        assert_eq!(PartUuid::parse(" 0b5f1a3e-2c4d-4e6f-8a9b-0c1d2e3f4a5b\n"), Some(uuid()));
        for bad in [
            "",
            "0b5f1a3e2c4d4e6f8a9b0c1d2e3f4a5b",
            "0b5f1a3e-2c4d-4e6f-8a9b-0c1d2e3f4a5",
            "0b5f1a3e-2c4d-4e6f-8a9b-0c1d2e3f4a5g",
        ] {
            assert_eq!(PartUuid::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_sfdisk_script_is_the_verified_recipe_for_the_default_sizes() {
        let layout = Layout::for_payload(40 * MIB, 1200);

        assert_eq!(layout, Layout { esp_mib: 64, root_mib: 1200 });
        assert_eq!(
            layout.sfdisk_script(&uuid()),
            "label: gpt\n\
             start=2048, size=131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n\
             start=133120, size=2457600, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, \
             uuid=0b5f1a3e-2c4d-4e6f-8a9b-0c1d2e3f4a5b\n"
        );
        assert_eq!((layout.esp_offset(), layout.root_offset()), (MIB, 65 * MIB));
        assert_eq!(layout.disk_bytes(), (1 + 64 + 1200 + 1) * MIB);
    }

    #[test]
    fn the_esp_grows_with_what_it_holds() {
        let layout = Layout::for_payload(100 * MIB, 2000);

        assert_eq!(layout.esp_mib, 125 + 8);
        assert_eq!(layout.root_offset(), (1 + 133) * MIB);
        assert!(layout.sfdisk_script(&uuid()).contains("start=2048, size=272384,"));
        assert!(layout.sfdisk_script(&uuid()).contains("start=274432, size=4096000,"));
        assert_eq!(Layout::for_payload(0, 1).esp_mib, MIN_ESP_MIB);
    }

    #[test]
    fn loader_entries_boot_the_release_from_the_root_partition() {
        assert_eq!(
            loader_entry("6.1.0-57-cloud-amd64", &uuid()),
            "title Debian 6.1.0-57-cloud-amd64\n\
             linux /vmlinuz-6.1.0-57-cloud-amd64\n\
             initrd /initrd.img-6.1.0-57-cloud-amd64\n\
             options root=PARTUUID=0b5f1a3e-2c4d-4e6f-8a9b-0c1d2e3f4a5b ro console=ttyS0 net.ifnames=0\n"
        );
        assert_eq!(fstab(&uuid()), "PARTUUID=0b5f1a3e-2c4d-4e6f-8a9b-0c1d2e3f4a5b / ext4 defaults 0 1\n");
    }

    #[test]
    fn loader_conf_has_one_length_whatever_the_default() {
        let short = loader_conf("6.1.0-57-cloud-amd64").unwrap();
        let long = loader_conf("6.12.118+deb12-cloud-amd64").unwrap();

        assert_eq!((short.len(), long.len()), (LOADER_CONF_LEN, LOADER_CONF_LEN));
        assert!(short.starts_with(b"default 6.1.0-57-cloud-amd64.conf\ntimeout 0\n"));
        assert!(long.starts_with(b"default 6.12.118+deb12-cloud-amd64.conf\ntimeout 0\n"));
        assert!(short.iter().all(|b| b.is_ascii()));
        let err = loader_conf(&"x".repeat(LOADER_CONF_LEN)).unwrap_err();
        assert!(matches!(err, DiskError::InvalidSpec(_)), "{err:?}");
    }

    #[test]
    fn releases_and_hostnames_are_checked() {
        assert!(valid_release("6.12.118+deb12-rt-amd64"));
        assert!(!valid_release(""));
        assert!(!valid_release("6.1/../x"));
        assert!(!valid_release("6.1 x"));
        assert!(valid_hostname("palisade-guest"));
        assert!(valid_hostname("a"));
        for bad in ["", "-a", "a-", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!valid_hostname(bad), "{bad}");
        }
    }

    #[test]
    fn the_cache_key_changes_with_what_the_image_holds_and_only_that() {
        let kernels = vec!["linux-image-6.1.0-57-cloud-amd64".to_string()];
        let two_kernels = vec![kernels[0].clone(), "linux-image-6.12.118+deb12-cloud-amd64".to_string()];
        let swapped = vec![two_kernels[1].clone(), two_kernels[0].clone()];
        let extra = vec!["strace".to_string(), "curl".to_string()];
        let extra_reordered = vec!["curl".to_string(), "strace".to_string(), "curl".to_string()];
        let sources = vec!["deb http://deb.debian.org/debian bookworm main".to_string()];
        let base = KeyInputs {
            suite: "bookworm",
            kernel_packages: &kernels,
            extra_packages: &extra,
            root_mib: 1200,
            hostname: "guest",
            sources: &sources,
        };
        let key = cache_key(&base);

        assert_eq!(key, cache_key(&base.clone()));
        assert!(key.starts_with("disk-") && key.len() == 25, "{key}");
        assert_eq!(key, cache_key(&KeyInputs { extra_packages: &extra_reordered, ..base.clone() }));
        let changed = [
            KeyInputs { suite: "trixie", ..base.clone() },
            KeyInputs { kernel_packages: &two_kernels, ..base.clone() },
            KeyInputs { extra_packages: &[], ..base.clone() },
            KeyInputs { root_mib: 1201, ..base.clone() },
            KeyInputs { hostname: "other", ..base.clone() },
            KeyInputs { sources: &[], ..base.clone() },
        ];
        for inputs in &changed {
            assert_ne!(cache_key(inputs), key, "{inputs:?}");
        }
        let two = cache_key(&KeyInputs { kernel_packages: &two_kernels, ..base.clone() });
        assert_ne!(cache_key(&KeyInputs { kernel_packages: &swapped, ..base }), two, "the default kernel counts");
    }

    #[test]
    fn find_unique_reports_the_aligned_offset_or_the_count() {
        assert_eq!(find_unique_aligned(b"....abc.", b"abc", 4), Ok(4));
        assert_eq!(find_unique_aligned(b"abc", b"abc", 4), Ok(0));
        assert_eq!(find_unique_aligned(b"..abc...", b"abc", 4), Err(0), "not aligned");
        assert_eq!(find_unique_aligned(b"..ab", b"abc", 1), Err(0));
        assert_eq!(find_unique_aligned(b"abc.abc.", b"abc", 4), Err(2));
        assert_eq!(find_unique_aligned(b"abcabcabc", b"abc", 3), Err(3));
        assert_eq!(find_unique_aligned(b"....ab", b"abc", 4), Err(0), "cut at the end");
        assert_eq!(find_unique_aligned(b"abc", b"", 1), Err(0));
        assert_eq!(find_unique_aligned(b"abc", b"abc", 0), Err(0));
    }
}
