//! Injection into a running guest and the life of the installed monitor.
//!
//! ```text
//!  parse payload ─► resolve imports and every kernel function injection calls (fail naming a
//!  missing symbol, guest untouched) ─► inspect dispatch, find fentry sites ─► hijacked
//!  module_alloc(size) or execmem_alloc(EXECMEM_DEFAULT, size) = mem-A ─► relocate at mem-A ─► text/rodata via
//!  gdb (TCG drops stale translations), data + mem-S via the RAM file (pages walked once)
//!  ─► hijacked set_memory_ro + set_memory_x (text), set_memory_ro (rodata) ─► check with a walk
//!  ─► mem-S header, hook table, policy ─► patch each NOP5 into `call trampoline` ─► resume
//! ```

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use palisade_vmi::gdb::{GdbClient, GdbError};
use palisade_vmi::hijack::{self, hijack_call, HijackError};
use palisade_vmi::kallsyms::KernelSymbols;
use palisade_vmi::{AddressSpace, Gpa, Gva, MemoryError, PhysMemory, RamFile, TranslateError, Translation, VirtMemory};

use crate::channel::{ChannelError, MemS};
use crate::elf::{ElfError, Object};
use crate::hooks::{self, HookError, HookMethod, KernelView};
use crate::loader::{self, LoadError, Segment, PAGE};
use crate::monitor::{InstalledHook, Monitor};
use crate::payload::{self, ImportError};
use crate::policy::{Rule, Syscall, HELPER_SYSCALLS};

/// Start of the x86-64 module area (`MODULES_VADDR` without KASLR of the area itself).
const MODULES_VADDR: u64 = 0xffff_ffff_a000_0000;

/// How the guest kernel hands out executable memory (the module loader's allocator), chosen by
/// the kernel's symbols: Linux 6.10 replaced `module_alloc` by the `execmem` allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Allocator {
    /// `module_alloc(size)`, freed with `module_memfree(ptr)` (Linux up to 6.9).
    ModuleAlloc,
    /// `execmem_alloc(EXECMEM_DEFAULT, size)`, freed with `execmem_free(ptr)` (Linux 6.10 and later).
    Execmem,
}

/// `EXECMEM_DEFAULT` (= `EXECMEM_MODULE_TEXT`), the first value of `enum execmem_type` in every
/// kernel that has it.
const EXECMEM_DEFAULT: u64 = 0;

impl Allocator {
    /// The allocator `symbols` offer (`module_alloc` where both exist, as the module loader of
    /// such a kernel uses it), or the missing symbol's error.
    pub fn of(symbols: &KernelSymbols) -> Result<Allocator, MonitorError> {
        let has = |name| payload::resolve_import(symbols, name).is_ok();
        if has("module_alloc") && has("module_memfree") {
            Ok(Allocator::ModuleAlloc)
        } else if has("execmem_alloc") && has("execmem_free") {
            Ok(Allocator::Execmem)
        } else {
            Err(MonitorError::KernelSymbol("module_alloc/module_memfree or execmem_alloc/execmem_free".into()))
        }
    }

    /// The allocating function.
    pub fn alloc_fn(self) -> &'static str {
        match self {
            Allocator::ModuleAlloc => "module_alloc",
            Allocator::Execmem => "execmem_alloc",
        }
    }

    /// The freeing function.
    pub fn free_fn(self) -> &'static str {
        match self {
            Allocator::ModuleAlloc => "module_memfree",
            Allocator::Execmem => "execmem_free",
        }
    }

    /// The allocating call's arguments for `size` bytes.
    fn alloc_args(self, size: u64) -> Vec<u64> {
        match self {
            Allocator::ModuleAlloc => vec![size],
            Allocator::Execmem => vec![EXECMEM_DEFAULT, size],
        }
    }
}

/// The kernel functions injection calls besides the allocator: checked before the guest is
/// stopped, so a kernel without one of them is refused untouched.
const PROTECTION_FNS: [&str; 2] = ["set_memory_ro", "set_memory_x"];

/// Why injection, hooking or unhooking failed.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The embedded payload is not a valid object.
    #[error("the payload object is malformed")]
    Payload(#[source] ElfError),
    /// An import is missing or ambiguous.
    #[error("the payload cannot be linked against this kernel")]
    Import(#[source] ImportError),
    /// A symbol the injector itself needs.
    #[error("the guest kernel has no symbol `{0}`, which injection needs")]
    KernelSymbol(String),
    /// Layout or relocation failed.
    #[error("the payload cannot be loaded")]
    Load(#[source] LoadError),
    /// Hook method or site problems.
    #[error("system calls cannot be hooked")]
    Hook(#[source] HookError),
    /// A system call not in the table, or one the payload calls itself.
    #[error("system call `{0}` cannot be hooked (unknown, or used by the payload itself)")]
    Syscall(String),
    /// A hijacked call failed.
    #[error("hijacked call to {func} failed")]
    Hijack {
        /// The kernel function.
        func: &'static str,
        /// Why.
        #[source]
        source: HijackError,
    },
    /// A hijacked call returned failure.
    #[error("{func} returned {value:#x}")]
    KernelCall {
        /// The kernel function.
        func: &'static str,
        /// Its return value.
        value: u64,
    },
    /// gdb stub I/O.
    #[error("gdb request failed")]
    Gdb(#[from] GdbError),
    /// Guest RAM I/O.
    #[error("guest RAM access failed")]
    Memory(#[from] MemoryError),
    /// Page walk.
    #[error("page walk of the payload's memory failed")]
    Translate(#[from] TranslateError),
    /// mem-S.
    #[error("mem-S access failed")]
    Channel(#[from] ChannelError),
    /// A page of the payload has the wrong rights.
    #[error("{segment:?} page {addr:#x} has rights {translation:?}")]
    Protection {
        /// The segment.
        segment: Segment,
        /// The page.
        addr: u64,
        /// What the walk found.
        translation: Translation,
    },
    /// A patched place holds something else than expected.
    #[error("the hook of {handler} at {addr:#x} holds {found:02x?}, not {expected:02x?}; left as is")]
    Tampered {
        /// The handler.
        handler: String,
        /// The patched address.
        addr: u64,
        /// What is there.
        found: Vec<u8>,
        /// What should be there.
        expected: Vec<u8>,
    },
}

/// Handlers tried besides the preferred safe point, whichever a vCPU enters first: a guest
/// that seldom reads still sleeps, polls, writes or opens. All are system-call handler entries
/// (process context, no locks held).
pub const FALLBACK_SAFE_POINTS: &[&str] = &[
    "__x64_sys_write",
    "__x64_sys_openat",
    "__x64_sys_close",
    "__x64_sys_clock_nanosleep",
    "__x64_sys_nanosleep",
    "__x64_sys_wait4",
    "__x64_sys_poll",
    "__x64_sys_ppoll",
    "__x64_sys_epoll_wait",
    "__x64_sys_epoll_pwait",
    "__x64_sys_pselect6",
    "__x64_sys_recvfrom",
    "__x64_sys_recvmsg",
    "__x64_sys_futex",
];

/// What injection is asked to do.
#[derive(Debug, Clone)]
pub struct InjectOptions {
    /// The system-call handler hijacked calls should run from (a frequently called one); the
    /// [`FALLBACK_SAFE_POINTS`] are armed too, and the first one a vCPU enters is used.
    pub safe_point: String,
    /// Timeout of each hijacked call (including reaching the safe point).
    pub timeout: Duration,
    /// The system calls to hook.
    pub syscalls: Vec<Syscall>,
    /// The initial policy.
    pub rules: Vec<Rule>,
    /// Force a method instead of the one the kernel's code calls for (experiments and tests:
    /// a forced method the kernel does not dispatch through intercepts nothing).
    pub method: Option<HookMethod>,
}

/// How long injection took, step by step.
#[derive(Debug, Clone, Copy, Default)]
pub struct InjectTimings {
    /// Parsing, resolving and inspecting (host only).
    pub prepare: Duration,
    /// The hijacked allocation (`module_alloc` or `execmem_alloc`), including waiting for the
    /// safe point.
    pub alloc: Duration,
    /// Writing the image.
    pub write: Duration,
    /// The hijacked protection calls and their check.
    pub protect: Duration,
    /// mem-S set-up and patching the sites.
    pub hook: Duration,
    /// Everything.
    pub total: Duration,
}

struct GuestKernel<'a> {
    symbols: &'a KernelSymbols,
    ram: &'a RamFile,
    addrs: Vec<u64>,
}

impl<'a> GuestKernel<'a> {
    fn new(symbols: &'a KernelSymbols, ram: &'a RamFile) -> Self {
        let mut addrs: Vec<u64> = symbols.symbols().iter().map(|s| s.addr.0).collect();
        addrs.sort_unstable();
        addrs.dedup();
        GuestKernel { symbols, ram, addrs }
    }

    /// Kernel image bytes, through the image's linear physical mapping.
    fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let off = addr.checked_sub(self.symbols.virt_base().0)?;
        self.ram.read_vec(Gpa(self.symbols.phys_base().0.checked_add(off)?), len).ok()
    }
}

impl KernelView for GuestKernel<'_> {
    fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols.by_name(name).map(|s| s.addr.0)
    }
    fn handlers(&self) -> std::collections::BTreeSet<u64> {
        self.symbols.with_prefix("__x64_sys_").map(|s| s.addr.0).collect()
    }
    fn function_bytes(&self, addr: u64, max: u64) -> Option<Vec<u8>> {
        let i = self.addrs.partition_point(|&a| a <= addr);
        let end = self.addrs.get(i).copied().unwrap_or(addr + max);
        self.read(addr, (end - addr).min(max) as usize)
    }
    fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        GuestKernel::read(self, addr, len)
    }
}

fn kernel_fn(symbols: &KernelSymbols, name: &'static str) -> Result<Gva, MonitorError> {
    payload::resolve_import(symbols, name).map(Gva).map_err(|_| MonitorError::KernelSymbol(name.into()))
}

/// Injects the payload into the guest behind `gdb` (stopped, as a fresh connection to the stub
/// leaves it, or after a hijacked call) and hooks `opts.syscalls`; the guest is left running.
pub fn inject(
    mut gdb: GdbClient<UnixStream>,
    ram: RamFile,
    symbols: &KernelSymbols,
    opts: &InjectOptions,
) -> Result<Monitor, MonitorError> {
    let t0 = Instant::now();
    let mut timings = InjectTimings::default();

    // 1. Host-side preparation: nothing in the guest changes if any of this fails.
    let obj = Object::parse(payload::OBJECT).map_err(MonitorError::Payload)?;
    let mut imports = std::collections::BTreeMap::new();
    for name in obj.imports() {
        imports.insert(name, payload::resolve_import(symbols, name).map_err(MonitorError::Import)?);
    }
    let allocator = Allocator::of(symbols)?;
    for name in PROTECTION_FNS {
        kernel_fn(symbols, name)?;
    }
    let kernel = GuestKernel::new(symbols, &ram);
    let evidence = hooks::inspect(&kernel);
    let chosen = hooks::choose(&evidence).map_err(MonitorError::Hook);
    tracing::info!(?evidence, ?chosen, forced = ?opts.method, "system-call dispatch inspected");
    let method = match opts.method {
        Some(forced) => forced,
        None => chosen?,
    };
    if let Some(sc) = opts.syscalls.iter().find(|sc| HELPER_SYSCALLS.contains(&sc.name)) {
        return Err(MonitorError::Syscall(sc.name.into()));
    }
    let targets = hooks::targets(&kernel, method, &opts.syscalls).map_err(MonitorError::Hook)?;
    let layout = loader::Layout::new(&obj).map_err(MonitorError::Load)?;
    // A dry run at the module area's start: a relocation that cannot be applied fails here,
    // before anything is allocated in the guest.
    loader::load(&obj, MODULES_VADDR, &|name| imports.get(name).copied()).map_err(MonitorError::Load)?;
    crate::policy::validate(&opts.rules).map_err(ChannelError::from)?;
    let preferred = payload::resolve_import(symbols, &opts.safe_point)
        .map(Gva)
        .map_err(|_| MonitorError::KernelSymbol(opts.safe_point.clone()))?;
    let mut candidates = vec![preferred];
    candidates.extend(FALLBACK_SAFE_POINTS.iter().filter_map(|n| payload::resolve_import(symbols, n).ok()).map(Gva));
    candidates.dedup();
    timings.prepare = t0.elapsed();

    // 2. mem-A. From here on a failure gives the allocation back.
    let t = Instant::now();
    // Whichever handler the guest calls first; the hijacked calls all run from it.
    let safe = hijack::reach_safe_point(&mut gdb, &candidates, opts.timeout)
        .map_err(|source| MonitorError::Hijack { func: "a safe point (a system-call handler)", source })?;
    if safe != preferred {
        let name = symbols.symbols().iter().find(|s| s.addr.0 == safe.0).map(|s| s.name.clone());
        tracing::info!(safe_point = ?name, "the guest reached a fallback safe point first");
    }
    let mut ctx = Guest { gdb: &mut gdb, symbols, safe, timeout: opts.timeout, allocator };
    tracing::info!(?allocator, size = layout.size, "allocating mem-A");
    let base = ctx.call(allocator.alloc_fn(), &allocator.alloc_args(layout.size))?;
    if base == 0 || base % PAGE != 0 {
        return Err(MonitorError::KernelCall { func: allocator.alloc_fn(), value: base });
    }
    timings.alloc = t.elapsed();
    let placed = place(&mut ctx, &ram, &obj, &imports, &layout, method, &targets, base, &mut timings);
    let (pages, trampoline, stubs) = match placed {
        Ok(v) => v,
        Err(e) => return Err(ctx.release(base, e)),
    };

    // 5. mem-S, then the hooks (guest stopped: all vCPUs are halted by the stub).
    let t = Instant::now();
    let mems = MemS::new(ram, pages);
    let mut planned = Vec::with_capacity(targets.len());
    for (i, t) in targets.into_iter().enumerate() {
        let (entry, patched) = hooks::patch(method, i, &t, trampoline, stubs).map_err(MonitorError::Hook)?;
        planned.push(InstalledHook { syscall: t.syscall, addr: t.addr, entry, original: t.original, patched });
    }
    let shared = mems
        .initialise(&planned.iter().map(|h| (h.entry, h.syscall)).collect::<Vec<_>>())
        .and_then(|()| mems.write_policy(&opts.rules));
    if let Err(e) = shared {
        return Err(ctx.release(base, e.into()));
    }
    let mut installed = Vec::with_capacity(planned.len());
    for h in planned {
        if let Err(e) = patch_one(ctx.gdb, &h) {
            // The guest has not run since the first patch: nothing is inside the payload.
            for done in installed.iter().rev() {
                if let Err(undo) = restore_one(ctx.gdb, done) {
                    tracing::warn!(error = %undo, handler = %done.syscall.handler(), "could not undo a hook");
                    return Err(e); // mem-A stays: a hook may still lead into it
                }
            }
            return Err(ctx.release(base, e));
        }
        installed.push(h);
    }
    timings.hook = t.elapsed();
    timings.total = t0.elapsed();
    gdb.cont()?;
    tracing::info!(base = format_args!("{base:#x}"), size = layout.size, hooks = installed.len(), "monitor injected");
    Ok(Monitor::new(gdb, mems, (base, layout.size), trampoline, allocator, method, evidence, installed, timings))
}

/// The guest behind the stub, for hijacked calls from the safe point.
struct Guest<'g> {
    gdb: &'g mut GdbClient<UnixStream>,
    symbols: &'g KernelSymbols,
    safe: Gva,
    timeout: Duration,
    allocator: Allocator,
}

impl Guest<'_> {
    fn call(&mut self, func: &'static str, args: &[u64]) -> Result<u64, MonitorError> {
        let f = kernel_fn(self.symbols, func)?;
        hijack_call(self.gdb, self.safe, f, args, self.timeout).map_err(|source| MonitorError::Hijack { func, source })
    }

    /// Gives mem-A back after a failed injection (nothing leads into it), keeping `error`.
    fn release(&mut self, base: u64, error: MonitorError) -> MonitorError {
        if let Err(e) = self.call(self.allocator.free_fn(), &[base]) {
            tracing::warn!(error = %e, base = format_args!("{base:#x}"), "could not free the payload's memory");
        }
        error
    }
}

/// Steps 3 and 4: relocates and writes the image (code through the gdb stub, data through the
/// RAM file), then makes it W^X and checks that with a page walk. Returns mem-S's pages, the
/// trampoline and the table stubs.
#[allow(clippy::too_many_arguments)]
fn place(
    ctx: &mut Guest<'_>,
    ram: &RamFile,
    obj: &Object<'_>,
    imports: &BTreeMap<&str, u64>,
    layout: &loader::Layout,
    method: HookMethod,
    targets: &[hooks::Target],
    base: u64,
    timings: &mut InjectTimings,
) -> Result<(Vec<Gpa>, u64, u64), MonitorError> {
    let t = Instant::now();
    let mut image = loader::load(obj, base, &|name| imports.get(name).copied()).map_err(MonitorError::Load)?;
    let export = |name: &str| image.export(name).ok_or_else(|| MonitorError::KernelSymbol(name.into()));
    let (trampoline, stubs, orig) =
        (export(payload::TRAMPOLINE)?, export(payload::TABLE_STUBS)?, export(payload::TABLE_ORIG)?);
    if method == HookMethod::TableRedirect {
        // The stubs' tail-jump targets: the original handlers (in the data segment).
        for (i, t) in targets.iter().enumerate() {
            let at = (orig - base) as usize + 8 * i;
            image.bytes[at..at + 8].copy_from_slice(&t.original);
        }
    }
    let regs = ctx.gdb.read_registers()?;
    let space = AddressSpace::from_registers(regs.get("cr3").unwrap_or(0), regs.get("cr4").unwrap_or(0));
    for seg in [Segment::Text, Segment::Rodata] {
        let r = layout.segment(seg);
        if !r.is_empty() {
            ctx.gdb.write_memory(Gva(base + r.start), &image.bytes[r.start as usize..r.end as usize])?;
        }
    }
    let vm = VirtMemory::new(ram, space);
    let data = layout.segment(Segment::Data);
    for off in (data.start..data.end).step_by(PAGE as usize) {
        let gpa = vm.translate(Gva(base + off))?.gpa;
        ram.write(gpa, &image.bytes[off as usize..(off + PAGE) as usize])?;
    }
    let ms = layout.segment(Segment::MemS);
    let mut pages = Vec::new();
    for off in (ms.start..ms.end).step_by(PAGE as usize) {
        pages.push(vm.translate(Gva(base + off))?.gpa);
    }
    timings.write = t.elapsed();

    // 4. W^X: code read-only then executable; rodata read-only; data and mem-S stay RW+NX.
    let t = Instant::now();
    let text = layout.segment(Segment::Text);
    for (func, range) in
        [("set_memory_ro", text.clone()), ("set_memory_x", text), ("set_memory_ro", layout.segment(Segment::Rodata))]
    {
        if range.is_empty() {
            continue;
        }
        let ret = ctx.call(func, &[base + range.start, (range.end - range.start) / PAGE])?;
        if ret as i32 != 0 {
            return Err(MonitorError::KernelCall { func, value: ret });
        }
    }
    for (seg, range) in &layout.segments {
        for off in (range.start..range.end).step_by(PAGE as usize) {
            let tr = vm.translate(Gva(base + off))?;
            let ok = match seg {
                Segment::Text => !tr.writable && !tr.nx,
                Segment::Rodata => !tr.writable && tr.nx,
                Segment::Data | Segment::MemS => tr.writable && tr.nx,
            };
            if !ok {
                return Err(MonitorError::Protection { segment: *seg, addr: base + off, translation: tr });
            }
        }
    }
    timings.protect = t.elapsed();
    Ok((pages, trampoline, stubs))
}

/// Reads `len` bytes at `addr` and checks them (the guest is stopped).
pub(crate) fn expect_bytes(
    gdb: &mut GdbClient<UnixStream>,
    h: &InstalledHook,
    expected: &[u8],
) -> Result<(), MonitorError> {
    let found = gdb.read_memory(Gva(h.addr), expected.len())?;
    if found != expected {
        return Err(MonitorError::Tampered {
            handler: h.syscall.handler(),
            addr: h.addr,
            found,
            expected: expected.to_vec(),
        });
    }
    Ok(())
}

/// Writes a hook after checking the original bytes, and checks the result.
fn patch_one(gdb: &mut GdbClient<UnixStream>, h: &InstalledHook) -> Result<(), MonitorError> {
    expect_bytes(gdb, h, &h.original)?;
    gdb.write_memory(Gva(h.addr), &h.patched)?;
    expect_bytes(gdb, h, &h.patched)
}

/// Puts a hook's original bytes back after checking ours are there, and checks the result.
pub(crate) fn restore_one(gdb: &mut GdbClient<UnixStream>, h: &InstalledHook) -> Result<(), MonitorError> {
    expect_bytes(gdb, h, &h.patched)?;
    gdb.write_memory(Gva(h.addr), &h.original)?;
    expect_bytes(gdb, h, &h.original)
}
