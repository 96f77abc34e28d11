//! How system calls are intercepted, chosen by looking at the kernel's own code.
//!
//! * **Entry call** (ftrace style): every `__x64_sys_<name>` handler starts (after an optional
//!   `endbr64`) with the 5-byte NOP left at its `__fentry__` call site. With the guest stopped,
//!   it is rewritten into `call palisade_trampoline`. Works whatever calls the handler, so it is
//!   the method for kernels that dispatch through `x64_sys_call`'s `switch` (6.9+, and stable
//!   backports such as Debian's 6.1 for the BHI mitigation), where the table is no longer used.
//! * **Table redirect** (the paper's method): `sys_call_table[nr]` is pointed at a payload stub.
//!   Only meaningful when the entry code still calls through the table.
//!
//! [`inspect`] gathers the evidence (does `x64_sys_call` exist, how many direct calls or jumps to
//! `__x64_sys_*` handlers it holds, does the syscall entry reference `sys_call_table`) and
//! [`choose`] picks the method; neither guesses when the evidence is missing.

use std::collections::BTreeSet;

use crate::layout::MAX_HOOKS;
use crate::policy::Syscall;

/// The 5-byte NOP at a `__fentry__` site (`nopl 0x0(%rax,%rax,1)`).
pub const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];
/// `endbr64`, present when the kernel is built with IBT.
pub const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];
/// How much of a function is scanned at most.
const MAX_SCAN: u64 = 64 << 10;

/// What hook installation found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// Neither dispatch style could be established.
    #[error("cannot tell how this kernel dispatches system calls: {0}")]
    UnknownDispatch(String),
    /// A handler's entry is not an ftrace NOP.
    #[error("{handler} does not start with an ftrace entry NOP (bytes {bytes:02x?})")]
    NoFentryNop {
        /// The handler symbol.
        handler: String,
        /// What is there.
        bytes: Vec<u8>,
    },
    /// A handler's entry already holds a call (ftrace enabled in the guest, or another hook).
    #[error("{handler}'s entry already holds a call ({bytes:02x?}); refusing to chain")]
    AlreadyPatched {
        /// The handler symbol.
        handler: String,
        /// What is there.
        bytes: Vec<u8>,
    },
    /// A symbol the method needs is missing or unreadable.
    #[error("the guest kernel has no readable `{0}`")]
    Symbol(String),
    /// A table entry does not hold the handler it should (tampered, or another hook).
    #[error("sys_call_table[{nr}] holds {found:#x}, not {handler} ({expected:#x}); refusing to chain")]
    TableMismatch {
        /// The system call number.
        nr: u32,
        /// The handler symbol.
        handler: String,
        /// What the entry holds.
        found: u64,
        /// The handler's address.
        expected: u64,
    },
    /// More hooks than the payload has table stubs.
    #[error("{0} hooks, the payload has {1} table stubs")]
    TooManyHooks(usize, usize),
    /// The trampoline is out of rel32 reach of a site.
    #[error("the trampoline at {target:#x} is beyond ±2 GiB of the call site {site:#x}")]
    OutOfReach {
        /// The site.
        site: u64,
        /// The trampoline.
        target: u64,
    },
}

/// Read access to the kernel's code and symbols.
pub trait KernelView {
    /// A symbol's address.
    fn symbol(&self, name: &str) -> Option<u64>;
    /// The addresses of all `__x64_sys_*` handlers.
    fn handlers(&self) -> BTreeSet<u64>;
    /// Bytes from the symbol at `addr` to the next symbol (at most `max`).
    fn function_bytes(&self, addr: u64, max: u64) -> Option<Vec<u8>>;
    /// `len` bytes of kernel memory at `addr`.
    fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>>;
}

/// What the kernel's code says about system-call dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchEvidence {
    /// `x64_sys_call`, if the kernel has it.
    pub x64_sys_call: Option<u64>,
    /// Direct `call`/`jmp rel32` instructions in `x64_sys_call` that land on a handler.
    pub direct_handler_branches: usize,
    /// `sys_call_table`, if the kernel has it.
    pub sys_call_table: Option<u64>,
    /// `do_syscall_64` holds `sys_call_table`'s address as a 32-bit displacement.
    pub entry_uses_table: bool,
}

/// The interception method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookMethod {
    /// Patch each handler's `__fentry__` NOP into a call to the trampoline.
    EntryCall,
    /// Point `sys_call_table` entries at payload stubs (the paper's method).
    TableRedirect,
}

/// Gathers the dispatch evidence.
pub fn inspect(k: &dyn KernelView) -> DispatchEvidence {
    let handlers = k.handlers();
    let x64_sys_call = k.symbol("x64_sys_call");
    let direct_handler_branches = x64_sys_call
        .and_then(|a| k.function_bytes(a, MAX_SCAN).map(|code| branch_targets(a, &code)))
        .map_or(0, |targets| targets.iter().filter(|t| handlers.contains(t)).count());
    let sys_call_table = k.symbol("sys_call_table");
    let entry_uses_table = match (sys_call_table, k.symbol("do_syscall_64")) {
        (Some(table), Some(entry)) => k
            .function_bytes(entry, MAX_SCAN)
            .is_some_and(|code| code.windows(4).any(|w| w == (table as u32).to_le_bytes())),
        _ => false,
    };
    DispatchEvidence { x64_sys_call, direct_handler_branches, sys_call_table, entry_uses_table }
}

/// Picks the method the evidence supports.
pub fn choose(e: &DispatchEvidence) -> Result<HookMethod, HookError> {
    if e.x64_sys_call.is_some() && e.direct_handler_branches > 0 {
        // The switch calls handlers directly: the table intercepts nothing.
        return Ok(HookMethod::EntryCall);
    }
    if e.x64_sys_call.is_some() {
        return Err(HookError::UnknownDispatch(
            "x64_sys_call exists but no direct branch to a __x64_sys_* handler was found in it".into(),
        ));
    }
    if e.sys_call_table.is_some() && e.entry_uses_table {
        return Ok(HookMethod::TableRedirect);
    }
    Err(HookError::UnknownDispatch(format!(
        "no x64_sys_call, and sys_call_table {} referenced by do_syscall_64",
        if e.sys_call_table.is_some() { "is not" } else { "does not exist, nor is it" }
    )))
}

/// Targets of every `e8`/`e9` rel32 byte pattern in `code` (a byte scan, not a disassembly:
/// only targets that are exactly a handler's start are counted).
fn branch_targets(addr: u64, code: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    for i in 0..code.len().saturating_sub(4) {
        if code[i] == 0xe8 || code[i] == 0xe9 {
            let rel = i32::from_le_bytes([code[i + 1], code[i + 2], code[i + 3], code[i + 4]]);
            out.push(addr.wrapping_add(i as u64 + 5).wrapping_add(rel as i64 as u64));
        }
    }
    out
}

/// The address of `handler`'s `__fentry__` NOP, given its first bytes.
pub fn fentry_site(handler: &str, addr: u64, code: &[u8]) -> Result<u64, HookError> {
    let skip = if code.starts_with(&ENDBR64) { 4 } else { 0 };
    let head = code.get(skip..skip + 5).unwrap_or(&[]);
    if head == NOP5 {
        Ok(addr + skip as u64)
    } else if head.first() == Some(&0xe8) {
        Err(HookError::AlreadyPatched { handler: handler.to_owned(), bytes: head.to_vec() })
    } else {
        Err(HookError::NoFentryNop { handler: handler.to_owned(), bytes: code.iter().take(9).copied().collect() })
    }
}

/// The 5 bytes `call target` placed at `site`.
pub fn call_bytes(site: u64, target: u64) -> Result<[u8; 5], HookError> {
    let rel = target.wrapping_sub(site.wrapping_add(5)) as i64;
    let rel = i32::try_from(rel).map_err(|_| HookError::OutOfReach { site, target })?;
    let r = rel.to_le_bytes();
    Ok([0xe8, r[0], r[1], r[2], r[3]])
}

/// One place to patch for one system call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The system call.
    pub syscall: Syscall,
    /// The patched address: a fentry NOP, or a `sys_call_table` slot.
    pub addr: u64,
    /// The bytes there now (restored on unhook).
    pub original: Vec<u8>,
}

/// Size of one table-redirect stub in the payload (`palisade_table_stubs`).
pub const STUB_SIZE: u64 = 16;

/// The patch targets of `method` for `syscalls`, checked against what the kernel holds.
pub fn targets(k: &dyn KernelView, method: HookMethod, syscalls: &[Syscall]) -> Result<Vec<Target>, HookError> {
    let mut out = Vec::with_capacity(syscalls.len());
    let table = match method {
        HookMethod::TableRedirect => {
            Some(k.symbol("sys_call_table").ok_or(HookError::Symbol("sys_call_table".into()))?)
        }
        HookMethod::EntryCall => None,
    };
    for &sc in syscalls {
        let handler = sc.handler();
        let addr = k.symbol(&handler).ok_or_else(|| HookError::Symbol(handler.clone()))?;
        let target = match table {
            None => {
                let code = k.read(addr, 9).ok_or_else(|| HookError::Symbol(handler.clone()))?;
                let site = fentry_site(&handler, addr, &code)?;
                Target { syscall: sc, addr: site, original: NOP5.to_vec() }
            }
            Some(table) => {
                let slot = table + 8 * u64::from(sc.nr);
                let bytes = k.read(slot, 8).ok_or(HookError::Symbol("sys_call_table".into()))?;
                let found = u64::from_le_bytes(bytes.as_slice().try_into().unwrap_or([0; 8]));
                if found != addr {
                    return Err(HookError::TableMismatch { nr: sc.nr, handler, found, expected: addr });
                }
                Target { syscall: sc, addr: slot, original: bytes }
            }
        };
        out.push(target);
    }
    Ok(out)
}

/// For the `i`-th target: the address the payload sees as the hook's site (its hook table key)
/// and the bytes to write at the target.
pub fn patch(
    method: HookMethod,
    i: usize,
    target: &Target,
    trampoline: u64,
    stubs: u64,
) -> Result<(u64, Vec<u8>), HookError> {
    match method {
        HookMethod::EntryCall => Ok((target.addr, call_bytes(target.addr, trampoline)?.to_vec())),
        HookMethod::TableRedirect => {
            if i >= MAX_HOOKS {
                return Err(HookError::TooManyHooks(i + 1, MAX_HOOKS));
            }
            let stub = stubs + STUB_SIZE * i as u64;
            Ok((stub, stub.to_le_bytes().to_vec()))
        }
    }
}

#[cfg(test)]
mod tests;
