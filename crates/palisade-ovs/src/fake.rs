//! An in-memory switch that records bundles, for unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use palisade_flows::{Cookie, Installed};

use crate::{OvsError, PortMap, Switch};

#[derive(Debug, Default)]
struct State {
    ports: PortMap,
    flows: BTreeMap<Cookie, Vec<String>>,
    groups: BTreeSet<u32>,
    bundles: Vec<Vec<String>>,
    reject_next: bool,
}

/// A fake switch: applies bundle lines to in-memory tables and records every bundle.
#[derive(Debug, Default)]
pub struct RecordingSwitch {
    state: Mutex<State>,
}

impl RecordingSwitch {
    /// A fake switch with these ports.
    pub fn with_ports(ports: PortMap) -> Self {
        Self { state: Mutex::new(State { ports, ..State::default() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bundles committed so far.
    pub fn bundles(&self) -> Vec<Vec<String>> {
        self.lock().bundles.clone()
    }

    /// Makes the next commit fail as a switch would reject it (nothing changes).
    pub fn reject_next_commit(&self) {
        self.lock().reject_next = true;
    }

    /// Forgets every flow and group (as if the bridge were flushed behind our back).
    pub fn flush(&self) {
        let mut s = self.lock();
        s.flows.clear();
        s.groups.clear();
    }
}

fn cookie_of(rule: &str) -> Option<Cookie> {
    let rest = rule.split("cookie=").nth(1)?;
    let hex = rest.split([',', '/', ' ']).next()?;
    u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok().map(Cookie)
}

fn group_of(rule: &str) -> Option<u32> {
    rule.split("group_id=").nth(1)?.split(',').next()?.trim().parse().ok()
}

impl Switch for RecordingSwitch {
    fn ports(&self) -> Result<PortMap, OvsError> {
        Ok(self.lock().ports.clone())
    }

    fn installed(&self) -> Result<Installed, OvsError> {
        let s = self.lock();
        Ok(Installed {
            flows: s.flows.iter().map(|(c, f)| (*c, f.len() as u32)).filter(|(_, n)| *n > 0).collect(),
            groups: s.groups.clone(),
        })
    }

    fn commit(&self, lines: &[String]) -> Result<(), OvsError> {
        let mut s = self.lock();
        if std::mem::take(&mut s.reject_next) {
            return Err(OvsError::Failed { command: "fake bundle".to_owned(), stderr: "rejected by test".to_owned() });
        }
        let (mut flows, mut groups) = (s.flows.clone(), s.groups.clone());
        for line in lines {
            let bad = || OvsError::Parse { command: "fake bundle".to_owned(), detail: line.clone() };
            if let Some(rule) = line.strip_prefix("flow add ") {
                flows.entry(cookie_of(rule).ok_or_else(bad)?).or_default().push(rule.to_owned());
            } else if let Some(rule) = line.strip_prefix("flow delete ") {
                flows.remove(&cookie_of(rule).ok_or_else(bad)?);
            } else if let Some(rule) = line.strip_prefix("group add ") {
                if !groups.insert(group_of(rule).ok_or_else(bad)?) {
                    return Err(OvsError::Failed {
                        command: "fake bundle".to_owned(),
                        stderr: format!("group exists: {line}"),
                    });
                }
            } else if let Some(rule) = line.strip_prefix("group modify ") {
                if !groups.contains(&group_of(rule).ok_or_else(bad)?) {
                    return Err(OvsError::Failed {
                        command: "fake bundle".to_owned(),
                        stderr: format!("no such group: {line}"),
                    });
                }
            } else if let Some(rule) = line.strip_prefix("group delete ") {
                groups.remove(&group_of(rule).ok_or_else(bad)?);
            } else {
                return Err(bad());
            }
        }
        s.flows = flows;
        s.groups = groups;
        s.bundles.push(lines.to_vec());
        Ok(())
    }

    fn dump(&self) -> Result<Vec<String>, OvsError> {
        Ok(self.lock().flows.values().flatten().cloned().collect())
    }
}
