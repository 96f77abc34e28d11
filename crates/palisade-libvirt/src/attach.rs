//! Attaching to a running domain with no change to its definition: its RAM read in the QEMU
//! process (or through the file or memfd already backing it), proven by content against QEMU's
//! own view of guest-physical memory (HMP `xp`), the symbols of the kernel the vCPUs run
//! recovered from it, and a gdb stub started at run time on a private socket and stopped again
//! on detach. [`Attachment::check`] tells whether the domain still runs that kernel.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use palisade_vmi::gdb::GdbClient;
use palisade_vmi::kallsyms::{self, KernelSymbols};
use palisade_vmi::{Gpa, PhysMemory, RamFile, RamLayout};

use crate::error::LibvirtError;
use crate::ramblock::{self, Mapping, RamBlock};
use crate::registers::VcpuRegisters;
use crate::virsh::{DomainInfo, DomainXml, Libvirt};

/// Where attach sockets live unless the caller says otherwise.
pub const DEFAULT_RUN_DIR: &str = "/run/palisade/attach";

/// Pages of kernel text compared with QEMU's view before a RAM candidate is trusted.
const PROOF_PAGES: u64 = 4;
/// Bytes compared per page.
const PROOF_BYTES: usize = 64;
/// How much RAM is read to measure the access method's throughput.
const THROUGHPUT_SAMPLE: u64 = 64 << 20;

/// How guest RAM is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RamAccess {
    /// Anonymous memory of the QEMU process, through `/proc/PID/mem` (libvirt's default).
    ProcessMemory {
        /// QEMU's pid.
        pid: u32,
        /// Host address of the RAM block in QEMU.
        host_address: u64,
    },
    /// The file or memfd that already backs the RAM (`<memoryBacking><source type='file'|'memfd'/>`).
    MappedFile {
        /// What was opened: the file, or `/proc/PID/map_files/...` for a memfd.
        path: PathBuf,
        /// Offset of the RAM block in it.
        offset: u64,
    },
}

impl RamAccess {
    /// A short name for status output.
    pub fn method(&self) -> &'static str {
        match self {
            RamAccess::ProcessMemory { .. } => "process memory",
            RamAccess::MappedFile { .. } => "mapped file",
        }
    }
}

/// Whether an attachment still describes its domain ([`Attachment::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// The same QEMU process runs the attached kernel.
    Same,
    /// The domain runs, but not the attached kernel: it rebooted (or is rebooting), or its QEMU
    /// process was replaced. Symbols must be recovered again ([`Attachment::attach`]); the old
    /// attachment's hooks are gone with the old kernel.
    Replaced {
        /// What changed.
        detail: String,
    },
    /// The domain no longer runs here: shut off, crashed, undefined or migrated away.
    Gone {
        /// Its state as libvirt words it (`undefined` when libvirt no longer knows it).
        state: String,
    },
}

/// Options of [`Attachment::attach`].
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// Directory for the per-domain gdb socket directories.
    pub run_dir: PathBuf,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions { run_dir: PathBuf::from(DEFAULT_RUN_DIR) }
    }
}

/// A running domain Palisade has attached to.
#[derive(Debug)]
pub struct Attachment {
    libvirt: Libvirt,
    domain: DomainInfo,
    definition: DomainXml,
    pid: u32,
    access: RamAccess,
    /// Guest-physical layout of the RAM block (offsets within the block).
    layout: RamLayout,
    ram: RamFile,
    symbols: KernelSymbols,
    throughput: f64,
    elapsed: Duration,
    gdb_dir: Option<PathBuf>,
    run_dir: PathBuf,
}

impl Attachment {
    /// Attaches to `domain` (name or UUID): finds its QEMU process and guest RAM, proves the RAM
    /// by content and recovers the symbols of the kernel its vCPUs run. Nothing in the domain
    /// changes (no stub yet; see [`Attachment::gdb`]). Refuses a domain that is not running, not
    /// x86_64, of a machine type whose RAM layout is unknown, or whose kernel has no kallsyms.
    /// While no vCPU runs a kernel found in RAM (firmware, bootloader, early boot, also right
    /// after a reboot, when RAM still holds the previous boot's kernel) it fails with
    /// [`LibvirtError::Booting`]; a stale kernel image is never picked.
    pub fn attach(libvirt: &Libvirt, domain: &str, options: &AttachOptions) -> Result<Attachment, LibvirtError> {
        let started = Instant::now();
        let info = libvirt.lookup(domain)?;
        if !info.is_active() {
            return Err(LibvirtError::NotRunning { domain: info.name, state: info.state });
        }
        let definition = libvirt.definition(&info)?;
        let unsupported = |reason: String| LibvirtError::Unsupported { domain: info.name.clone(), reason };
        if definition.arch != "x86_64" {
            return Err(unsupported(format!(
                "its architecture is {:?}; only x86_64 guests are introspected",
                definition.arch
            )));
        }
        let layout_of = machine_layout(&definition.machine).ok_or_else(|| {
            unsupported(format!("machine type {:?} has no known RAM layout (q35 and pc/i440fx do)", definition.machine))
        })?;
        let pid = libvirt.qemu_pid(&info)?;
        let blocks = ramblock::parse_info_ramblock(&libvirt.hmp(&info, "info ramblock")?);
        let block = main_ram_block(&blocks).ok_or_else(|| LibvirtError::RamNotFound {
            domain: info.name.clone(),
            pid,
            detail: format!("`info ramblock` lists no pc.ram block (blocks: {})", names(&blocks)),
        })?;
        let layout = layout_of(block.used);
        let maps_path = PathBuf::from(format!("/proc/{pid}/maps"));
        let maps = std::fs::read_to_string(&maps_path).map_err(|e| LibvirtError::Io { path: maps_path, source: e })?;
        let maps = ramblock::parse_maps(&maps);
        let (access, ram, symbols) = locate(libvirt, &info, pid, &maps, &layout, block.used)?;
        let throughput = measure_throughput(&ram);
        let elapsed = started.elapsed();
        tracing::info!(
            domain = %info.name, pid, method = access.method(), symbols = symbols.symbols().len(),
            mib_per_s = throughput as u64, ?elapsed, "attached"
        );
        Ok(Attachment {
            libvirt: libvirt.clone(),
            domain: info,
            definition,
            pid,
            access,
            layout,
            ram,
            symbols,
            throughput,
            elapsed,
            gdb_dir: None,
            run_dir: options.run_dir.clone(),
        })
    }

    /// Whether the domain still runs the attached kernel in the same QEMU process: one
    /// `virsh dominfo`, one HMP `info registers -a` and a page-table walk per vCPU (a second
    /// HMP call only when no vCPU runs it, so that a page-table root freed between the two
    /// reads is not mistaken for a reboot).
    pub fn check(&self) -> Result<Liveness, LibvirtError> {
        let info = match self.libvirt.lookup(&self.domain.uuid) {
            Ok(info) => info,
            Err(e) if is_unknown_domain(&e) => return Ok(Liveness::Gone { state: "undefined".into() }),
            Err(e) => return Err(e),
        };
        if !info.is_active() {
            return Ok(Liveness::Gone { state: info.state });
        }
        let pid = self.libvirt.qemu_pid(&info)?;
        if pid != self.pid {
            return Ok(Liveness::Replaced { detail: format!("its QEMU process is {pid}, was {}", self.pid) });
        }
        let mut why = String::new();
        for _ in 0..2 {
            match running_vcpu(&self.ram, &self.symbols, &self.libvirt.vcpu_registers(&info)?) {
                Ok(_) => return Ok(Liveness::Same),
                Err(e) => why = e,
            }
        }
        Ok(Liveness::Replaced {
            detail: format!("no vCPU runs the attached kernel (_text {}) any more: {why}", self.symbols.virt_base()),
        })
    }

    /// The domain.
    pub fn domain(&self) -> &DomainInfo {
        &self.domain
    }

    /// Its definition's attach-relevant parts.
    pub fn definition(&self) -> &DomainXml {
        &self.definition
    }

    /// QEMU's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How RAM is reached.
    pub fn access(&self) -> &RamAccess {
        &self.access
    }

    /// Guest RAM.
    pub fn ram(&self) -> &RamFile {
        &self.ram
    }

    /// A second handle on guest RAM (the monitor keeps one of its own).
    pub fn open_ram(&self) -> Result<RamFile, LibvirtError> {
        open_access(&self.access, self.layout.clone())
    }

    /// The kernel's symbols, recovered from RAM.
    pub fn symbols(&self) -> &KernelSymbols {
        &self.symbols
    }

    /// RAM read throughput of the access method, MiB/s (64 MiB read at attach).
    pub fn throughput_mib_s(&self) -> f64 {
        self.throughput
    }

    /// How long attaching took.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Starts a gdb stub in the domain's QEMU on a private unix socket and connects to it; the
    /// guest's vCPUs stop while a debugger is connected and run again when it detaches.
    pub fn gdb(&mut self) -> Result<GdbClient<std::os::unix::net::UnixStream>, LibvirtError> {
        let dir = self.run_dir.join(&self.domain.uuid);
        let socket = dir.join("gdb.sock");
        if self.gdb_dir.is_none() {
            prepare_socket_dir(&dir, self.pid)?;
            self.gdb_dir = Some(dir.clone());
            let spec = format!("unix:{},server=on,wait=off", socket.display());
            self.libvirt.hmp(&self.domain, &format!("gdbserver {spec}"))?;
        }
        Ok(GdbClient::connect_unix(&socket)?)
    }

    /// Stops the gdb stub (if one was started) and removes its socket: the domain is left as it
    /// was found. The caller detaches its gdb client first (which resumes the guest).
    pub fn detach(mut self) -> Result<(), LibvirtError> {
        self.stop_gdb()
    }

    fn stop_gdb(&mut self) -> Result<(), LibvirtError> {
        let Some(dir) = self.gdb_dir.take() else { return Ok(()) };
        let stopped = self.libvirt.hmp(&self.domain, "gdbserver none");
        let removed = std::fs::remove_dir_all(&dir).map_err(|e| LibvirtError::Io { path: dir, source: e });
        stopped?;
        removed
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Err(e) = self.stop_gdb() {
            tracing::warn!(domain = %self.domain.name, error = %palisade_host::chain(&e), "could not stop the gdb stub");
        }
    }
}

/// The RAM layout of a libvirt machine type, as a function of the RAM size.
fn machine_layout(machine: &str) -> Option<fn(u64) -> RamLayout> {
    if machine == "q35" || machine.starts_with("pc-q35-") {
        Some(RamLayout::q35)
    } else if machine == "pc" || machine.starts_with("pc-i440fx-") {
        Some(RamLayout::pc)
    } else {
        None
    }
}

/// The block holding main RAM (`pc.ram` on q35 and pc, whatever its backend).
fn main_ram_block(blocks: &[RamBlock]) -> Option<&RamBlock> {
    blocks.iter().find(|b| b.name == "pc.ram")
}

fn names(blocks: &[RamBlock]) -> String {
    blocks.iter().map(|b| b.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// `virsh dominfo` failed because libvirt does not know the domain (not because libvirt could
/// not be reached).
fn is_unknown_domain(e: &LibvirtError) -> bool {
    matches!(e, LibvirtError::NoDomain { source: palisade_host::ToolError::Failed { stderr, .. }, .. }
        if stderr.contains("failed to get domain"))
}

/// The first vCPU whose page tables map `symbols`' `_text` to its physical base, or why none
/// does.
fn running_vcpu(ram: &RamFile, symbols: &KernelSymbols, vcpus: &[VcpuRegisters]) -> Result<u32, String> {
    let mut why = Vec::new();
    for v in vcpus {
        if !v.long_mode_paging() {
            why.push(format!("vCPU {} is not paging in long mode (CR0 {:#x}, EFER {:#x})", v.cpu, v.cr0, v.efer));
            continue;
        }
        match symbols.runs_under(ram, v.cr3, v.cr4) {
            Ok(_) => return Ok(v.cpu),
            Err(e) => why.push(format!("vCPU {}: {e}", v.cpu)),
        }
    }
    Err(why.join("; "))
}

/// The one kernel among `candidates` that a vCPU runs.
fn live_kernel(
    ram: &RamFile,
    domain: &DomainInfo,
    candidates: Vec<KernelSymbols>,
    vcpus: &[VcpuRegisters],
) -> Result<KernelSymbols, LibvirtError> {
    let count = candidates.len();
    let mut why = Vec::new();
    let mut live = Vec::new();
    for k in candidates {
        match running_vcpu(ram, &k, vcpus) {
            Ok(_) => live.push(k),
            Err(e) => why.push(format!("kernel at {} ({}): {e}", k.virt_base(), k.phys_base())),
        }
    }
    match live.len() {
        1 => Ok(live.swap_remove(0)),
        0 => Err(LibvirtError::Booting {
            domain: domain.name.clone(),
            detail: format!("{count} kernel image(s) in RAM, none run by a vCPU: {}", why.join("; ")),
        }),
        n => Err(LibvirtError::Unsupported {
            domain: domain.name.clone(),
            reason: format!(
                "{n} different kernel symbol tables in RAM are each run by a vCPU's page tables \
                 (same bases: {}); refusing to guess",
                live.iter()
                    .map(|k| format!("{} at {}", k.virt_base(), k.layout().token_table))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Tries each mapping that could hold the RAM block: recovers every kernel's symbols through
/// it and compares pages of kernel text with QEMU's view (`xp`); the first mapping that passes
/// is the RAM, and the kernel the vCPUs run there is the one attached to.
fn locate(
    libvirt: &Libvirt,
    domain: &DomainInfo,
    pid: u32,
    maps: &[Mapping],
    layout: &RamLayout,
    len: u64,
) -> Result<(RamAccess, RamFile, KernelSymbols), LibvirtError> {
    let mut tried = Vec::new();
    for m in ramblock::candidates(maps, len) {
        let access = access_for(pid, m);
        let ram = match open_access(&access, layout.clone()) {
            Ok(r) => r,
            Err(e) => {
                tried.push(format!("{:#x}: {}", m.start, palisade_host::chain(&e)));
                continue;
            }
        };
        let candidates = match kallsyms::recover_all(&ram) {
            Ok(s) => s,
            Err(e) => {
                tried.push(format!("{:#x}: no kernel symbols ({})", m.start, palisade_host::chain(&e)));
                continue;
            }
        };
        // Any image found proves the mapping by content; the one the vCPUs run is attached.
        if let Err(detail) = prove(libvirt, domain, &ram, &candidates[0]) {
            tried.push(format!("{:#x}: {detail}", m.start));
            continue;
        }
        let proven = candidates[0].layout().token_table;
        let symbols = live_kernel(&ram, domain, candidates, &libvirt.vcpu_registers(domain)?)?;
        if symbols.layout().token_table != proven {
            prove(libvirt, domain, &ram, &symbols).map_err(|detail| LibvirtError::RamNotFound {
                domain: domain.name.clone(),
                pid,
                detail,
            })?;
        }
        return Ok((access, ram, symbols));
    }
    let detail = if tried.is_empty() {
        format!("no read-write mapping of at least {len} bytes")
    } else {
        format!(
            "no mapping holds it or the kernel has no kallsyms (non-Linux guest, or CONFIG_KALLSYMS off): {}",
            tried.join("; ")
        )
    };
    Err(LibvirtError::RamNotFound { domain: domain.name.clone(), pid, detail })
}

fn access_for(pid: u32, m: &Mapping) -> RamAccess {
    match &m.path {
        Some(path) if path.starts_with("/memfd:") => RamAccess::MappedFile {
            path: PathBuf::from(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end)),
            offset: m.file_offset,
        },
        Some(path) if !path.ends_with(" (deleted)") && Path::new(path).is_file() => {
            RamAccess::MappedFile { path: PathBuf::from(path), offset: m.file_offset }
        }
        _ => RamAccess::ProcessMemory { pid, host_address: m.start },
    }
}

fn open_access(access: &RamAccess, layout: RamLayout) -> Result<RamFile, LibvirtError> {
    let overflow = |_| LibvirtError::Unexpected { what: "RAM layout", output: "offset overflows".into() };
    Ok(match access {
        RamAccess::ProcessMemory { pid, host_address } => {
            RamFile::process_memory(*pid, layout.offset_by(*host_address).map_err(overflow)?)?
        }
        RamAccess::MappedFile { path, offset } => RamFile::open(path, layout.offset_by(*offset).map_err(overflow)?)?,
    })
}

/// Compares [`PROOF_PAGES`] pages of kernel text read through `ram` with QEMU's own view of
/// the same guest-physical bytes.
fn prove(libvirt: &Libvirt, domain: &DomainInfo, ram: &RamFile, symbols: &KernelSymbols) -> Result<(), String> {
    let text_len = symbols
        .by_name("_etext")
        .map(|e| e.addr.0.saturating_sub(symbols.virt_base().0))
        .filter(|&l| l >= 4096)
        .unwrap_or(1 << 20);
    for i in 0..PROOF_PAGES {
        let gpa = Gpa(symbols.phys_base().0 + (text_len / PROOF_PAGES * i) / 4096 * 4096);
        let mut mine = vec![0u8; PROOF_BYTES];
        ram.read(gpa, &mut mine).map_err(|e| format!("read at {gpa}: {e}"))?;
        let command = format!("xp /{PROOF_BYTES}xb {:#x}", gpa.0);
        let theirs = libvirt.hmp(domain, &command).map_err(|e| palisade_host::chain(&e))?;
        let theirs = ramblock::parse_xp_bytes(&theirs);
        if theirs != mine {
            return Err(format!("bytes at {gpa} differ from QEMU's view"));
        }
    }
    Ok(())
}

/// MiB/s of reading [`THROUGHPUT_SAMPLE`] bytes of RAM in 2 MiB pieces.
fn measure_throughput(ram: &RamFile) -> f64 {
    let mut buf = vec![0u8; 2 << 20];
    let t = Instant::now();
    let mut done = 0u64;
    for (start, len) in ram.regions() {
        let mut off = 0;
        while off < len && done < THROUGHPUT_SAMPLE {
            let n = (len - off).min(buf.len() as u64) as usize;
            if ram.read(Gpa(start.0 + off), &mut buf[..n]).is_err() {
                return 0.0;
            }
            off += n as u64;
            done += n as u64;
        }
    }
    done as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64().max(1e-9)
}

/// A fresh directory for the stub's socket, owned by QEMU's user (libvirt runs QEMU as an
/// unprivileged user, which must be able to create the socket).
fn prepare_socket_dir(dir: &Path, pid: u32) -> Result<(), LibvirtError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |e| LibvirtError::Io { path, source: e }
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let owner = std::fs::metadata(&proc_dir).map_err(io(&proc_dir))?;
    std::os::unix::fs::chown(dir, Some(owner.uid()), Some(owner.gid())).map_err(io(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_types_map_to_layouts() {
        assert!(machine_layout("pc-q35-7.2").is_some());
        assert!(machine_layout("q35").is_some());
        assert!(machine_layout("pc-i440fx-7.2").is_some());
        assert!(machine_layout("pc").is_some());
        assert!(machine_layout("virt").is_none());
        assert!(machine_layout("microvm").is_none());
    }

    #[test]
    fn a_mapping_is_read_the_way_it_is_backed() {
        let anon = Mapping {
            start: 0x7f00_0000_0000,
            end: 0x7f00_4000_0000,
            read_write: true,
            shared: false,
            file_offset: 0,
            path: None,
        };
        assert_eq!(access_for(7, &anon), RamAccess::ProcessMemory { pid: 7, host_address: 0x7f00_0000_0000 });
        let memfd = Mapping { path: Some("/memfd:pc.ram (deleted)".into()), shared: true, ..anon.clone() };
        assert_eq!(
            access_for(7, &memfd),
            RamAccess::MappedFile { path: PathBuf::from("/proc/7/map_files/7f0000000000-7f0040000000"), offset: 0 }
        );
        let gone = Mapping { path: Some("/dev/shm/ram (deleted)".into()), ..anon };
        assert!(matches!(access_for(7, &gone), RamAccess::ProcessMemory { .. }));
    }
}
