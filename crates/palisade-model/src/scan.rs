//! `scan` policies: Type 2 access (issue #7). One scanning engine reaches the tenant's VMs
//! through task spaces; the policy says which VMs, which ports, how often and how many at once.
//!
//! ```yaml
//! policies:
//!   - name: web-ports
//!     tenant: alpha
//!     scan:
//!       target: { subdomain: web }    # or { vm: web1 } / { domain: prod }; absent: the whole tenant
//!       profile:
//!         tcp: [22, 80, "8000-8100"]
//!         udp: [53]
//!       schedule: { every: 1h }       # or { cron: "0 3 * * *" }; absent: on demand only
//!       concurrency: 4                # tasks of this policy at once
//! ```

use serde::{Deserialize, Serialize};

use crate::document::Endpoint;

/// Most tasks one policy may run at once.
pub const MAX_SCAN_CONCURRENCY: u16 = 64;
/// The shortest interval between two scheduled runs, in seconds.
pub const MIN_INTERVAL_SECS: u64 = 60;

/// What a scan task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ScanKind {
    /// Palisade's built-in TCP connect / UDP probe scanner.
    #[default]
    PortScan,
    /// nmap with service detection and the offline-safe `vuln` scripts.
    VulnScan,
}

/// One port or an inclusive range, written `80` or `"8000-8100"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortItem {
    /// One port.
    Port(u32),
    /// `"a-b"`, or a single port written as a string.
    Range(String),
}

impl PortItem {
    /// The ports it stands for, or why it stands for none.
    pub fn ports(&self) -> Result<std::ops::RangeInclusive<u16>, String> {
        let one = |v: u32| match u16::try_from(v) {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(format!("port {v} is outside 1-65535")),
        };
        let num = |s: &str| s.trim().parse::<u32>().map_err(|_| format!("`{s}` is not a port number")).and_then(one);
        match self {
            PortItem::Port(v) => one(*v).map(|p| p..=p),
            PortItem::Range(s) => match s.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(a)?, num(b)?);
                    if a > b {
                        return Err(format!("port range `{s}` runs backwards"));
                    }
                    Ok(a..=b)
                }
                None => num(s).map(|p| p..=p),
            },
        }
    }
}

/// Which ports a scan probes, and for a vuln-scan how deep it looks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ScanProfile {
    /// TCP ports and ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp: Vec<PortItem>,
    /// UDP ports and ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub udp: Vec<PortItem>,
    /// vuln-scan: identify the services and versions (nmap `-sV`); default yes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_detection: Option<bool>,
    /// vuln-scan: only these nmap scripts, by name (default: every offline-safe `vuln` script).
    /// A named script outside the offline-safe set never runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<String>,
}

/// Most scripts a profile may name.
pub const MAX_SCRIPTS: usize = 32;

/// Whether `name` can be an nmap script's name (`http-git`, `ssl-heartbleed`).
pub fn is_script_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

impl ScanProfile {
    /// The TCP ports, expanded, sorted, without duplicates (invalid items skipped; `problems` names them).
    pub fn tcp_ports(&self) -> Vec<u16> {
        expand(&self.tcp)
    }

    /// The UDP ports, expanded likewise.
    pub fn udp_ports(&self) -> Vec<u16> {
        expand(&self.udp)
    }
}

fn expand(items: &[PortItem]) -> Vec<u16> {
    let mut v: Vec<u16> = items.iter().filter_map(|i| i.ports().ok()).flatten().collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// When a scan runs by itself: exactly one of `every` and `cron`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Every interval: `90s`, `30m`, `1h`, `1d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// Five cron fields: minute hour day-of-month month day-of-week.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
}

/// Parses `90s`, `30m`, `1h`, `1d` into seconds.
pub fn parse_interval(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not an interval like 90s, 30m, 1h or 1d");
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        "d" => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if secs < MIN_INTERVAL_SECS {
        return Err(format!("interval `{s}` is shorter than {MIN_INTERVAL_SECS}s"));
    }
    Ok(secs)
}

/// Checks a five-field cron expression (`*`, `*/n`, numbers, ranges and lists within bounds).
pub fn check_cron(expr: &str) -> Result<(), String> {
    const FIELDS: [(&str, u32, u32); 5] =
        [("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7)];
    let parts: Vec<&str> = expr.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(format!("`{expr}` has {} fields; cron needs 5 (minute hour day month weekday)", parts.len()));
    }
    for (part, (name, lo, hi)) in parts.iter().zip(FIELDS) {
        for item in part.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (item, None),
            };
            if let Some(s) = step {
                if !s.parse::<u32>().is_ok_and(|s| s > 0) {
                    return Err(format!("{name}: step `{s}` is not a positive number"));
                }
            }
            if range == "*" {
                continue;
            }
            let num = |x: &str| match x.parse::<u32>() {
                Ok(v) if (lo..=hi).contains(&v) => Ok(v),
                _ => Err(format!("{name}: `{x}` is outside {lo}-{hi}")),
            };
            match range.split_once('-') {
                Some((a, b)) if num(a)? > num(b)? => return Err(format!("{name}: range `{range}` runs backwards")),
                Some(_) => {}
                None => {
                    num(range)?;
                }
            }
        }
    }
    Ok(())
}

fn default_concurrency() -> u16 {
    4
}

/// What a `scan` policy scans and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanSpec {
    /// One VM, or every VM of a subdomain or domain of the tenant; absent means the whole tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Endpoint>,
    /// What runs.
    #[serde(default)]
    pub kind: ScanKind,
    /// Which ports.
    pub profile: ScanProfile,
    /// When it runs by itself; absent means on demand only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Tasks of this policy at once (1-64).
    #[serde(default = "default_concurrency")]
    pub concurrency: u16,
}

impl ScanSpec {
    /// Problems with the spec itself, as (field, message); the target is checked by `validate`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.profile.tcp.is_empty() && self.profile.udp.is_empty() {
            out.push(("scan.profile".to_owned(), "name at least one tcp or udp port".to_owned()));
        }
        for (proto, items) in [("tcp", &self.profile.tcp), ("udp", &self.profile.udp)] {
            for (i, item) in items.iter().enumerate() {
                if let Err(m) = item.ports() {
                    out.push((format!("scan.profile.{proto}[{i}]"), m));
                }
            }
        }
        if let Some(sched) = &self.schedule {
            match (&sched.every, &sched.cron) {
                (Some(e), None) => {
                    if let Err(m) = parse_interval(e) {
                        out.push(("scan.schedule.every".to_owned(), m));
                    }
                }
                (None, Some(c)) => {
                    if let Err(m) = check_cron(c) {
                        out.push(("scan.schedule.cron".to_owned(), m));
                    }
                }
                _ => out.push(("scan.schedule".to_owned(), "give exactly one of `every` and `cron`".to_owned())),
            }
        }
        if self.profile.scripts.len() > MAX_SCRIPTS {
            out.push(("scan.profile.scripts".to_owned(), format!("name at most {MAX_SCRIPTS} scripts")));
        }
        for (i, name) in self.profile.scripts.iter().enumerate() {
            if !is_script_name(name) {
                out.push((format!("scan.profile.scripts[{i}]"), format!("`{name}` is not an nmap script name")));
            }
        }
        let deep = self.profile.service_detection.is_some() || !self.profile.scripts.is_empty();
        if deep && self.kind != ScanKind::VulnScan {
            out.push((
                "scan.profile".to_owned(),
                "service_detection and scripts are for `kind: vuln-scan` (nmap); port-scan only probes ports"
                    .to_owned(),
            ));
        }
        if !(1..=MAX_SCAN_CONCURRENCY).contains(&self.concurrency) {
            out.push((
                "scan.concurrency".to_owned(),
                format!("concurrency {} is outside 1-{MAX_SCAN_CONCURRENCY}", self.concurrency),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_ranges_intervals_and_cron() {
        assert_eq!(PortItem::Port(80).ports(), Ok(80..=80));
        assert_eq!(PortItem::Range("8000-8002".into()).ports(), Ok(8000..=8002));
        assert!(PortItem::Port(0).ports().is_err());
        assert!(PortItem::Port(70000).ports().is_err());
        assert!(PortItem::Range("9-1".into()).ports().unwrap_err().contains("backwards"));
        let p = ScanProfile { tcp: vec![PortItem::Port(81), PortItem::Range("80-81".into())], ..Default::default() };
        assert_eq!(p.tcp_ports(), vec![80, 81]);
        assert_eq!(parse_interval("1h"), Ok(3600));
        assert_eq!(parse_interval("90s"), Ok(90));
        assert!(parse_interval("10s").unwrap_err().contains("shorter"));
        assert!(parse_interval("soon").is_err());
        assert!(parse_interval("5w").is_err());
        check_cron("0 3 * * *").unwrap();
        check_cron("*/15 0-6,22 1 1-12 0").unwrap();
        assert!(check_cron("0 3 * *").unwrap_err().contains("4 fields"));
        assert!(check_cron("61 * * * *").unwrap_err().contains("minute"));
        assert!(check_cron("* * * * 1-0").is_err());
        assert!(check_cron("*/0 * * * *").is_err());
    }
}
