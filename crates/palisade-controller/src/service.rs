//! The controller's core: validates changes, commits them, and keeps the switch reconciled.
//!
//! A change is planned against the switch, committed to the switch as one bundle, and only
//! then committed to the store and acknowledged. A bundle the switch rejects leaves both the
//! switch and the store as they were. A crash between the two commits is repaired at start,
//! when the switch is reconciled to the stored (acknowledged) state.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::guests::{desired_guests, GuestRuntime, NoGuests};
use palisade_flows::{compile, diff, plan, AppliedRecord, Cookie, Installed, PortMap, Program};
use palisade_model::types::ValueError;
use palisade_model::validate::validate;
use palisade_model::{merge_file, FileError, Inventory, Kind, Object, ObjectKey};
use palisade_ovs::{OvsError, Switch};
use palisade_store::{Actor, AppliedOwner, Mutation, Store, StoreError};
use tracing::{debug, info, warn};

use crate::auth::Scope;
use crate::metrics::Metrics;

mod anomaly;
mod scans;
mod views;
mod vmi;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The file or change is invalid; each problem is located.
    #[error("the change is invalid ({} problem(s))", .0.len())]
    Invalid(Vec<FileError>),
    /// Other objects still refer to the object being deleted.
    #[error("{0} is still in use")]
    InUse(String, Vec<String>),
    /// The object does not exist (or belongs to another tenant).
    #[error("{0} not found")]
    NotFound(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The switch refused the bundle; nothing changed.
    #[error("the switch rejected the change; the previous rules stay in place")]
    Rejected(#[source] OvsError),
    /// The rules could not be compiled.
    #[error("the change cannot be compiled into flows")]
    Compile(#[source] palisade_flows::CompileError),
    /// The store failed.
    #[error("the store failed")]
    Store(#[source] StoreError),
    /// A stored object does not decode as a model object.
    #[error("stored object {key} is not a valid model object: {detail}")]
    Corrupt {
        /// The object.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// The switch could not be read or programmed.
    #[error("the switch is unavailable")]
    Switch(#[source] OvsError),
    /// A guest cannot answer yet (it is starting, stopped or failed).
    #[error("{0}")]
    GuestNotReady(String),
    /// Looking into a guest failed.
    #[error("{0}")]
    Introspection(String),
}

pub use palisade_api::objects::{ObjectChange, ObjectOp, ObjectView, Outcome, Reconciled};

struct State {
    inventory: Inventory,
    revision: u64,
    /// The controller's model of the switch: ports and what Palisade holds on it. Refreshed by
    /// every reconcile pass (a full read-back) and advanced by every committed change, so a
    /// change does not wait for a dump of the switch. Dropped on any switch error.
    view: Option<SwitchView>,
    /// Bumped by every change; lets a reconcile pass read the switch without holding the lock.
    epoch: u64,
}

#[derive(Debug, Clone)]
struct SwitchView {
    ports: PortMap,
    installed: Installed,
}

/// The controller.
#[derive(Debug)]
pub struct Controller {
    store: Arc<dyn Store>,
    switch: Arc<dyn Switch>,
    guests: Arc<dyn GuestRuntime>,
    detectors: Arc<dyn crate::anomaly::DetectorRuntime>,
    /// Type 2 scanning (issue #7); absent when this controller does not run the engine.
    scans: Option<Arc<palisade_scan::ScanService>>,
    /// Address ranges this controller uses itself (what for, range): no subdomain may overlap.
    reserved: Vec<(String, ipnet::Ipv4Net)>,
    state: Mutex<StateCell>,
    /// Metrics.
    pub metrics: Metrics,
}

struct StateCell(State);

impl std::fmt::Debug for StateCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "State(revision {})", self.0.revision)
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn to_store_key(k: &ObjectKey) -> palisade_store::ObjectKey {
    palisade_store::ObjectKey {
        kind: k.kind.as_str().to_owned(),
        tenant: k.tenant.as_ref().map(|t| t.to_string()),
        name: k.name.to_string(),
    }
}

/// True if `scope` may see the object.
pub(crate) fn visible(scope: &Scope, key: &ObjectKey, obj: &Object) -> bool {
    match scope {
        Scope::Admin => true,
        Scope::Tenant(t) => match obj {
            Object::Appliance(a) => &a.tenant == t,
            _ => key.owner() == Some(t),
        },
    }
}

impl Controller {
    /// Reserves `net` for the controller's own use (`what` names it in errors, e.g. the scan
    /// task address pool): applying a subdomain that overlaps it is refused.
    pub fn with_reserved(mut self, what: &str, net: ipnet::Ipv4Net) -> Self {
        self.reserved.push((what.to_owned(), net));
        self
    }

    /// The rules for `inv`: the compiled policies, and the drops that keep the reserved ranges
    /// (the scan task pool) to the scan engine's own flows.
    fn compile(&self, inv: &Inventory, ports: &PortMap) -> Result<Program, ServiceError> {
        let mut program = compile(inv, ports).map_err(ServiceError::Compile)?;
        let reserved: Vec<ipnet::Ipv4Net> = self.reserved.iter().map(|(_, net)| *net).collect();
        program.guard_reserved(&reserved).map_err(ServiceError::Compile)?;
        Ok(program)
    }

    /// Runs the desired state's guest VMs with `runtime` (by default none run).
    pub fn with_guests(mut self, runtime: Arc<dyn GuestRuntime>) -> Self {
        self.guests = runtime;
        self
    }

    /// Runs `anomaly` policies' detectors with `runtime` (by default nothing watches).
    pub fn with_detectors(mut self, runtime: Arc<dyn crate::anomaly::DetectorRuntime>) -> Self {
        self.detectors = runtime;
        self
    }

    /// Brings running detectors to the desired state.
    pub fn reconcile_detectors(&self) {
        let desired = crate::anomaly::desired(&self.lock().0.inventory);
        self.detectors.reconcile(&desired);
    }

    /// Brings running guests to the desired state (starts and stops in the background).
    pub fn reconcile_guests(&self) {
        let desired = desired_guests(&self.lock().0.inventory);
        self.guests.reconcile(&desired);
    }

    /// Loads the desired state from `store`. Nothing is sent to the switch until `reconcile`.
    pub fn open(store: Arc<dyn Store>, switch: Arc<dyn Switch>) -> Result<Self, ServiceError> {
        let mut inventory = Inventory::default();
        for obj in store.objects().map_err(ServiceError::Store)? {
            let corrupt = |detail: String| ServiceError::Corrupt { key: obj.key.to_string(), detail };
            let kind: Kind = obj.key.kind.parse().map_err(|e: ValueError| corrupt(e.0))?;
            let key = ObjectKey {
                kind,
                tenant: obj.key.tenant.as_deref().map(str::parse).transpose().map_err(|e: ValueError| corrupt(e.0))?,
                name: obj.key.name.parse().map_err(|e: ValueError| corrupt(e.0))?,
            };
            let body = Object::from_json(kind, obj.spec.clone()).map_err(|e| corrupt(e.to_string()))?;
            inventory.objects.insert(key, body);
        }
        let revision = store.revision().map_err(ServiceError::Store)?;
        info!(revision, objects = inventory.objects.len(), "desired state loaded");
        Ok(Self {
            store,
            switch,
            guests: Arc::new(NoGuests),
            detectors: Arc::new(crate::anomaly::NoDetectors),
            scans: None,
            reserved: Vec::new(),
            state: Mutex::new(StateCell(State { inventory, revision, view: None, epoch: 0 })),
            metrics: Metrics::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, StateCell> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ports of the switch; an unreachable switch is an empty map (everything pending).
    fn ports(&self) -> (PortMap, bool) {
        match self.switch.ports() {
            Ok(p) => (p, true),
            Err(e) => {
                warn!(error = %e, "switch unavailable; rules stay pending");
                (PortMap::new(), false)
            }
        }
    }

    /// Applies a policy file (upsert). `dry_run` reports without changing anything.
    pub fn apply(&self, scope: &Scope, file: &str, text: &str, dry_run: bool) -> Result<Outcome, ServiceError> {
        let mut cell = self.lock();
        let state = &mut cell.0;
        let merge = merge_file(file, text, &state.inventory).map_err(ServiceError::Invalid)?;
        if let Scope::Tenant(t) = scope {
            for (key, _) in &merge.upserts {
                if key.kind == Kind::Appliance {
                    return Err(ServiceError::Forbidden("appliances are managed by the operator".to_owned()));
                }
                if key.owner() != Some(t) {
                    let other = key.owner().map_or_else(String::new, |o| o.to_string());
                    return Err(ServiceError::NotFound(format!("tenant `{other}`")));
                }
            }
        }
        let mut objects = Vec::new();
        let mut mutations = Vec::new();
        for (key, obj) in &merge.upserts {
            let op = match state.inventory.objects.get(key) {
                None => ObjectOp::Create,
                Some(old) if old != obj => ObjectOp::Update,
                Some(_) => ObjectOp::Unchanged,
            };
            if op != ObjectOp::Unchanged {
                mutations.push(Mutation::Put { key: to_store_key(key), spec: obj.to_json() });
            }
            objects.push(ObjectChange { op, object: key.to_string() });
        }
        let mut problems: Vec<(&str, String)> =
            crate::monitors::oversized_plans(&merge.after).into_iter().map(|m| ("policies", m)).collect();
        let models: std::collections::BTreeSet<String> = merge
            .upserts
            .iter()
            .filter_map(|(key, obj)| match obj {
                Object::Policy(p) if key.kind == Kind::Policy => p.anomaly.as_ref().map(|a| a.model.to_string()),
                _ => None,
            })
            .collect();
        for model in models {
            if let Err(m) = self.detectors.check_model(&model) {
                problems.push(("policies", m));
            }
        }
        for (key, sub) in merge.after.subdomains() {
            for (what, net) in &self.reserved {
                if sub.cidr.contains(&net.network()) || net.contains(&sub.cidr.network()) {
                    problems.push((
                        "tenants",
                        format!(
                            "{key} ({}) overlaps {what} {net}, which this controller reserves for itself",
                            sub.cidr
                        ),
                    ));
                }
            }
        }
        if !problems.is_empty() {
            let errors = problems
                .into_iter()
                .map(|(field, message)| palisade_model::FileError {
                    file: file.to_owned(),
                    line: None,
                    field: field.to_owned(),
                    message,
                })
                .collect();
            return Err(ServiceError::Invalid(errors));
        }
        let summary = format!("apply {file}: {} object(s) changed", mutations.len());
        self.change(scope, state, merge.after, objects, mutations, &summary, dry_run)
    }

    /// Deletes one object; refused while others refer to it.
    pub fn delete(&self, scope: &Scope, key: &ObjectKey, dry_run: bool) -> Result<Outcome, ServiceError> {
        let mut cell = self.lock();
        let state = &mut cell.0;
        if !state.inventory.objects.get(key).is_some_and(|o| visible(scope, key, o)) {
            return Err(ServiceError::NotFound(key.to_string()));
        }
        if scope != &Scope::Admin && key.kind == Kind::Appliance {
            return Err(ServiceError::Forbidden("appliances are managed by the operator".to_owned()));
        }
        let mut after = state.inventory.clone();
        after.objects.remove(key);
        let problems = validate(&after);
        if !problems.is_empty() {
            return Err(ServiceError::InUse(
                key.to_string(),
                problems.into_iter().map(|p| format!("{} ({}): {}", p.key, p.field, p.message)).collect(),
            ));
        }
        let objects = vec![ObjectChange { op: ObjectOp::Delete, object: key.to_string() }];
        let mutations = vec![Mutation::Delete { key: to_store_key(key) }];
        self.change(scope, state, after, objects, mutations, &format!("delete {key}"), dry_run)
    }

    #[allow(clippy::too_many_arguments)]
    fn change(
        &self,
        scope: &Scope,
        state: &mut State,
        after: Inventory,
        objects: Vec<ObjectChange>,
        mutations: Vec<Mutation>,
        summary: &str,
        dry_run: bool,
    ) -> Result<Outcome, ServiceError> {
        let t_start = Instant::now();
        // Ports from the last view of the switch; read them afresh if that view is missing or
        // lacks a port the change needs (a VM attached since the last reconcile pass).
        let (mut ports, mut reachable) = match &state.view {
            Some(v) => (v.ports.clone(), true),
            None => self.ports(),
        };
        let mut after_prog = self.compile(&after, &ports)?;
        if state.view.is_some() && !after_prog.pending.is_empty() {
            (ports, reachable) = self.ports();
            after_prog = self.compile(&after, &ports)?;
        }
        let before_prog = self.compile(&state.inventory, &ports)?;
        let mut rules: Vec<palisade_api::RuleChange> =
            diff(&before_prog, &after_prog).into_iter().map(crate::wire::rule_change).collect();
        rules.retain(|r| sees_owner(scope, &r.owner));
        let mut pending = after_prog.pending.clone();
        // Without a runtime that enforces monitor policies (NoGuests), say so rather than let
        // an operator believe a guest is watched.
        let enforced_monitors = self.guests.enforces_monitors();
        pending.extend(
            after
                .policies()
                .filter(|(_, p)| p.monitor.is_some() && !enforced_monitors)
                .map(|(k, _)| format!("{k}: monitoring is not enforced yet (no monitor runtime)")),
        );
        let enforced_anomaly = self.detectors.enforces();
        pending.extend(
            after
                .policies()
                .filter(|(_, p)| p.anomaly.is_some() && !enforced_anomaly)
                .map(|(k, _)| format!("{k}: anomaly detection is not enforced yet (no detector runtime)")),
        );
        pending.retain(|p| sees_owner(scope, p));
        if dry_run || mutations.is_empty() {
            return Ok(Outcome { dry_run, revision: state.revision, objects, rules, pending, enforced: reachable });
        }
        let t_compiled = Instant::now();
        let mut applied_after = None;
        if reachable {
            let known = state.view.as_ref().map(|v| v.installed.clone());
            let mut result = self.program_switch(&after_prog, known.as_ref());
            if let (Some(known), Err(_)) = (&known, &result) {
                // If the model of the switch was stale (someone else touched the switch), plan
                // once more against a read-back; if it was current, the rejection stands.
                state.view = None;
                if self.switch.installed().ok().as_ref() != Some(known) {
                    result = self.program_switch(&after_prog, None);
                }
            }
            match result {
                Ok(records) => {
                    applied_after = Some(records);
                    state.view = Some(SwitchView { ports, installed: Installed::of(&after_prog) });
                }
                Err(ServiceError::Rejected(e)) => {
                    self.metrics.change_rejected();
                    warn!(error = %e, "switch rejected a change");
                    return Err(ServiceError::Rejected(e));
                }
                Err(e) => {
                    state.view = None;
                    warn!(error = %e, "switch unavailable; change stored, enforcement deferred");
                }
            }
        }
        let t_switched = Instant::now();
        let revision =
            self.store.commit(&Actor(scope.actor()), summary, &mutations, now_ms()).map_err(ServiceError::Store)?;
        state.inventory = after;
        state.revision = revision;
        state.epoch += 1;
        self.metrics.change_accepted();
        info!(revision, actor = %scope.actor(), summary, "change committed");
        let enforced = applied_after.is_some();
        if let Some(records) = applied_after {
            self.record(revision, &records)?;
        }
        debug!(
            compile_ms = ms(t_compiled - t_start),
            switch_ms = ms(t_switched - t_compiled),
            store_ms = ms(t_switched.elapsed()),
            "change timing"
        );
        Ok(Outcome { dry_run, revision, objects, rules, pending, enforced })
    }

    /// Plans against the switch (its read-back, or `known` when the caller's model is current)
    /// and commits one bundle; returns what is now applied.
    fn program_switch(&self, program: &Program, known: Option<&Installed>) -> Result<Vec<AppliedRecord>, ServiceError> {
        let started = Instant::now();
        let installed = match known {
            Some(i) => i.clone(),
            None => self.switch.installed().map_err(ServiceError::Switch)?,
        };
        let applied = self.applied_records()?;
        let plan = plan(program, &applied, &installed);
        if !plan.is_empty() {
            self.switch.commit(&plan.lines).map_err(|e| match e {
                OvsError::Failed { .. } => ServiceError::Rejected(e),
                other => ServiceError::Switch(other),
            })?;
        }
        self.metrics.reconciled(
            started.elapsed(),
            program.flow_count(),
            program.owners.len(),
            program.pending.len(),
            !plan.is_empty(),
        );
        Ok(plan.applied_after)
    }

    /// What the store says was last applied, as the planner wants it.
    fn applied_records(&self) -> Result<Vec<AppliedRecord>, ServiceError> {
        let (_, applied) = self.store.applied().map_err(ServiceError::Store)?;
        Ok(applied
            .into_iter()
            .map(|a| AppliedRecord {
                cookie: Cookie(a.cookie),
                digest: a.digest,
                flow_count: a.flow_count,
                groups: a.groups,
            })
            .collect())
    }

    fn record(&self, revision: u64, records: &[AppliedRecord]) -> Result<(), ServiceError> {
        let owners: Vec<AppliedOwner> = records
            .iter()
            .map(|r| AppliedOwner {
                cookie: r.cookie.0,
                digest: r.digest.clone(),
                flow_count: r.flow_count,
                groups: r.groups.clone(),
            })
            .collect();
        self.store.record_applied(revision, &owners).map_err(ServiceError::Store)
    }

    /// Brings the switch to the desired state: at start, periodically, and when ports come
    /// and go. Flows that are not Palisade's are never touched; nothing is flushed.
    pub fn reconcile(&self) -> Result<Reconciled, ServiceError> {
        // The read-back runs without the state lock so changes are not held up by it; if a
        // change lands meanwhile, read again (the third try reads while holding the lock).
        let mut tries = 0;
        loop {
            tries += 1;
            let epoch = self.lock().0.epoch;
            let read = self.read_switch();
            let mut cell = self.lock();
            if cell.0.epoch != epoch && tries < 3 {
                continue;
            }
            let read = if cell.0.epoch == epoch { read } else { self.read_switch() };
            let state = &mut cell.0;
            state.view = None;
            let (ports, installed) = read?;
            return self.reconcile_locked(state, ports, installed);
        }
    }

    /// Ports and Palisade's rules as the switch reports them.
    fn read_switch(&self) -> Result<(PortMap, Installed), ServiceError> {
        let read = self.switch.ports().and_then(|ports| Ok((ports, self.switch.installed()?)));
        read.map_err(|e| {
            self.metrics.reconcile_failed();
            ServiceError::Switch(e)
        })
    }

    fn reconcile_locked(
        &self,
        state: &mut State,
        ports: PortMap,
        installed: Installed,
    ) -> Result<Reconciled, ServiceError> {
        let program = self.compile(&state.inventory, &ports)?;
        let applied = self.applied_records()?;
        let p = plan(&program, &applied, &installed);
        let started = Instant::now();
        if !p.is_empty() {
            if let Err(e) = self.switch.commit(&p.lines) {
                // The read-back may be stale by now; the next pass reads it again.
                self.metrics.reconcile_failed();
                return Err(ServiceError::Switch(e));
            }
            info!(changed = p.changed.len(), removed = p.removed.len(), "switch reconciled");
            self.record(state.revision, &p.applied_after)?;
        }
        let installed = if p.is_empty() { installed } else { Installed::of(&program) };
        state.view = Some(SwitchView { ports, installed });
        self.metrics.reconciled(
            started.elapsed(),
            program.flow_count(),
            program.owners.len(),
            program.pending.len(),
            !p.is_empty(),
        );
        Ok(Reconciled {
            changed: p.changed.len(),
            removed: p.removed.len(),
            flows: program.flow_count(),
            pending: program.pending,
        })
    }
}

/// True if `scope` may see rules of the owner named (or a message starting with that name):
/// the admin sees all, a tenant only its own policies.
pub(crate) fn sees_owner(scope: &Scope, owner: &str) -> bool {
    match scope {
        Scope::Admin => true,
        Scope::Tenant(t) => {
            owner.strip_prefix("policy ").and_then(|r| r.strip_prefix(t.as_str())).is_some_and(|r| r.starts_with('/'))
        }
    }
}
