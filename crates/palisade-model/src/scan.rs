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
    /// Five cron fields: minute hour day-of-month month day-of-week (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<Cron>,
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

/// A five-field cron expression (minute hour day-of-month month day-of-week, UTC), parsed once:
/// each field is the set of values it matches. `*`, `*/n`, numbers, ranges `a-b`, stepped
/// ranges `a-b/n` and `a/n` (from `a` to the field's end), and lists of them; day of week 0 and 7
/// are Sunday. As in Vixie cron, when both day fields are restricted a day matches either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cron {
    text: String,
    /// Bit `v` of field `i` set: value `v` matches.
    sets: [u64; 5],
    /// Whether the day-of-month and day-of-week fields are `*` (unrestricted).
    any_mday: bool,
    any_wday: bool,
}

/// One instant's calendar fields in UTC, as cron reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronTime {
    /// 0-59.
    pub minute: u32,
    /// 0-23.
    pub hour: u32,
    /// 1-31.
    pub day: u32,
    /// 1-12.
    pub month: u32,
    /// 0-6, Sunday = 0.
    pub weekday: u32,
}

impl CronTime {
    /// The calendar fields of `secs` since the Unix epoch, in UTC.
    pub fn utc(secs: u64) -> CronTime {
        let t = i64::try_from(secs)
            .ok()
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        CronTime {
            minute: u32::from(t.minute()),
            hour: u32::from(t.hour()),
            day: u32::from(t.day()),
            month: u32::from(u8::from(t.month())),
            weekday: u32::from(t.weekday().number_days_from_sunday()),
        }
    }
}

impl Cron {
    /// Parses `expr`; the error names the field and the part that is wrong.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        const FIELDS: [(&str, u32, u32); 5] =
            [("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7)];
        let parts: Vec<&str> = expr.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!("`{expr}` has {} fields; cron needs 5 (minute hour day month weekday)", parts.len()));
        }
        let mut sets = [0u64; 5];
        for (i, (part, (name, lo, hi))) in parts.iter().zip(FIELDS).enumerate() {
            for item in part.split(',') {
                let (range, step) = match item.split_once('/') {
                    Some((r, s)) => match s.parse::<u32>() {
                        Ok(s) if s > 0 => (r, s),
                        _ => return Err(format!("{name}: step `{s}` is not a positive number")),
                    },
                    None => (item, 1),
                };
                let num = |x: &str| match x.parse::<u32>() {
                    Ok(v) if (lo..=hi).contains(&v) => Ok(v),
                    _ => Err(format!("{name}: `{x}` is outside {lo}-{hi}")),
                };
                let (from, to) = match range.split_once('-') {
                    _ if range == "*" => (lo, hi),
                    Some((a, b)) => {
                        let (a, b) = (num(a)?, num(b)?);
                        if a > b {
                            return Err(format!("{name}: range `{range}` runs backwards"));
                        }
                        (a, b)
                    }
                    None if step > 1 => (num(range)?, hi),
                    None => {
                        let v = num(range)?;
                        (v, v)
                    }
                };
                for v in (from..=to).step_by(step as usize) {
                    // Day of week 7 is Sunday, like 0.
                    let v = if i == 4 && v == 7 { 0 } else { v };
                    sets[i] |= 1 << v;
                }
            }
        }
        Ok(Cron { text: expr.to_owned(), any_mday: parts[2] == "*", any_wday: parts[4] == "*", sets })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the minute `t` falls in matches.
    pub fn matches(&self, t: CronTime) -> bool {
        let has = |i: usize, v: u32| self.sets[i] & (1 << v) != 0;
        let (mday, wday) = (has(2, t.day), has(4, t.weekday));
        let day = match (self.any_mday, self.any_wday) {
            (false, false) => mday || wday,
            _ => mday && wday,
        };
        has(0, t.minute) && has(1, t.hour) && has(3, t.month) && day
    }
}

impl TryFrom<String> for Cron {
    type Error = String;

    fn try_from(s: String) -> Result<Cron, String> {
        Cron::parse(&s)
    }
}

impl From<Cron> for String {
    fn from(c: Cron) -> String {
        c.text
    }
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
                (None, Some(_)) => {} // parsed (and so checked) when the file was read
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
        Cron::parse("0 3 * * *").unwrap();
        Cron::parse("*/15 0-6,22 1 1-12 0").unwrap();
        assert!(Cron::parse("0 3 * *").unwrap_err().contains("4 fields"));
        assert!(Cron::parse("61 * * * *").unwrap_err().contains("minute"));
        assert!(Cron::parse("* * * * 1-0").is_err());
        assert!(Cron::parse("*/0 * * * *").is_err());
    }

    /// 2025-11-27 03:00 UTC, a Thursday.
    const T0: u64 = 1_764_212_400;

    #[test]
    fn calendar_fields_are_utc() {
        assert_eq!(CronTime::utc(T0), CronTime { minute: 0, hour: 3, day: 27, month: 11, weekday: 4 });
        assert_eq!(CronTime::utc(0), CronTime { minute: 0, hour: 0, day: 1, month: 1, weekday: 4 });
        assert_eq!(CronTime::utc(951_782_400), CronTime { minute: 0, hour: 0, day: 29, month: 2, weekday: 2 });
    }

    #[test]
    fn cron_expressions_match_their_minutes() {
        let m = |expr: &str, t: u64| Cron::parse(expr).unwrap().matches(CronTime::utc(t));
        assert!(m("0 3 * * *", T0));
        assert!(!m("0 3 * * *", T0 + 60));
        assert!(m("*/15 0-6 27 11 4", T0 + 15 * 60));
        assert!(!m("*/15 0-6 27 11 4", T0 + 16 * 60));
        assert!(m("0 3 * * 1-5", T0), "Thursday is a weekday");
        assert!(!m("0 3 * * 0,6", T0));
        assert!(m("0 3 * * 7", T0 + 3 * 86_400), "7 is Sunday too");
        assert!(m("0 3 1 * 4", T0), "either restricted day field may match (Vixie cron)");
        assert!(!m("0 3 1 * 5", T0));
        assert!(m("0 */2 * * *", T0 - 3600) && !m("0 */2 * * *", T0), "*/2 from the field's start: hours 0, 2, 4");
        assert!(m("0 3/6 * * *", T0) && m("0 3/6 * * *", T0 + 6 * 3600) && !m("0 3/6 * * *", T0 + 3600));
        assert!(m("0 2-4/2 * * *", T0 + 3600) && !m("0 2-4/2 * * *", T0));
    }

    #[test]
    fn a_cron_reads_and_writes_as_its_text() {
        let c: Cron = serde_json::from_value(serde_json::json!("0 3 * * *")).unwrap();
        assert_eq!(serde_json::to_value(&c).unwrap(), serde_json::json!("0 3 * * *"));
        assert!(serde_json::from_value::<Cron>(serde_json::json!("0 25 * * *"))
            .unwrap_err()
            .to_string()
            .contains("hour: `25` is outside 0-23"));
    }
}
