//! Hijacked kernel calls (paper §3.3.1(2)): make the guest kernel call one of its own
//! functions with chosen arguments, on a vCPU stopped in process context, and return its
//! result — then put the interrupted task's registers back exactly as they were.
//!
//! ```text
//!   break at safe point (a syscall handler) ─► save registers ─► rsp := aligned frame below
//!   the live stack, [rsp] := safe point (trap) ─► rdi.. := args, rip := func ─► continue
//!   ─► trap at safe point with rsp == frame (other hits are stepped over) ─► rax
//!   ─► write back the task's registers that differ ─► check ─► guest stopped at the safe point
//! ```
//!
//! The return trap reuses the safe point's breakpoint: the function `ret`s to the safe point's
//! address, and the stop is ours only if rsp is our frame's.
//!
//! What is restored is the task's context: the general registers, rip and rflags
//! ([`TASK_REGISTERS`]). The rest belongs to the CPU and stays as the kernel left it: a function
//! that sleeps can resume on another vCPU, whose gs_base (per-CPU area), cr3 and cr2 must not be
//! overwritten with the first vCPU's (that would make two CPUs share one per-CPU area).
//! Registers wider than 64 bits (x87, SSE) are not saved: kernel code does not touch them
//! outside `kernel_fpu_begin`.

use std::time::{Duration, Instant};

use crate::gdb::{Breakpoint, GdbClient, GdbError, Registers, StopReply, Transport};
use crate::Gva;

/// The registers of the interrupted task that a hijacked call restores.
pub const TASK_REGISTERS: [&str; 18] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    "rip", "eflags",
];
/// System V argument registers, in order.
const ARG_REGS: [&str; 6] = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"];
/// How far below the interrupted stack pointer the call's frame starts.
const STACK_GAP: u64 = 512;

/// Why a hijacked call failed.
#[derive(Debug, thiserror::Error)]
pub enum HijackError {
    /// Talking to the gdb stub failed.
    #[error("gdb request failed during a hijacked call")]
    Gdb(#[from] GdbError),
    /// More arguments than registers.
    #[error("at most 6 register arguments are supported, {0} given")]
    TooManyArgs(usize),
    /// No safe point was given.
    #[error("no safe point was given")]
    NoSafePoint,
    /// The safe point was not reached in time; the guest is stopped, breakpoint removed.
    #[error("no vCPU reached the safe point {0} within {1:?}")]
    SafePointNotReached(Gva, Duration),
    /// The function did not return in time. The vCPU is stopped inside it and its registers
    /// are NOT restored: restoring mid-call could leave kernel locks held.
    #[error("hijacked call to {0} did not return within {1:?}")]
    NoReturn(Gva, Duration),
    /// The guest stopped for another reason (the guest is stopped).
    #[error("guest stopped unexpectedly during a hijacked call: {0:?}")]
    UnexpectedStop(StopReply),
    /// After the call, a register could not be put back.
    #[error("register {name} reads {actual:#x} after restore, expected {expected:#x}")]
    NotRestored {
        /// The register.
        name: String,
        /// Saved value.
        expected: u64,
        /// Value read back.
        actual: u64,
    },
}

/// Calls `func(args..)` in the guest kernel and returns its `rax`.
///
/// The guest must be stopped. If it is not already stopped at `safe_point`, a breakpoint there
/// is set and the guest resumed until a vCPU hits it (so `safe_point` should be a frequently
/// called system-call handler: process context, no locks held, interrupts on). On success the
/// guest is left stopped at `safe_point` with the task's registers ([`TASK_REGISTERS`]) as
/// they were (on the vCPU the task now runs on); resume it with
/// [`GdbClient::cont`] or make another call.
pub fn hijack_call<T: Transport>(
    gdb: &mut GdbClient<T>,
    safe_point: Gva,
    func: Gva,
    args: &[u64],
    timeout: Duration,
) -> Result<u64, HijackError> {
    if args.len() > ARG_REGS.len() {
        return Err(HijackError::TooManyArgs(args.len()));
    }
    let deadline = Instant::now() + timeout;
    gdb.insert_breakpoint(Breakpoint::Software, safe_point, 1)?;
    let result = call_with_breakpoint(gdb, safe_point, func, args, timeout, deadline);
    // Leave no breakpoint behind, whatever happened (the stub may be gone on I/O errors).
    let removed = gdb.remove_breakpoint(Breakpoint::Software, safe_point, 1);
    let value = result?;
    removed?;
    Ok(value)
}

fn call_with_breakpoint<T: Transport>(
    gdb: &mut GdbClient<T>,
    safe_point: Gva,
    func: Gva,
    args: &[u64],
    timeout: Duration,
    deadline: Instant,
) -> Result<u64, HijackError> {
    // 1. A vCPU at the safe point (QEMU points register requests at the vCPU that stopped).
    let mut caller = None;
    if gdb.read_register("rip")? != safe_point.0 {
        gdb.cont()?;
        let stop = wait_for(gdb, safe_point, None, deadline)
            .map_err(|e| stopped_or(e, HijackError::SafePointNotReached(safe_point, timeout)))?
            .ok_or(HijackError::SafePointNotReached(safe_point, timeout))?;
        caller = stop.thread();
    }
    let saved = gdb.read_registers()?;
    let get = |name: &str| saved.get(name).ok_or_else(|| GdbError::UnknownRegister(name.into()));

    // 2. A call frame below the live stack: 16-byte aligned before the return address is
    //    pushed, as at a `call`; the return address is the safe point (where we trap).
    let frame = (get("rsp")? - STACK_GAP) & !0xf;
    let ret_slot = frame - 8;
    gdb.write_memory(Gva(ret_slot), &safe_point.0.to_le_bytes())?;
    for (reg, &value) in ARG_REGS.iter().zip(args) {
        gdb.write_register(reg, value)?;
    }
    gdb.write_register("rsp", ret_slot)?;
    gdb.write_register("rip", func.0)?;

    // 3. Run until our `ret` lands on the safe point with rsp == frame.
    gdb.cont()?;
    let stop = wait_for(gdb, safe_point, Some(frame), deadline)
        .map_err(|e| stopped_or(e, HijackError::NoReturn(func, timeout)))?;
    let Some(stop) = stop else {
        return Err(HijackError::NoReturn(func, timeout));
    };
    if caller.is_some() && stop.thread() != caller {
        tracing::debug!(?caller, returned_on = ?stop.thread(), "hijacked call resumed on another vCPU");
    }
    let value = gdb.read_register("rax")?;

    // 4. Put back the task's registers that differ, then check them.
    restore(gdb, &saved)?;
    Ok(value)
}

/// Stops the guest at whichever of `candidates` (system-call handler entries) a vCPU reaches
/// first, and returns it: the safe point for the hijacked calls that follow, which then start
/// without waiting. A guest that seldom makes one system call (an idle server that never calls
/// read(2)) still makes another. The guest must be stopped; it is left stopped at the returned
/// address, with no breakpoint left behind. On timeout it is stopped wherever it was.
pub fn reach_safe_point<T: Transport>(
    gdb: &mut GdbClient<T>,
    candidates: &[Gva],
    timeout: Duration,
) -> Result<Gva, HijackError> {
    let first = *candidates.first().ok_or(HijackError::NoSafePoint)?;
    let rip = gdb.read_register("rip")?;
    if let Some(&at) = candidates.iter().find(|c| c.0 == rip) {
        return Ok(at);
    }
    let mut inserted = Vec::with_capacity(candidates.len());
    let reached = reach_any(gdb, candidates, &mut inserted, timeout)
        .map_err(|e| stopped_or(e, HijackError::SafePointNotReached(first, timeout)));
    // Leave no breakpoint behind, whatever happened.
    let mut removed = Ok(());
    for c in inserted {
        if let Err(e) = gdb.remove_breakpoint(Breakpoint::Software, c, 1) {
            removed = Err(e);
        }
    }
    let at = reached?;
    removed?;
    Ok(at)
}

fn reach_any<T: Transport>(
    gdb: &mut GdbClient<T>,
    candidates: &[Gva],
    inserted: &mut Vec<Gva>,
    timeout: Duration,
) -> Result<Gva, HijackError> {
    for &c in candidates {
        gdb.insert_breakpoint(Breakpoint::Software, c, 1)?;
        inserted.push(c);
    }
    gdb.cont()?;
    let stop = match gdb.wait_stop(timeout) {
        Ok(stop) => stop,
        Err(GdbError::Timeout(t)) => {
            gdb.interrupt()?;
            gdb.wait_stop(Duration::from_secs(5))?;
            return Err(HijackError::Gdb(GdbError::Timeout(t)));
        }
        Err(e) => return Err(e.into()),
    };
    if !matches!(stop, StopReply::Stopped { signal: 5, .. }) {
        return Err(HijackError::UnexpectedStop(stop));
    }
    if let Some(thread) = stop.thread() {
        gdb.set_thread(thread)?;
    }
    let rip = gdb.read_register("rip")?;
    candidates.iter().find(|c| c.0 == rip).copied().ok_or(HijackError::UnexpectedStop(stop))
}

/// Maps a timeout into `timeout_error`, keeping other failures.
fn stopped_or(e: HijackError, timeout_error: HijackError) -> HijackError {
    match e {
        HijackError::Gdb(GdbError::Timeout(_)) => timeout_error,
        other => other,
    }
}

/// Waits until a vCPU stops at `addr` (with rsp == `rsp` if given). Other hits of `addr` are
/// stepped over and the guest resumed. `Ok(None)`: deadline passed, the guest was interrupted
/// and is stopped.
fn wait_for<T: Transport>(
    gdb: &mut GdbClient<T>,
    addr: Gva,
    rsp: Option<u64>,
    deadline: Instant,
) -> Result<Option<StopReply>, HijackError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let stop = match gdb.wait_stop(left.max(Duration::from_millis(1))) {
            Ok(stop) => stop,
            Err(GdbError::Timeout(_)) => {
                // Stop the guest so the caller gets it back in a known state.
                gdb.interrupt()?;
                gdb.wait_stop(Duration::from_secs(5))?;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        if !matches!(stop, StopReply::Stopped { signal: 5, .. }) {
            return Err(HijackError::UnexpectedStop(stop));
        }
        // QEMU already points register requests at the vCPU that stopped; say so anyway.
        if let Some(thread) = stop.thread() {
            gdb.set_thread(thread)?;
        }
        if gdb.read_register("rip")? != addr.0 {
            return Err(HijackError::UnexpectedStop(stop));
        }
        if rsp.is_none_or(|want| gdb.read_register("rsp").ok() == Some(want)) {
            return Ok(Some(stop));
        }
        // Someone else's call: step over the breakpoint and go on.
        tracing::debug!("hijack: ignoring another hit of {addr}");
        gdb.remove_breakpoint(Breakpoint::Software, addr, 1)?;
        let stepped = gdb.step();
        gdb.insert_breakpoint(Breakpoint::Software, addr, 1)?;
        stepped?;
        gdb.cont()?;
    }
}

fn restore<T: Transport>(gdb: &mut GdbClient<T>, saved: &Registers) -> Result<(), HijackError> {
    let task = |name: &str| TASK_REGISTERS.contains(&name);
    let now = gdb.read_registers()?;
    for ((name, want), (_, have)) in saved.0.iter().zip(&now.0) {
        if task(name) && want != have {
            gdb.write_register(name, *want)?;
        }
    }
    let after = gdb.read_registers()?;
    for ((name, expected), (_, actual)) in saved.0.iter().zip(&after.0) {
        if task(name) && expected != actual {
            return Err(HijackError::NotRestored { name: name.clone(), expected: *expected, actual: *actual });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
