//! Why attaching to a libvirt domain failed.

use std::path::PathBuf;

use palisade_host::ToolError;

/// Why a domain could not be looked up, attached to or detached from. Every variant leaves the
/// domain running as it was.
#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    /// libvirt does not know the domain (or could not be reached).
    #[error("no libvirt domain `{domain}` at {uri}")]
    NoDomain {
        /// The name or UUID asked for.
        domain: String,
        /// The connection.
        uri: String,
        /// What virsh said.
        #[source]
        source: ToolError,
    },
    /// The domain is defined but has no QEMU process.
    #[error("domain `{domain}` is {state}, not running")]
    NotRunning {
        /// The domain.
        domain: String,
        /// Its state.
        state: String,
    },
    /// The domain is one Palisade cannot introspect.
    #[error("domain `{domain}` cannot be attached: {reason}")]
    Unsupported {
        /// The domain.
        domain: String,
        /// Why (architecture, machine type, guest OS).
        reason: String,
    },
    /// The domain's QEMU process could not be found.
    #[error("the QEMU process of domain `{domain}` cannot be found: {detail}")]
    NoProcess {
        /// The domain.
        domain: String,
        /// What was looked at.
        detail: String,
    },
    /// Guest RAM could not be located in the QEMU process.
    #[error("guest RAM of domain `{domain}` cannot be located in QEMU process {pid}: {detail}")]
    RamNotFound {
        /// The domain.
        domain: String,
        /// QEMU's pid.
        pid: u32,
        /// What was tried.
        detail: String,
    },
    /// The domain runs, but no vCPU runs a kernel found in its RAM: it is in firmware, its
    /// bootloader or early boot (after a reboot RAM still holds the previous boot's kernel,
    /// which is never picked). Attaching again later can succeed.
    #[error("domain `{domain}` is not running a kernel found in its RAM yet: {detail}")]
    Booting {
        /// The domain.
        domain: String,
        /// The kernel images found and where each vCPU's page tables map their `_text`.
        detail: String,
    },
    /// virsh (or another host tool) failed.
    #[error(transparent)]
    Tool(ToolError),
    /// virsh answered something this crate does not understand.
    #[error("unexpected output from {what}: {output}")]
    Unexpected {
        /// The command.
        what: &'static str,
        /// The start of its output.
        output: String,
    },
    /// A host file could not be read or written.
    #[error("could not use `{path}`")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Guest RAM access.
    #[error("guest RAM access failed")]
    Memory(#[from] palisade_vmi::MemoryError),
    /// The RAM file could not be opened.
    #[error("guest RAM cannot be opened")]
    RamFile(#[from] palisade_vmi::memory::RamFileError),
    /// The gdb stub could not be reached.
    #[error("the gdb stub started in the domain's QEMU cannot be reached")]
    Gdb(#[from] palisade_vmi::gdb::GdbError),
}
