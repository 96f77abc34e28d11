//! When `scan` policies run by themselves: `every` intervals and five-field cron expressions.
//!
//! The scheduler is pure: the caller passes the time (seconds since the Unix epoch, UTC), so
//! tests inject a clock. A policy seen for the first time with `every` is due at once; a cron
//! policy is due in each minute its fields match, once per minute.

use std::collections::BTreeMap;
use std::sync::Mutex;

use palisade_model::inventory::Inventory;
use palisade_model::scan::{parse_interval, CronTime};
use palisade_model::types::Name;
use palisade_model::validate::resolve_endpoint;
use palisade_model::ScanSpec;

use tracing::{info, warn};

use crate::flows::{Target, TargetError};
use crate::service::{Profile, ScanService, TaskRecord};

/// Last start per policy key.
#[derive(Debug, Default)]
pub struct Scheduler {
    last: Mutex<BTreeMap<String, u64>>,
}

impl Scheduler {
    /// The policies (by key) due at `now`; each is recorded as started at `now`.
    pub fn due<'a>(&self, policies: impl IntoIterator<Item = (&'a str, &'a ScanSpec)>, now: u64) -> Vec<String> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (key, spec) in policies {
            let Some(sched) = &spec.schedule else { continue };
            let prev = last.get(key).copied();
            let due = match (&sched.every, &sched.cron) {
                (Some(every), None) => match parse_interval(every) {
                    Ok(secs) => prev.is_none_or(|p| now >= p.saturating_add(secs)),
                    Err(_) => false,
                },
                (None, Some(cron)) => prev.is_none_or(|p| p / 60 != now / 60) && cron.matches(CronTime::utc(now)),
                _ => false,
            };
            if due {
                last.insert(key.to_owned(), now);
                out.push(key.to_owned());
            }
        }
        out
    }
}

/// The VMs a `scan` policy of `tenant` targets, as task targets.
pub fn targets(inv: &Inventory, tenant: &Name, spec: &ScanSpec) -> Result<Vec<Target>, TargetError> {
    let names: Vec<Name> = match &spec.target {
        Some(ep) => resolve_endpoint(inv, tenant, ep)
            .map_err(|(_, m)| TargetError::UnknownVm(format!("{tenant}: {m}")))?
            .vms
            .into_iter()
            .map(|(n, _)| n.clone())
            .collect(),
        None => inv.vms().filter(|(k, _)| k.tenant.as_ref() == Some(tenant)).map(|(k, _)| k.name.clone()).collect(),
    };
    names.iter().map(|vm| Target::resolve(inv, tenant, vm)).collect()
}

/// The engine profile of a policy.
pub fn profile(spec: &ScanSpec) -> Profile {
    Profile {
        tcp: spec.profile.tcp_ports(),
        udp: spec.profile.udp_ports(),
        kind: spec.kind,
        service_detection: spec.profile.service_detection.unwrap_or(true),
        scripts: spec.profile.scripts.clone(),
        ..Profile::default()
    }
}

/// Runs every policy of `inv` due at `now` against its targets, at most the policy's
/// concurrency at once, blocking until they finish. Returns the tasks run.
pub fn run_due(inv: &Inventory, scans: &ScanService, scheduler: &Scheduler, now: u64) -> Vec<TaskRecord> {
    let policies: Vec<(String, Name, &ScanSpec)> =
        inv.policies().filter_map(|(k, p)| Some((k.to_string(), k.tenant.clone()?, p.scan.as_deref()?))).collect();
    let due = scheduler.due(policies.iter().map(|(k, _, s)| (k.as_str(), *s)), now);
    if due.is_empty() {
        return Vec::new();
    }
    if let Err(e) = scans.check_pool(inv) {
        warn!(error = %e, "scheduled scans skipped: the task address pool overlaps a tenant subnet");
        return Vec::new();
    }
    let mut out = Vec::new();
    for (key, tenant, spec) in policies.iter().filter(|(k, ..)| due.contains(k)) {
        let targets = match targets(inv, tenant, spec) {
            Ok(t) => t,
            Err(e) => {
                warn!(policy = %key, error = %e, "scheduled scan skipped: a target cannot be reached");
                continue;
            }
        };
        info!(policy = %key, targets = targets.len(), "scheduled scan starting");
        out.extend(run_targets(scans, &targets, spec));
    }
    out
}

/// Runs policy `spec` now against `targets` (see [`targets`]), at most its concurrency at once,
/// blocking until they finish: the scheduler's runs and "start a scan now" for a policy.
pub fn run_targets(scans: &ScanService, targets: &[Target], spec: &ScanSpec) -> Vec<TaskRecord> {
    let profile = profile(spec);
    let mut out = Vec::new();
    for chunk in targets.chunks(usize::from(spec.concurrency.max(1))) {
        std::thread::scope(|s| {
            let running: Vec<_> = chunk.iter().map(|t| s.spawn(|| scans.run(t, &profile))).collect();
            out.extend(running.into_iter().filter_map(|h| h.join().ok()));
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(every: Option<&str>, cron: Option<&str>) -> ScanSpec {
        serde_json::from_value(serde_json::json!({
            "profile": { "tcp": [22] },
            "schedule": { "every": every, "cron": cron },
        }))
        .unwrap()
    }

    // 2026-11-26 03:00:00 UTC, a Thursday.
    const T0: u64 = 1_795_662_000;

    #[test]
    fn every_and_cron_are_due_once_per_period() {
        let s = Scheduler::default();
        let hourly = spec(Some("1h"), None);
        let nightly = spec(None, Some("0 3 * * *"));
        let on_demand: ScanSpec = serde_json::from_value(serde_json::json!({ "profile": { "tcp": [22] } })).unwrap();
        let all = || [("a/hourly", &hourly), ("a/nightly", &nightly), ("a/manual", &on_demand)];
        assert_eq!(s.due(all(), T0), vec!["a/hourly", "a/nightly"]);
        assert!(s.due(all(), T0 + 30).is_empty(), "same minute, within the hour");
        assert!(s.due(all(), T0 + 3599).is_empty());
        assert_eq!(s.due(all(), T0 + 3600), vec!["a/hourly"]);
        assert_eq!(s.due(all(), T0 + 86_400), vec!["a/hourly", "a/nightly"]);
    }
}
