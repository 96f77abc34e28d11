//! Prometheus text-format metrics, kept in atomics.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS_MS: [u64; 10] = [1, 2, 5, 10, 20, 50, 100, 250, 1000, 5000];

/// The controller's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    flows_programmed: AtomicU64,
    owners_programmed: AtomicU64,
    pending_rules: AtomicU64,
    reconciles: AtomicU64,
    reconcile_errors: AtomicU64,
    bundles: AtomicU64,
    changes: AtomicU64,
    rejected_changes: AtomicU64,
    reconcile_buckets: [AtomicU64; BUCKETS_MS.len()],
    reconcile_sum_us: AtomicU64,
}

impl Metrics {
    /// Records one reconcile pass.
    pub fn reconciled(&self, took: Duration, flows: usize, owners: usize, pending: usize, bundle_sent: bool) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        self.flows_programmed.store(flows as u64, Ordering::Relaxed);
        self.owners_programmed.store(owners as u64, Ordering::Relaxed);
        self.pending_rules.store(pending as u64, Ordering::Relaxed);
        if bundle_sent {
            self.bundles.fetch_add(1, Ordering::Relaxed);
        }
        let ms = took.as_millis() as u64;
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            if ms <= *b {
                self.reconcile_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.reconcile_sum_us.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Records a failed reconcile pass.
    pub fn reconcile_failed(&self) {
        self.reconcile_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records an accepted change.
    pub fn change_accepted(&self) {
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a rejected change.
    pub fn change_rejected(&self) {
        self.rejected_changes.fetch_add(1, Ordering::Relaxed);
    }

    /// The metrics in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        metric("palisade_flows_programmed", "gauge", "Flows Palisade holds on the switch.", g(&self.flows_programmed));
        metric(
            "palisade_flow_owners",
            "gauge",
            "Flow owners (base, appliances, policies) programmed.",
            g(&self.owners_programmed),
        );
        metric("palisade_pending_rules", "gauge", "Rules waiting for a switch port to appear.", g(&self.pending_rules));
        metric("palisade_bundles_total", "counter", "Atomic bundles committed to the switch.", g(&self.bundles));
        metric(
            "palisade_reconcile_errors_total",
            "counter",
            "Reconcile passes that failed.",
            g(&self.reconcile_errors),
        );
        metric("palisade_changes_total", "counter", "Accepted changes to the desired state.", g(&self.changes));
        metric("palisade_changes_rejected_total", "counter", "Rejected changes.", g(&self.rejected_changes));
        let _ = writeln!(out, "# HELP palisade_reconcile_seconds Time of one reconcile pass.\n# TYPE palisade_reconcile_seconds histogram");
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            let _ = writeln!(
                out,
                "palisade_reconcile_seconds_bucket{{le=\"{}\"}} {}",
                *b as f64 / 1000.0,
                g(&self.reconcile_buckets[i])
            );
        }
        let count = g(&self.reconciles);
        let _ = writeln!(out, "palisade_reconcile_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "palisade_reconcile_seconds_sum {}", g(&self.reconcile_sum_us) as f64 / 1e6);
        let _ = writeln!(out, "palisade_reconcile_seconds_count {count}");
        out
    }
}
