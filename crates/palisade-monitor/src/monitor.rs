//! The installed monitor: policy changes, counters and events through mem-S, unhooking and
//! letting go of the guest.

use std::os::unix::net::UnixStream;
use std::time::Duration;

use palisade_vmi::gdb::GdbClient;
use palisade_vmi::{Gva, RamFile};

use crate::channel::MemS;
use crate::hooks::{DispatchEvidence, HookMethod};
use crate::inject::{restore_one, Allocator, InjectTimings, MonitorError};
use crate::policy::{Rule, Syscall};

/// One installed hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledHook {
    /// The system call.
    pub syscall: Syscall,
    /// The patched address (fentry NOP or `sys_call_table` slot).
    pub addr: u64,
    /// The payload address the patch leads to (the hook table's key).
    pub entry: u64,
    /// The bytes that were there.
    pub original: Vec<u8>,
    /// What we wrote.
    pub patched: Vec<u8>,
}

/// An injected, hooked monitor in a running guest.
#[derive(Debug)]
pub struct Monitor {
    gdb: GdbClient<UnixStream>,
    mems: MemS<RamFile>,
    base: u64,
    size: u64,
    trampoline: u64,
    allocator: Allocator,
    method: HookMethod,
    evidence: DispatchEvidence,
    hooks: Vec<InstalledHook>,
    timings: InjectTimings,
    running: bool,
}

impl Monitor {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        gdb: GdbClient<UnixStream>,
        mems: MemS<RamFile>,
        (base, size): (u64, u64),
        trampoline: u64,
        allocator: Allocator,
        method: HookMethod,
        evidence: DispatchEvidence,
        hooks: Vec<InstalledHook>,
        timings: InjectTimings,
    ) -> Monitor {
        Monitor { gdb, mems, base, size, trampoline, allocator, method, evidence, hooks, timings, running: true }
    }

    fn stop(&mut self) -> Result<(), MonitorError> {
        if self.running {
            self.gdb.interrupt()?;
            self.gdb.wait_stop(Duration::from_secs(10))?;
            self.running = false;
        }
        Ok(())
    }

    /// The shared region (events, policy, counters).
    pub fn mem_s(&self) -> &MemS<RamFile> {
        &self.mems
    }

    /// Replaces the policy live (no VM exit, no re-injection).
    pub fn set_policy(&self, rules: &[Rule]) -> Result<(), MonitorError> {
        Ok(self.mems.write_policy(rules)?)
    }

    /// mem-A's address and size.
    pub fn allocation(&self) -> (u64, u64) {
        (self.base, self.size)
    }

    /// How mem-A was allocated.
    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    /// The trampoline's address.
    pub fn trampoline(&self) -> u64 {
        self.trampoline
    }

    /// The interception method in use.
    pub fn method(&self) -> HookMethod {
        self.method
    }

    /// What the kernel's code said about dispatch.
    pub fn evidence(&self) -> &DispatchEvidence {
        &self.evidence
    }

    /// The patched handlers.
    pub fn hooks(&self) -> &[InstalledHook] {
        &self.hooks
    }

    /// How long injection took.
    pub fn timings(&self) -> InjectTimings {
        self.timings
    }

    /// Restores every patched site's original bytes (guest stopped meanwhile), then resumes.
    /// The payload stays in mem-A: a task still inside it returns through it safely.
    pub fn unhook(&mut self) -> Result<(), MonitorError> {
        self.stop()?;
        while let Some(h) = self.hooks.pop() {
            if let Err(e) = restore_one(&mut self.gdb, &h) {
                self.hooks.push(h);
                return Err(e);
            }
        }
        self.gdb.cont()?;
        self.running = true;
        Ok(())
    }

    /// Reads guest kernel memory through the stub (guest stopped meanwhile, then resumed).
    pub fn read_kernel(&mut self, addr: u64, len: usize) -> Result<Vec<u8>, MonitorError> {
        self.stop()?;
        let bytes = self.gdb.read_memory(Gva(addr), len)?;
        self.gdb.cont()?;
        self.running = true;
        Ok(bytes)
    }

    /// Lets go of the gdb stub; the guest keeps running (hooks stay if not unhooked).
    pub fn detach(mut self) -> Result<(), MonitorError> {
        self.stop()?;
        Ok(self.gdb.detach()?)
    }
}
