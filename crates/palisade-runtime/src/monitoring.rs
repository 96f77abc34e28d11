//! A guest's agentless monitor (issue #5): one thread per monitored guest injects the payload
//! (`palisade-monitor`), then polls mem-S through the RAM file and hands events on.
//!
//! ```text
//!  reconcile ─► plan, no monitor ─► thread: symbols (cached) ─► gdb connect ─► inject
//!                                     loop every POLL: commands (rules, stop) ─► set_policy
//!                                                      EventReader::poll ─► ring + sink
//!  rules changed ─► Command::Rules (live, no re-injection)
//!  syscalls changed ─► Command::Stop (unhook) ─► a new thread injects again
//!  plan gone ─► Command::Stop (unhook; the payload stays in mem-A, harmless)
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use palisade_controller::guests::{MonitorState, MonitorStatus};
use palisade_controller::monitors::{EventRing, EventSink, MonitorEvent, MonitorPlan};
use palisade_model::MonitorAction;
use palisade_monitor::hooks::HookMethod;
use palisade_monitor::{inject, Action, Event, EventReader, InjectOptions, Monitor, Rule, Syscall};
use palisade_vmi::gdb::GdbClient;
use palisade_vmi::kallsyms::KernelSymbols;
use palisade_vmi::RamFile;
use tracing::{info, warn};

use crate::qemu::lock;
use palisade_host::chain;

/// How often mem-S is polled (and commands are looked at).
pub const POLL: Duration = Duration::from_millis(15);
/// How long each hijacked call may wait for the safe point.
const HIJACK_TIMEOUT: Duration = Duration::from_secs(60);
/// The system-call handler hijacked calls run from: called often by any running guest.
const SAFE_POINT: &str = "__x64_sys_read";
/// Recent events kept per guest.
pub const RING_EVENTS: usize = 4096;

/// What a monitor thread is told.
#[derive(Debug)]
pub(crate) enum Command {
    /// Replace the rules live (same system calls).
    Rules(MonitorPlan),
    /// Unhook and let go.
    Stop,
}

/// A guest's monitor thread, as its slot keeps it.
#[derive(Debug)]
pub(crate) struct MonitorHandle {
    /// The plan it was last given.
    pub plan: MonitorPlan,
    tx: Sender<Command>,
    pub status: Arc<Mutex<MonitorStatus>>,
    pub since: Instant,
    thread: Option<JoinHandle<()>>,
}

impl MonitorHandle {
    /// Tells the thread to unhook and stop; returns the thread to wait for.
    pub fn stop(mut self) -> Option<JoinHandle<()>> {
        let _ = self.tx.send(Command::Stop);
        self.thread.take()
    }

    /// Gives the thread new rules.
    pub fn set_rules(&mut self, plan: &MonitorPlan) {
        self.plan = plan.clone();
        let _ = self.tx.send(Command::Rules(plan.clone()));
    }

    /// Whether it failed long enough ago to try again.
    pub fn failed_since(&self, after: Duration) -> bool {
        lock(&self.status).state == MonitorState::Failed && self.since.elapsed() >= after
    }
}

/// Everything a monitor thread needs from its guest.
pub(crate) struct Target {
    pub vm: String,
    pub gdb_path: PathBuf,
    pub ram: Box<dyn FnOnce() -> Result<RamFile, String> + Send>,
    pub symbols: Box<dyn FnOnce() -> Result<Arc<KernelSymbols>, String> + Send>,
    pub ring: Arc<Mutex<EventRing>>,
    pub sinks: Vec<Arc<dyn EventSink>>,
    /// A previous monitor of the same guest, to wait for (it unhooks first).
    pub previous: Option<JoinHandle<()>>,
}

/// The plan's rules in payload terms.
pub(crate) fn rules(plan: &MonitorPlan) -> Vec<Rule> {
    plan.rules
        .iter()
        .map(|r| Rule {
            id: r.id,
            nr: r.nr.map(u32::from),
            subject: r.subject.clone(),
            object: r.object.clone(),
            action: match r.action {
                MonitorAction::Pass => Action::Pass,
                MonitorAction::Record => Action::Record,
                MonitorAction::Block => Action::Block,
            },
        })
        .collect()
}

/// The plan's system calls, or the first one the payload cannot hook.
fn syscalls(plan: &MonitorPlan) -> Result<Vec<Syscall>, String> {
    plan.syscalls
        .iter()
        .map(|nr| {
            Syscall::by_nr(u32::from(*nr)).ok_or_else(|| {
                let name = palisade_model::monitor::syscall_name(*nr).unwrap_or("?");
                format!("system call {nr} ({name}) cannot be hooked by the monitor yet")
            })
        })
        .collect()
}

fn names(plan: &MonitorPlan) -> Vec<String> {
    plan.syscalls
        .iter()
        .map(|nr| palisade_model::monitor::syscall_name(*nr).map_or_else(|| nr.to_string(), str::to_owned))
        .collect()
}

/// Starts a monitor thread for `plan`.
pub(crate) fn spawn(target: Target, plan: &MonitorPlan) -> MonitorHandle {
    let status = Arc::new(Mutex::new(MonitorStatus {
        state: MonitorState::Injecting,
        detail: "waiting for the kernel's symbols".to_owned(),
        method: None,
        syscalls: names(plan),
        rules: plan.rules.len(),
        events: 0,
        lost: 0,
    }));
    let (tx, rx) = mpsc::channel();
    let (st, p) = (status.clone(), plan.clone());
    let thread = std::thread::spawn(move || run(target, p, st, rx));
    MonitorHandle { plan: plan.clone(), tx, status, since: Instant::now(), thread: Some(thread) }
}

fn fail(status: &Mutex<MonitorStatus>, vm: &str, detail: String) {
    warn!(vm, error = %detail, "monitor failed");
    let mut s = lock(status);
    s.state = MonitorState::Failed;
    s.detail = detail;
}

fn run(mut t: Target, plan: MonitorPlan, status: Arc<Mutex<MonitorStatus>>, rx: Receiver<Command>) {
    if let Some(prev) = t.previous.take() {
        let _ = prev.join();
    }
    let vm = t.vm.clone();
    let monitor = match start(&mut t, &plan, &status) {
        Ok(m) => m,
        Err(e) => return fail(&status, &vm, e),
    };
    watch(t, monitor, &plan, &status, &rx);
}

fn start(t: &mut Target, plan: &MonitorPlan, status: &Mutex<MonitorStatus>) -> Result<Monitor, String> {
    let syscalls = syscalls(plan)?;
    let symbols = std::mem::replace(&mut t.symbols, Box::new(|| Err("taken".into())))()?;
    let ram = std::mem::replace(&mut t.ram, Box::new(|| Err("taken".into())))()?;
    lock(status).detail = format!("injecting (hijacked calls wait for {SAFE_POINT})");
    let gdb =
        GdbClient::connect_unix(&t.gdb_path).map_err(|e| format!("cannot connect to the gdb stub: {}", chain(&e)))?;
    let opts = InjectOptions {
        safe_point: SAFE_POINT.to_owned(),
        timeout: HIJACK_TIMEOUT,
        syscalls,
        rules: rules(plan),
        method: None,
    };
    let monitor = inject(gdb, ram, &symbols, &opts).map_err(|e| format!("injection failed: {}", chain(&e)))?;
    let method = match monitor.method() {
        HookMethod::EntryCall => "fentry",
        HookMethod::TableRedirect => "table",
    };
    let (base, size) = monitor.allocation();
    info!(vm = %t.vm, method, base = format!("{base:#x}"), size, ms = monitor.timings().total.as_millis() as u64, "monitor injected");
    let mut s = lock(status);
    s.state = MonitorState::Active;
    s.method = Some(method.to_owned());
    s.detail = format!(
        "injected in {} ms; mem-A {size} bytes from {}",
        monitor.timings().total.as_millis(),
        monitor.allocator().alloc_fn()
    );
    Ok(monitor)
}

fn to_event(vm: &str, e: &Event, policies: &BTreeMap<u32, String>) -> MonitorEvent {
    let t = e.time.duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap_or_default();
    MonitorEvent {
        seq: 0,
        time: format!("{}.{:09}", t.as_secs(), t.subsec_nanos()),
        vm: vm.to_owned(),
        index: e.index,
        operation: e.syscall.map_or_else(|| e.nr.to_string(), str::to_owned),
        file_name: e.file_name.clone(),
        path: e.path.clone(),
        process: e.process.clone(),
        pid: e.pid,
        uid: e.uid,
        action: e.action.to_string(),
        rule: e.rule,
        policy: policies.get(&e.rule).cloned(),
    }
}

fn watch(t: Target, mut monitor: Monitor, plan: &MonitorPlan, status: &Mutex<MonitorStatus>, rx: &Receiver<Command>) {
    let vm = t.vm;
    let mut policies: BTreeMap<u32, String> = plan.rules.iter().map(|r| (r.id, r.policy.clone())).collect();
    let mut reader = match EventReader::new(monitor.mem_s()) {
        Ok(r) => r,
        Err(e) => return fail(status, &vm, format!("mem-S unreadable: {}", chain(&e))),
    };
    loop {
        match rx.recv_timeout(POLL) {
            Ok(Command::Rules(plan)) => match monitor.set_policy(&rules(&plan)) {
                Ok(()) => {
                    info!(vm, rules = plan.rules.len(), "monitor rules replaced live");
                    let mut s = lock(status);
                    s.rules = plan.rules.len();
                    s.state = MonitorState::Active;
                    policies = plan.rules.iter().map(|r| (r.id, r.policy.clone())).collect();
                }
                Err(e) => fail(status, &vm, format!("new rules refused, the old ones stay: {}", chain(&e))),
            },
            Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                match monitor.unhook().and_then(|()| monitor.detach()) {
                    Ok(()) => info!(vm, "monitor unhooked"),
                    Err(e) => warn!(vm, error = %chain(&e), "could not unhook the monitor (guest gone?)"),
                }
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        let batch = match reader.poll(monitor.mem_s()) {
            Ok(b) => b,
            Err(e) => return fail(status, &vm, format!("reading events failed: {}", chain(&e))),
        };
        if batch.lost > 0 {
            warn!(vm, lost = batch.lost, "the guest's event ring overflowed; events were dropped");
        }
        if batch.events.is_empty() && batch.lost == 0 {
            continue;
        }
        let numbered: Vec<MonitorEvent> = {
            let mut ring = lock(&t.ring);
            ring.lost += batch.lost;
            batch.events.iter().map(|e| ring.push(to_event(&vm, e, &policies))).collect()
        };
        {
            let mut s = lock(status);
            s.events += numbered.len() as u64;
            s.lost += batch.lost;
        }
        for sink in &t.sinks {
            sink.record(&numbered);
        }
    }
}
