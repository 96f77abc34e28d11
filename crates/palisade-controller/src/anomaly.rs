//! Network anomaly detection as the controller sees it (issue #6): which VMs `anomaly`
//! policies attach LSTM-NAD to, the detectors that run for them, and where alerts go.
//!
//! ```text
//!  anomaly policies ─► desired(inventory) ─► DetectorRuntime::reconcile (one watcher per VM)
//!  watcher (VM's switch port, model from --models) ─► Alert ─► AlertSink (events file, store)
//!  store ─► Controller::alerts (tenant-scoped) ─► GET /v1/alerts ─► `palisade nad alerts`
//! ```
//!
//! Where several `anomaly` policies target one VM, the one with the highest priority (then the
//! first by name) decides its model and threshold.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use palisade_detect::watch::{Watch, WatchSpec};
use palisade_model::validate::resolve_endpoint;
use palisade_model::Inventory;
use palisade_ovs::PortNaming;

/// One VM that should be watched.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredDetector {
    /// `tenant/name`.
    pub vm: String,
    /// The policy that decides it (`tenant/name`).
    pub policy: String,
    /// Its switch port (where its traffic is captured).
    pub port: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The model's name in the model directory.
    pub model: String,
    /// The policy's threshold, if it sets one.
    pub threshold: Option<f64>,
}

/// The detectors the desired state asks for, one per VM, sorted by VM.
pub fn desired(inv: &Inventory) -> Vec<DesiredDetector> {
    let mut policies: Vec<_> =
        inv.policies().filter_map(|(k, p)| Some((k, p.priority, p.anomaly.as_ref()?, k.tenant.as_ref()?))).collect();
    policies.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.name.cmp(&b.0.name)));
    let mut out: BTreeMap<String, DesiredDetector> = BTreeMap::new();
    for (key, _, spec, tenant) in policies {
        let Ok(sel) = resolve_endpoint(inv, tenant, &spec.target) else { continue };
        for (name, vm) in sel.vms {
            let Some(port) = &vm.port else { continue };
            let id = format!("{tenant}/{name}");
            out.entry(id.clone()).or_insert_with(|| DesiredDetector {
                vm: id,
                policy: format!("{tenant}/{}", key.name),
                port: port.to_string(),
                ip: vm.ip,
                model: spec.model.to_string(),
                threshold: spec.threshold,
            });
        }
    }
    out.into_values().collect()
}

pub use palisade_api::alerts::{AlertRecord, DetectorStatus, Deviation};

/// Where alerts go as they are raised.
pub trait AlertSink: Send + Sync + std::fmt::Debug {
    /// Takes one alert.
    fn alert(&self, alert: &AlertRecord);
}

/// Runs the detectors.
pub trait DetectorRuntime: Send + Sync + std::fmt::Debug {
    /// Brings the running detectors to `desired` (starts, stops and restarts changed ones).
    fn reconcile(&self, desired: &[DesiredDetector]);
    /// Every detector.
    fn status(&self) -> Vec<DetectorStatus>;
    /// Why `model` cannot be used, if it cannot (checked when a policy naming it is applied).
    fn check_model(&self, model: &str) -> Result<(), String>;
    /// False when nothing enforces `anomaly` policies (they are accepted but reported pending).
    fn enforces(&self) -> bool {
        true
    }
}

/// No detector runtime: `anomaly` policies are stored but nothing watches.
#[derive(Debug, Default)]
pub struct NoDetectors;

impl DetectorRuntime for NoDetectors {
    fn reconcile(&self, _desired: &[DesiredDetector]) {}
    fn status(&self) -> Vec<DetectorStatus> {
        Vec::new()
    }
    fn check_model(&self, _model: &str) -> Result<(), String> {
        Ok(())
    }
    fn enforces(&self) -> bool {
        false
    }
}

/// Detectors on this host: one capture-and-score thread per VM, models from one directory.
#[derive(Debug)]
pub struct LiveDetectors {
    models: PathBuf,
    naming: PortNaming,
    sinks: Vec<Arc<dyn AlertSink>>,
    running: Mutex<BTreeMap<String, (DesiredDetector, Watch)>>,
}

impl LiveDetectors {
    /// Detectors whose models are subdirectories of `models`, alerts to `sinks`.
    pub fn new(models: PathBuf, sinks: Vec<Arc<dyn AlertSink>>) -> Self {
        LiveDetectors { models, naming: PortNaming::default(), sinks, running: Mutex::new(BTreeMap::new()) }
    }

    /// The same detectors, capturing on the VMs' ports as `naming` names them on this host.
    pub fn with_naming(mut self, naming: PortNaming) -> Self {
        self.naming = naming;
        self
    }

    fn spec(&self, d: &DesiredDetector) -> Result<WatchSpec, palisade_ovs::NamingError> {
        Ok(WatchSpec {
            iface: self.naming.interface(&d.port)?,
            ip: d.ip.into(),
            model_dir: self.models.join(&d.model),
            threshold: d.threshold,
        })
    }

    /// Stops every detector (at controller shutdown).
    pub fn shutdown(&self) {
        let all = std::mem::take(&mut *self.running.lock().unwrap_or_else(|e| e.into_inner()));
        all.values().for_each(|(_, w)| w.signal_stop());
        drop(all);
    }
}

impl DetectorRuntime for LiveDetectors {
    fn reconcile(&self, desired: &[DesiredDetector]) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let stale: Vec<String> = running
            .iter()
            .filter(|(vm, (d, _))| !desired.iter().any(|n| &n.vm == *vm && n == d))
            .map(|(vm, _)| vm.clone())
            .collect();
        let stopped: Vec<_> = stale.iter().filter_map(|vm| running.remove(vm)).collect();
        stopped.iter().for_each(|(_, w)| w.signal_stop());
        for (d, _) in &stopped {
            tracing::info!(vm = %d.vm, policy = %d.policy, "anomaly detector stopped");
        }
        for d in desired {
            if running.contains_key(&d.vm) {
                continue;
            }
            let (sinks, det) = (self.sinks.clone(), d.clone());
            let on_alert = Arc::new(move |a: &palisade_detect::detect::Alert| {
                let record = record(&det, a);
                sinks.iter().for_each(|s| s.alert(&record));
            });
            let spec = match self.spec(d) {
                Ok(spec) => spec,
                Err(e) => {
                    tracing::error!(vm = %d.vm, error = %e, "cannot watch the VM's port");
                    continue;
                }
            };
            match Watch::start(spec, on_alert) {
                Ok(w) => {
                    tracing::info!(vm = %d.vm, policy = %d.policy, model = %d.model, port = %d.port, "anomaly detector started");
                    running.insert(d.vm.clone(), (d.clone(), w));
                }
                Err(e) => tracing::error!(vm = %d.vm, error = %e, "cannot start an anomaly detector thread"),
            }
        }
        drop(running);
        drop(stopped); // joins the stopped threads outside the lock
    }

    fn status(&self) -> Vec<DetectorStatus> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .values()
            .map(|(d, w)| DetectorStatus {
                vm: d.vm.clone(),
                policy: d.policy.clone(),
                model: d.model.clone(),
                port: d.port.clone(),
                state: w.state(),
            })
            .collect()
    }

    fn check_model(&self, model: &str) -> Result<(), String> {
        palisade_detect::watch::load_model(&self.models.join(model), None).map(|_| ()).map_err(|e| {
            format!(
                "model `{model}` is not usable from the controller's model directory {}: {e}",
                self.models.display()
            )
        })
    }
}

fn record(d: &DesiredDetector, a: &palisade_detect::detect::Alert) -> AlertRecord {
    AlertRecord {
        kind: "anomaly".to_owned(),
        id: 0,
        vm: d.vm.clone(),
        policy: d.policy.clone(),
        model: d.model.clone(),
        window_start: a.window_start.clone(),
        window: a.window.clone(),
        score: f64::from(a.score),
        threshold: a.threshold,
        top_features: a
            .top_features
            .iter()
            .map(|t| Deviation { feature: t.feature.to_owned(), value: t.value, z: f64::from(t.z) })
            .collect(),
    }
}

/// Keeps alerts in the store, each under its VM's tenant (who alone reads it back).
#[derive(Debug)]
pub struct StoreAlerts(pub Arc<dyn palisade_store::Store>);

impl AlertSink for StoreAlerts {
    fn alert(&self, alert: &AlertRecord) {
        let Some((tenant, vm)) = alert.vm.split_once('/') else { return };
        let Ok(body) = serde_json::to_value(alert) else { return };
        let row = palisade_store::StoredEvent { id: 0, tenant: tenant.to_owned(), vm: vm.to_owned(), body };
        if let Err(e) = self.0.append_events(palisade_store::EventStream::Alerts, &[row]) {
            tracing::error!(error = %e, vm = %alert.vm, "cannot keep an anomaly alert in the store");
        }
    }
}

impl AlertSink for crate::monitors::EventsFile {
    fn alert(&self, alert: &AlertRecord) {
        if let Ok(line) = serde_json::to_string(alert) {
            self.append_line(&line);
        }
    }
}

/// Prometheus text for the detectors: windows scored and alerts raised, per VM.
pub fn metrics(detectors: &[DetectorStatus]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (name, help, alerts) in [
        ("palisade_nad_windows_total", "Windows LSTM-NAD scored for a VM since its detector started.", false),
        ("palisade_nad_alerts_total", "Anomaly alerts raised for a VM since its detector started.", true),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for d in detectors {
            let _ =
                writeln!(out, "{name}{{vm=\"{}\"}} {}", d.vm, if alerts { d.state.alerts } else { d.state.windows });
        }
    }
    out
}

#[cfg(test)]
mod tests;
