//! Agentless monitoring as the controller sees it (issue #5): the merged monitor plan of each
//! guest, the events a runtime reports, and where events go besides the runtime's memory.
//!
//! ```text
//!  monitor policies ─► plans(inventory) ─► DesiredGuest.monitor ─► GuestRuntime (inject, rules)
//!  GuestRuntime ─► EventSink (events file, store) ; GuestRuntime::events(vm, after) ─► API
//! ```
//!
//! Merge rules, for every guest VM that monitor policies target:
//! - hooked system calls: the union of the policies' `syscalls`, sorted by number;
//! - rules: policies by priority (higher first, then by name), each policy's rules in file order,
//!   then its `default` as a catch-all rule when it is not `pass`. The first matching rule wins,
//!   so a `pass` rule shadows every later one.
//! - a rule applies to its own policy's system calls only: to any hooked call when the policy
//!   hooks all of them, else one payload rule per system call.

use std::collections::{BTreeMap, BTreeSet};

use palisade_model::document::Endpoint;
use palisade_model::{Inventory, MonitorAction, Name};
use serde::Serialize;

/// One rule of a merged plan, in payload terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanRule {
    /// Non-zero identifier, reported in events (1, 2, ... in plan order).
    pub id: u32,
    /// The policy it came from (`tenant/name`).
    pub policy: String,
    /// The system call number, or `None` for any hooked call.
    pub nr: Option<u16>,
    /// Process name, or any.
    pub subject: Option<String>,
    /// Path prefix, or any.
    pub object: Option<String>,
    /// What to do.
    pub action: MonitorAction,
}

/// What the monitor of one guest should hook and decide.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MonitorPlan {
    /// Hooked system calls by x86-64 number, sorted.
    pub syscalls: Vec<u16>,
    /// Rules, first match wins.
    pub rules: Vec<PlanRule>,
}

fn targets(inv: &Inventory, tenant: &Name, target: &Endpoint, vm: &Name) -> bool {
    let Some(v) = inv.vm(tenant, vm) else { return false };
    if let Some(name) = &target.vm {
        return name == vm;
    }
    if let Some(sub) = &target.subdomain {
        return &v.subdomain == sub;
    }
    if let Some(domain) = &target.domain {
        return inv.vm_domain(tenant, v) == Some(domain);
    }
    false
}

/// The merged monitor plan of every guest VM that some monitor policy targets, by `tenant/vm`.
pub fn plans(inv: &Inventory) -> BTreeMap<String, MonitorPlan> {
    let mut policies: Vec<_> =
        inv.policies().filter_map(|(k, p)| Some((k, p.priority, p.monitor.as_ref()?, k.tenant.as_ref()?))).collect();
    policies.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.name.cmp(&b.0.name)));
    let mut out = BTreeMap::new();
    for (key, vm) in inv.vms() {
        let (Some(tenant), Some(_)) = (&key.tenant, &vm.guest) else { continue };
        let mine: Vec<_> =
            policies.iter().filter(|(_, _, m, t)| *t == tenant && targets(inv, tenant, &m.target, &key.name)).collect();
        if mine.is_empty() {
            continue;
        }
        let nrs = |m: &palisade_model::MonitorSpec| -> BTreeSet<u16> {
            m.syscalls.iter().filter_map(|s| s.nr().ok()).collect()
        };
        let all: BTreeSet<u16> = mine.iter().flat_map(|(_, _, m, _)| nrs(m)).collect();
        let mut rules = Vec::new();
        for (pkey, _, m, _) in &mine {
            let own = nrs(m);
            let scopes: Vec<Option<u16>> = if own == all { vec![None] } else { own.iter().map(|n| Some(*n)).collect() };
            let default = (m.default != MonitorAction::Pass).then_some(palisade_model::MonitorRule {
                subject: None,
                object: None,
                action: m.default,
            });
            for r in m.rules.iter().chain(default.as_ref()) {
                for nr in &scopes {
                    rules.push(PlanRule {
                        id: rules.len() as u32 + 1,
                        policy: format!("{tenant}/{}", pkey.name),
                        nr: *nr,
                        subject: r.subject.clone(),
                        object: r.object.clone(),
                        action: r.action,
                    });
                }
            }
        }
        out.insert(format!("{tenant}/{}", key.name), MonitorPlan { syscalls: all.into_iter().collect(), rules });
    }
    out
}

/// Why each guest whose merged plan would not fit the in-guest policy table cannot have it
/// (empty when every plan fits): checked at apply, so nothing half-applied reaches a guest.
pub fn oversized_plans(inv: &Inventory) -> Vec<String> {
    plans(inv)
        .into_iter()
        .filter(|(_, plan)| plan.rules.len() > palisade_model::monitor::MAX_PLAN_RULES)
        .map(|(vm, plan)| {
            let policies: BTreeSet<&str> = plan.rules.iter().map(|r| r.policy.as_str()).collect();
            format!(
                "guest {vm} would get {} monitor rules from {} (at most {} fit its in-guest policy table; a rule \
                 of a policy that hooks fewer system calls than the guest's others counts once per system call)",
                plan.rules.len(),
                policies.into_iter().collect::<Vec<_>>().join(", "),
                palisade_model::monitor::MAX_PLAN_RULES
            )
        })
        .collect()
}

pub use palisade_api::events::{EventPage, MonitorEvent};

/// Where events go as they arrive, besides the runtime's recent-events ring.
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Takes new events of one guest, in order.
    fn record(&self, events: &[MonitorEvent]);
}

/// A bounded ring of recent events of one guest, numbered from 1.
#[derive(Debug)]
pub struct EventRing {
    capacity: usize,
    events: std::collections::VecDeque<MonitorEvent>,
    last_seq: u64,
    evicted: u64,
    /// Events the guest dropped (ring full in mem-S).
    pub lost: u64,
}

impl EventRing {
    /// An empty ring keeping the newest `capacity` events.
    pub fn new(capacity: usize) -> Self {
        EventRing { capacity: capacity.max(1), events: Default::default(), last_seq: 0, evicted: 0, lost: 0 }
    }

    /// Numbers `e` and keeps it (dropping the oldest if full); returns it numbered.
    pub fn push(&mut self, mut e: MonitorEvent) -> MonitorEvent {
        self.last_seq += 1;
        e.seq = self.last_seq;
        if self.events.len() == self.capacity {
            self.events.pop_front();
            self.evicted += 1;
        }
        self.events.push_back(e.clone());
        e
    }

    /// Up to `limit` events after `after`.
    pub fn page(&self, after: u64, limit: usize) -> EventPage {
        EventPage {
            events: self.events.iter().filter(|e| e.seq > after).take(limit).cloned().collect(),
            last_seq: self.last_seq,
            lost: self.lost,
            evicted: self.evicted,
        }
    }

    /// Events numbered so far.
    pub fn total(&self) -> u64 {
        self.last_seq
    }
}

/// Prometheus text for the guests' monitors: events received and events lost, per guest.
pub fn metrics(guests: &[crate::GuestStatus]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (name, help, lost) in [
        ("palisade_monitor_events_total", "Monitor events received from a guest since injection.", false),
        ("palisade_monitor_events_lost_total", "Monitor events a guest dropped because its ring was full.", true),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for g in guests {
            if let Some(m) = &g.monitor {
                let _ = writeln!(out, "{name}{{vm=\"{}\"}} {}", g.vm, if lost { m.lost } else { m.events });
            }
        }
    }
    out
}

/// Keeps events in the store, each under its VM's tenant (who alone reads it back).
#[derive(Debug)]
pub struct StoreEvents(pub std::sync::Arc<dyn palisade_store::Store>);

impl EventSink for StoreEvents {
    fn record(&self, events: &[MonitorEvent]) {
        let rows: Vec<palisade_store::StoredEvent> = events
            .iter()
            .filter_map(|e| {
                let (tenant, vm) = e.vm.split_once('/')?;
                let body = serde_json::to_value(e).ok()?;
                Some(palisade_store::StoredEvent { id: 0, tenant: tenant.to_owned(), vm: vm.to_owned(), body })
            })
            .collect();
        if let Err(e) = self.0.append_events(palisade_store::EventStream::Monitor, &rows) {
            tracing::error!(error = %e, lost = rows.len(), "cannot keep monitor events in the store");
        }
    }
}

/// The security event stream: one JSON object per line, appended to a file (never the logs).
#[derive(Debug)]
pub struct EventsFile {
    path: std::path::PathBuf,
    file: std::sync::Mutex<std::fs::File>,
}

impl EventsFile {
    /// Opens `path` for appending (creating it and its directory, mode 0600: events name
    /// tenants' files and processes).
    pub fn open(path: &std::path::Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        Ok(EventsFile { path: path.to_owned(), file: std::sync::Mutex::new(file) })
    }
}

impl EventsFile {
    /// Appends `text` (whole lines, each ending in a newline) in one write.
    fn append(&self, text: &str, count: usize) {
        use std::io::Write;
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(text.as_bytes()) {
            tracing::error!(file = %self.path.display(), error = %e, lost = count, "cannot append to the events file");
        }
    }

    /// Appends one line (`line` without its newline).
    pub fn append_line(&self, line: &str) {
        self.append(&format!("{line}\n"), 1);
    }
}

impl EventSink for EventsFile {
    fn record(&self, events: &[MonitorEvent]) {
        let mut text = String::new();
        for e in events {
            if let Ok(line) = serde_json::to_string(e) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        self.append(&text, events.len());
    }
}

#[cfg(test)]
mod tests;
