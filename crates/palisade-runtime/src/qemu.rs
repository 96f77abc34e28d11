//! [`QemuGuests`]: guest VMs as QEMU processes on this host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use palisade_controller::guests::{DesiredGuest, GuestRuntimeError, SymbolEntry};
use palisade_controller::monitors::{EventPage, EventRing, EventSink};
use palisade_controller::{GuestRuntime, GuestState, GuestStatus, SymbolTable};
use palisade_guest::initramfs::{NET_UP_MARKER, READY_MARKER};
use palisade_guest::{Accel, AccelPolicy, Guest, GuestConfig, NicConfig};
use palisade_host::chain;
use palisade_ovs::{PortNaming, Vsctl};
use palisade_vmi::kallsyms::{self, AddressLayout, KernelSymbols};
use palisade_vmi::{Gpa, RamFile, RamLayout, RamRegion};
use tracing::{info, warn};

use crate::images::Images;
use crate::monitoring::{self, MonitorHandle, Target};
use crate::orphans::Owner;

/// Where guest RAM files live: a directory on tmpfs that only root can enter, because QEMU
/// creates RAM files readable by everyone (mode 0644) and guest RAM holds tenants' secrets.
pub const DEFAULT_RAM_DIR: &str = "/dev/shm/palisade";

/// Where and how guests run.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The OVS bridge guests' taps join.
    pub bridge: String,
    /// Kernel and initramfs cache.
    pub cache_dir: PathBuf,
    /// Directory of the RAM files (a tmpfs).
    pub ram_dir: PathBuf,
    /// KVM, TCG, or whichever works.
    pub accel: AccelPolicy,
    /// How long a boot may take to reach the guest's init.
    pub boot_timeout: Duration,
    /// After a failed start, how long before trying again.
    pub retry_after: Duration,
    /// The controller's state directory: its instance id and the record of the QEMU
    /// processes it started (see [`Owner`]).
    pub state_dir: PathBuf,
    /// How the guests' ports (their taps) are named on this host.
    pub naming: PortNaming,
}

impl RuntimeConfig {
    /// Defaults for `bridge` and the controller state directory `state_dir`: cache in
    /// /var/cache/palisade/guest, RAM in /dev/shm, KVM if it works, two minutes to boot, a retry
    /// a minute after a failure, taps named as the inventory names the ports.
    pub fn new(bridge: &str, state_dir: &Path) -> Self {
        RuntimeConfig {
            bridge: bridge.to_owned(),
            cache_dir: PathBuf::from(palisade_guest::DEFAULT_CACHE_DIR),
            ram_dir: PathBuf::from(DEFAULT_RAM_DIR),
            accel: AccelPolicy::Auto,
            boot_timeout: Duration::from_secs(120),
            retry_after: Duration::from_secs(60),
            state_dir: state_dir.to_path_buf(),
            naming: PortNaming::default(),
        }
    }

    /// The prefix of every guest name (and so RAM file) of this runtime: `<bridge>-`.
    pub fn name_prefix(&self) -> String {
        format!("{}-", self.bridge)
    }
}

#[derive(Debug)]
struct Slot {
    desired: DesiredGuest,
    /// The guest's tap: its port under this host's naming.
    tap: String,
    state: GuestState,
    detail: String,
    since: Instant,
    generation: u64,
    guest: Option<Guest>,
    accel: Option<String>,
    symbols: Option<Arc<SymbolTable>>,
    kernel: Option<Arc<KernelSymbols>>,
    events: Arc<Mutex<EventRing>>,
    monitor: Option<MonitorHandle>,
}

#[derive(Debug, Default)]
struct Inner {
    slots: Mutex<BTreeMap<String, Slot>>,
    images: Mutex<Option<Images>>,
    generation: Mutex<u64>,
}

/// The real guest runtime. Cheap to clone handles share one set of guests.
#[derive(Debug, Clone)]
pub struct QemuGuests {
    config: RuntimeConfig,
    owner: Owner,
    inner: Arc<Inner>,
    sinks: Vec<Arc<dyn EventSink>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates `dir` (and parents) and makes it accessible to its owner only.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

impl QemuGuests {
    /// A runtime with no guests yet. Reaps the guests a crashed predecessor with the same state
    /// directory left behind, since they cannot be adopted; nobody else's.
    pub fn new(config: RuntimeConfig) -> std::io::Result<Self> {
        if let Err(e) = private_dir(&config.ram_dir) {
            warn!(dir = %config.ram_dir.display(), error = %e, "cannot make the guest RAM directory private");
        }
        let owner = Owner::open(&config.state_dir)?;
        let reaped = owner.reap(&config.ram_dir);
        if !reaped.processes.is_empty() || !reaped.files.is_empty() {
            warn!(processes = ?reaped.processes, files = reaped.files.len(), "reaped guests of an earlier controller");
        }
        Ok(QemuGuests { config, owner, inner: Arc::new(Inner::default()), sinks: Vec::new() })
    }

    /// Sends every monitor event to `sink` too (the events file, the store), as it arrives.
    pub fn with_event_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    fn guest_name(&self, g: &DesiredGuest) -> String {
        format!("{}{}-{}", self.config.name_prefix(), g.tenant, g.name)
    }

    fn next_generation(&self) -> u64 {
        let mut g = lock(&self.inner.generation);
        *g += 1;
        *g
    }

    /// Stops every guest and removes its port (the controller is shutting down).
    pub fn shutdown(&self) {
        let slots = std::mem::take(&mut *lock(&self.inner.slots));
        for (id, mut slot) in slots {
            self.stop_slot(&id, &mut slot);
        }
    }

    fn stop_slot(&self, id: &str, slot: &mut Slot) {
        if let Some(m) = slot.monitor.take() {
            drop(m.stop()); // its unhook fails once QEMU is gone; nothing to wait for
        }
        if let Some(mut guest) = slot.guest.take() {
            if let Err(e) = guest.stop() {
                warn!(vm = id, error = %chain(&e), "could not stop guest cleanly");
            }
            self.owner.forget(guest.name());
            info!(vm = id, "guest stopped");
        }
        if let Err(e) = Vsctl::system().del_port(&self.config.bridge, &slot.tap) {
            warn!(vm = id, error = %chain(&e), "could not remove the guest's port");
        }
    }

    /// Boots one guest: images, QEMU, tap on the bridge, wait for its init.
    fn boot(&self, g: &DesiredGuest) -> Result<(Guest, String), String> {
        let started = Instant::now();
        let images = {
            let mut cached = lock(&self.inner.images);
            match &*cached {
                Some(i) => i.clone(),
                None => {
                    info!(cache = %self.config.cache_dir.display(), "preparing guest images (first boot)");
                    let i = Images::prepare(&self.config.cache_dir).map_err(|e| chain(&e))?;
                    *cached = Some(i.clone());
                    i
                }
            }
        };
        let mut config = GuestConfig::new(self.guest_name(g), &images.kernel, &images.initramfs);
        config.memory_mib = u64::from(g.spec.memory_mb);
        config.vcpus = u32::from(g.spec.vcpus);
        config.accel = self.config.accel;
        config.ram_dir = self.config.ram_dir.clone();
        config.owner = Some(self.owner.id().to_owned());
        let net = ipnet::Ipv4Net::new(g.ip, g.prefix_len).map_err(|e| format!("address {}: {e}", g.ip))?;
        let tap = self.config.naming.interface(g.port.as_str()).map_err(|e| e.to_string())?;
        config.nic = Some(NicConfig { tap: tap.clone(), mac: g.mac.to_string(), ip: Some(net) });
        self.owner.record(&config.name, None).map_err(|e| format!("cannot record guest {}: {e}", config.name))?;
        let mut guest = Guest::start(&config).map_err(|e| chain(&e))?;
        if let Err(e) = self.owner.record(guest.name(), Some(guest.pid())) {
            warn!(guest = guest.name(), error = %e, "cannot record the guest's QEMU pid");
        }
        palisade_host::run(&["ip", "link", "set", &tap, "up"]).map_err(|e| chain(&e))?;
        Vsctl::system().add_access_port(&self.config.bridge, &tap, g.vlan).map_err(|e| chain(&e))?;
        guest.wait_for_console(READY_MARKER, self.config.boot_timeout).map_err(|e| chain(&e))?;
        // Running means reachable: wait until the guest's init has configured its NIC.
        guest.wait_for_console(NET_UP_MARKER, self.config.boot_timeout).map_err(|e| chain(&e))?;
        let accel = guest.accel().clone();
        let detail = format!(
            "{} ({}); kernel {}; ready {:.1} s after start",
            if accel.accel == Accel::Kvm { "KVM" } else { "TCG" },
            accel.reason,
            images.release,
            started.elapsed().as_secs_f64()
        );
        Ok((guest, detail))
    }

    fn spawn_boot(&self, id: String, desired: DesiredGuest, generation: u64) {
        let this = self.clone();
        std::thread::spawn(move || {
            let result = this.boot(&desired);
            let mut slots = lock(&this.inner.slots);
            match slots.get_mut(&id) {
                Some(slot) if slot.generation == generation => match result {
                    Ok((guest, detail)) => {
                        info!(vm = %id, pid = guest.pid(), %detail, "guest running");
                        slot.accel = Some(if guest.accel().accel == Accel::Kvm { "kvm" } else { "tcg" }.to_owned());
                        slot.guest = Some(guest);
                        slot.state = GuestState::Running;
                        slot.detail = detail;
                        slot.since = Instant::now();
                    }
                    Err(e) => {
                        warn!(vm = %id, error = %e, "guest failed to start");
                        slot.state = GuestState::Failed;
                        slot.detail = e;
                        slot.since = Instant::now();
                        let mut failed = Slot { guest: None, ..slot.clone_meta() };
                        drop(slots);
                        this.stop_slot(&id, &mut failed);
                    }
                },
                _ => {
                    // Removed or replaced while booting: this boot is not wanted any more.
                    drop(slots);
                    if let Ok((mut guest, _)) = result {
                        let _ = guest.stop();
                        this.owner.forget(guest.name());
                    }
                }
            }
        });
    }

    /// Marks guests whose QEMU exited as stopped.
    fn refresh(&self) {
        let mut exited = Vec::new();
        {
            let mut slots = lock(&self.inner.slots);
            for (id, slot) in slots.iter_mut() {
                let Some(guest) = slot.guest.as_mut() else { continue };
                if let Ok(status) = guest.wait_exit(Duration::ZERO) {
                    slot.state = GuestState::Stopped;
                    slot.detail = format!("QEMU exited ({status:?}); the guest powered off or crashed");
                    slot.since = Instant::now();
                    slot.symbols = None;
                    slot.kernel = None;
                    if let Some(m) = slot.monitor.take() {
                        drop(m.stop());
                    }
                    exited.push((id.clone(), slot.guest.take()));
                }
            }
        }
        for (id, guest) in exited {
            warn!(vm = %id, "guest stopped by itself");
            if let Some(mut g) = guest {
                let _ = g.stop();
                self.owner.forget(g.name());
            }
        }
    }
}

impl Slot {
    fn clone_meta(&self) -> Slot {
        Slot {
            desired: self.desired.clone(),
            state: self.state,
            detail: self.detail.clone(),
            since: self.since,
            generation: self.generation,
            tap: self.tap.clone(),
            guest: None,
            accel: self.accel.clone(),
            symbols: None,
            kernel: None,
            events: self.events.clone(),
            monitor: None,
        }
    }
}

impl GuestRuntime for QemuGuests {
    fn reconcile(&self, desired: &[DesiredGuest]) {
        self.refresh();
        let wanted: BTreeMap<String, &DesiredGuest> = desired.iter().map(|g| (g.id(), g)).collect();
        let mut to_stop = Vec::new();
        let mut to_boot = Vec::new();
        {
            let mut slots = lock(&self.inner.slots);
            let gone: Vec<String> = slots
                .iter()
                .filter(|(id, s)| !wanted.get(*id).is_some_and(|w| w.same_machine(&s.desired)))
                .map(|(id, _)| id.clone())
                .collect();
            for id in gone {
                if let Some(slot) = slots.remove(&id) {
                    to_stop.push((id, slot));
                }
            }
            for (id, g) in &wanted {
                let retry = slots
                    .get(id)
                    .is_some_and(|s| s.state == GuestState::Failed && s.since.elapsed() >= self.config.retry_after);
                if let (Some(slot), false) = (slots.get_mut(id), retry) {
                    slot.desired.monitor = g.monitor.clone(); // a plan change never reboots
                    continue;
                }
                let generation = self.next_generation();
                slots.insert(
                    id.clone(),
                    Slot {
                        desired: (*g).clone(),
                        // A name too long fails the boot, which says so.
                        tap: self.config.naming.interface(g.port.as_str()).unwrap_or_else(|_| g.port.to_string()),
                        state: GuestState::Starting,
                        detail: "preparing images and booting".to_owned(),
                        since: Instant::now(),
                        generation,
                        guest: None,
                        accel: None,
                        symbols: None,
                        kernel: None,
                        events: Arc::new(Mutex::new(EventRing::new(monitoring::RING_EVENTS))),
                        monitor: None,
                    },
                );
                to_boot.push((id.clone(), (*g).clone(), generation));
            }
        }
        // Stop before booting, so a guest whose spec changed frees its RAM file and tap first.
        for (id, mut slot) in to_stop {
            self.stop_slot(&id, &mut slot);
        }
        for (id, g, generation) in to_boot {
            info!(vm = %id, memory_mb = g.spec.memory_mb, vcpus = g.spec.vcpus, "starting guest");
            self.spawn_boot(id, g, generation);
        }
        self.reconcile_monitors();
    }

    fn status(&self) -> Vec<GuestStatus> {
        self.refresh();
        lock(&self.inner.slots)
            .iter()
            .map(|(id, s)| GuestStatus {
                vm: id.clone(),
                state: s.state,
                detail: s.detail.clone(),
                accel: s.accel.clone(),
                pid: s.guest.as_ref().map(Guest::pid),
                memory_mb: s.desired.spec.memory_mb,
                vcpus: s.desired.spec.vcpus,
                port: s.desired.port.to_string(),
                monitor: s.monitor.as_ref().map(|m| lock(&m.status).clone()),
            })
            .collect()
    }

    fn enforces_monitors(&self) -> bool {
        true
    }

    fn events(&self, vm: &str, after: u64, limit: usize) -> Result<EventPage, GuestRuntimeError> {
        let slots = lock(&self.inner.slots);
        let slot = slots.get(vm).ok_or_else(|| GuestRuntimeError::NotFound(vm.to_owned()))?;
        let page = lock(&slot.events).page(after, limit);
        Ok(page)
    }

    fn symbols(&self, vm: &str) -> Result<Arc<SymbolTable>, GuestRuntimeError> {
        self.refresh();
        self.recover(vm).map(|(t, _)| t)
    }
}

impl QemuGuests {
    /// The guest's symbol table in both forms, recovered once per boot.
    fn recover(&self, vm: &str) -> Result<(Arc<SymbolTable>, Arc<KernelSymbols>), GuestRuntimeError> {
        let (path, regions, generation) = {
            let slots = lock(&self.inner.slots);
            let slot = slots.get(vm).ok_or_else(|| GuestRuntimeError::NotFound(vm.to_owned()))?;
            if let (Some(t), Some(k)) = (&slot.symbols, &slot.kernel) {
                return Ok((t.clone(), k.clone()));
            }
            let guest = match (&slot.guest, slot.state) {
                (Some(g), GuestState::Running) => g,
                _ => {
                    return Err(GuestRuntimeError::NotRunning {
                        vm: vm.to_owned(),
                        state: slot.state,
                        detail: slot.detail.clone(),
                    })
                }
            };
            (guest.ram_path().to_path_buf(), guest.ram_layout(), slot.generation)
        };
        let failed = |message: String| GuestRuntimeError::Introspection { vm: vm.to_owned(), message };
        let ram = open_ram(&path, &regions).map_err(failed)?;
        let started = Instant::now();
        let recovered = Arc::new(kallsyms::recover(&ram).map_err(|e| failed(chain(&e)))?);
        let table = Arc::new(to_table(&recovered, started.elapsed()));
        info!(vm, symbols = table.symbols.len(), ms = table.recovery_ms, "kernel symbols recovered from memory");
        let mut slots = lock(&self.inner.slots);
        if let Some(slot) = slots.get_mut(vm).filter(|s| s.generation == generation) {
            slot.symbols = Some(table.clone());
            slot.kernel = Some(recovered.clone());
        }
        Ok((table, recovered))
    }

    /// Starts, updates or stops each running guest's monitor to match its plan.
    fn reconcile_monitors(&self) {
        let mut slots = lock(&self.inner.slots);
        for (id, slot) in slots.iter_mut() {
            let plan = slot.desired.monitor.clone().filter(|_| slot.state == GuestState::Running);
            let Some(plan) = plan else {
                if let Some(m) = slot.monitor.take() {
                    info!(vm = %id, "monitor plan gone: unhooking");
                    drop(m.stop());
                }
                continue;
            };
            let previous = match slot.monitor.take() {
                Some(mut m) if m.plan.syscalls == plan.syscalls && !m.failed_since(self.config.retry_after) => {
                    if m.plan != plan {
                        m.set_rules(&plan);
                    }
                    slot.monitor = Some(m);
                    continue;
                }
                Some(m) => m.stop(),
                None => None,
            };
            let Some(guest) = &slot.guest else { continue };
            info!(vm = %id, syscalls = ?plan.syscalls, rules = plan.rules.len(), "injecting the monitor");
            let (path, regions) = (guest.ram_path().to_path_buf(), guest.ram_layout());
            let (this, vm) = (self.clone(), id.clone());
            let target = Target {
                vm: id.clone(),
                gdb_path: guest.gdb_path().to_path_buf(),
                ram: Box::new(move || open_ram(&path, &regions)),
                symbols: Box::new(move || this.recover(&vm).map(|(_, k)| k).map_err(|e| e.to_string())),
                ring: slot.events.clone(),
                sinks: self.sinks.clone(),
                previous,
            };
            slot.monitor = Some(monitoring::spawn(target, &plan));
        }
    }
}

fn open_ram(path: &std::path::Path, regions: &[palisade_guest::RamRegion]) -> Result<RamFile, String> {
    let layout = RamLayout::new(
        regions.iter().map(|r| RamRegion { start: Gpa(r.gpa), len: r.len, file_offset: r.file_offset }).collect(),
    )
    .map_err(|e| chain(&e))?;
    RamFile::open(path, layout).map_err(|e| chain(&e))
}

fn to_table(k: &KernelSymbols, took: Duration) -> SymbolTable {
    let l = k.layout();
    let addresses = match l.addresses {
        AddressLayout::Relative { relative_base, absolute_percpu } => format!(
            "relative (kallsyms_offsets + relative_base {relative_base:#x}{})",
            if absolute_percpu { ", absolute per-cpu" } else { "" }
        ),
        AddressLayout::Absolute => "absolute (kallsyms_addresses)".to_owned(),
    };
    SymbolTable {
        virt_base: k.virt_base().0,
        phys_base: k.phys_base().0,
        kaslr_slide: k.kaslr_slide(),
        layout: format!(
            "{addresses}; names at {}; {}-byte markers; {}",
            l.names,
            l.marker_width,
            if l.seqs_of_names.is_some() { "with kallsyms_seqs_of_names" } else { "no kallsyms_seqs_of_names" }
        ),
        recovery_ms: took.as_millis() as u64,
        symbols: k
            .symbols()
            .iter()
            .map(|s| SymbolEntry { address: s.addr.0, kind: s.kind, name: s.name.clone() })
            .collect(),
    }
}
