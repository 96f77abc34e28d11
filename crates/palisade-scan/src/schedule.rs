//! When `scan` policies run by themselves: `every` intervals and five-field cron expressions.
//!
//! The scheduler is pure: the caller passes the time (seconds since the Unix epoch, UTC), so
//! tests inject a clock. A policy seen for the first time with `every` is due at once; a cron
//! policy is due in each minute its fields match, once per minute.

use std::collections::BTreeMap;
use std::sync::Mutex;

use palisade_model::inventory::Inventory;
use palisade_model::scan::parse_interval;
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
                (None, Some(cron)) => prev.is_none_or(|p| p / 60 != now / 60) && cron_matches(cron, now),
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

/// (minute, hour, day of month, month, day of week with Sunday = 0) of `secs` since the epoch, UTC.
fn utc_fields(secs: u64) -> [u32; 5] {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days, for days >= 0.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let weekday = ((days + 4) % 7) as u32; // 1970-01-01 was a Thursday
    [(rem % 3600 / 60) as u32, (rem / 3600) as u32, day, month, weekday]
}

fn field_matches(field: &str, value: u32, weekday: bool) -> bool {
    field.split(',').any(|item| {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().unwrap_or(0)),
            None => (item, 1),
        };
        if step == 0 {
            return false;
        }
        let (lo, hi) = match range {
            "*" => (0, u32::MAX),
            r => match r.split_once('-') {
                Some((a, b)) => (a.parse().unwrap_or(u32::MAX), b.parse().unwrap_or(0)),
                None => match r.parse() {
                    Ok(v) if step == 1 => (v, v),
                    Ok(v) => (v, u32::MAX),
                    Err(_) => return false,
                },
            },
        };
        let hit = |v: u32| v >= lo && v <= hi && (v - lo).is_multiple_of(step);
        hit(value) || (weekday && value == 0 && hit(7))
    })
}

/// True if the five-field cron expression matches the minute `secs` falls in (UTC).
pub fn cron_matches(expr: &str, secs: u64) -> bool {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return false;
    }
    let now = utc_fields(secs);
    (0..5).all(|i| field_matches(fields[i], now[i], i == 4))
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
    fn calendar_fields() {
        assert_eq!(utc_fields(0), [0, 0, 1, 1, 4]);
        assert_eq!(utc_fields(T0), [0, 3, 26, 11, 4]);
        assert_eq!(utc_fields(951_782_400), [0, 0, 29, 2, 2], "2000-02-29, a Tuesday");
    }

    #[test]
    fn cron_expressions() {
        assert!(cron_matches("0 3 * * *", T0));
        assert!(!cron_matches("0 3 * * *", T0 + 60));
        assert!(cron_matches("*/15 0-6 26 11 4", T0 + 15 * 60));
        assert!(!cron_matches("*/15 0-6 26 11 4", T0 + 16 * 60));
        assert!(cron_matches("0 3 * * 1-5", T0), "Thursday is a weekday");
        assert!(!cron_matches("0 3 * * 0,6", T0));
        assert!(cron_matches("0 3 * * 7", T0 + 3 * 86_400), "7 is Sunday too");
        assert!(!cron_matches("0 3 * *", T0));
    }

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
