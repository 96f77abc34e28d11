//! Errors returned by this crate.

use std::path::PathBuf;
use std::time::Duration;

use crate::cpio::CpioError;
use crate::disk::DiskError;
use crate::qmp::QmpError;
use palisade_elf::ElfError;

/// Why preparing, starting, watching or stopping a guest failed.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// A program could not be started at all (for example it is not installed).
    #[error("could not run `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// Why the spawn failed.
        #[source]
        source: std::io::Error,
    },

    /// A host tool (apt, dpkg-deb, ldd, busybox) could not be run, or ran and failed.
    #[error(transparent)]
    Tool(#[from] palisade_host::ToolError),

    /// `apt-get download` failed.
    #[error("could not download the Debian package `{package}` (stale package lists? try `apt-get update`)")]
    AptDownload {
        /// The package.
        package: String,
        /// How apt-get failed.
        #[source]
        source: palisade_host::ToolError,
    },

    /// A file or directory could not be read, written or created.
    #[error("could not {action} `{path}`")]
    Io {
        /// What was being done, as a verb phrase ("create", "read", ...).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },

    /// apt does not know the package this crate needs, or answered something unexpected.
    #[error("could not resolve the Debian package `{package}`: {detail}")]
    AptResolve {
        /// The package asked about.
        package: String,
        /// What was wrong (the hint to run `apt-get update` is included where it applies).
        detail: String,
    },

    /// An unpacked package or a built image lacks a file this crate needs.
    #[error("{what} not found at `{path}`")]
    MissingFile {
        /// What was expected ("vmlinuz", "kernel config", ...).
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },

    /// An ELF file (a kernel module, busybox) could not be read.
    #[error("could not read the ELF file `{path}`")]
    Elf {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        #[source]
        source: ElfError,
    },

    /// A kernel module the initramfs needs is neither built in nor present as a file.
    #[error("kernel module `{module}` is needed but is neither built in nor under `{modules_dir}`")]
    ModuleNotFound {
        /// The module name.
        module: String,
        /// The modules directory searched.
        modules_dir: PathBuf,
    },

    /// A kernel module file cannot be decompressed.
    #[error("could not read the kernel module `{path}`: {detail}")]
    ModuleCompression {
        /// The module file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },

    /// The host busybox is dynamically linked and no static one could be found.
    #[error("`{path}` is not a statically linked busybox")]
    BusyboxNotStatic {
        /// The busybox examined.
        path: PathBuf,
    },

    /// Writing the initramfs archive failed.
    #[error("could not write the initramfs archive")]
    Cpio(#[source] CpioError),

    /// The guest configuration is invalid; nothing was started.
    #[error("invalid guest configuration: {0}")]
    InvalidConfig(String),

    /// The guest RAM file already exists: another guest of that name runs, or a crashed run
    /// left it behind.
    #[error("the guest RAM file `{0}` already exists (another guest with this name, or a leftover to remove)")]
    RamFileExists(PathBuf),

    /// QEMU exited while the caller was waiting for something else.
    #[error("QEMU exited ({status}) while waiting for {waiting_for}; its stderr ends with: {stderr_tail}")]
    QemuExited {
        /// Its exit status, as the OS describes it.
        status: String,
        /// What was being waited for.
        waiting_for: String,
        /// The last lines QEMU wrote on stderr.
        stderr_tail: String,
    },

    /// Waiting for the QEMU process failed.
    #[error("could not wait for QEMU (pid {pid})")]
    Wait {
        /// QEMU's pid.
        pid: u32,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was being waited for.
        what: String,
        /// How long was waited.
        after: Duration,
    },

    /// A QMP exchange with the guest's QEMU failed.
    #[error("QMP request to the guest's QEMU failed")]
    Qmp(#[source] QmpError),

    /// A disk image could not be built or used.
    #[error(transparent)]
    Disk(#[from] DiskError),

    /// The guest was already stopped and its files removed.
    #[error("the guest `{0}` was stopped; its files are gone")]
    Stopped(String),
}

impl GuestError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        GuestError::Io { action, path: path.into(), source }
    }
}
