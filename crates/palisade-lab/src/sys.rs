//! Typed queries and actions on the machine, built on a [`CommandRunner`].
//!
//! Every command line the lab runs is assembled here or in the modules that call these
//! helpers; names have been validated before they get here.

use std::process::Output;

use serde_json::Value;

use crate::error::LabError;
use crate::parse::{self, Link, Route};
use palisade_ovs::Vsctl;

use crate::runner::{argv, check, command_line, CommandRunner};

/// Script that starts OVS when `ovs-vsctl show` does not answer.
pub const OVS_CTL: &str = "/usr/share/openvswitch/scripts/ovs-ctl";

/// Command helpers over a runner.
#[derive(Debug, Clone, Copy)]
pub struct Sys<'a> {
    runner: &'a dyn CommandRunner,
}

impl<'a> Sys<'a> {
    /// Wraps a runner.
    pub fn new(runner: &'a dyn CommandRunner) -> Self {
        Sys { runner }
    }

    /// The runner underneath.
    pub fn runner(&self) -> &'a dyn CommandRunner {
        self.runner
    }

    /// Runs a command, whatever its exit status.
    pub fn output(&self, parts: &[&str]) -> Result<Output, LabError> {
        Ok(self.runner.output(&argv(parts), None)?)
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn run(&self, parts: &[&str]) -> Result<String, LabError> {
        self.run_stdin(parts, None)
    }

    /// Runs a command that must succeed, feeding it `stdin`; returns its stdout.
    pub fn run_stdin(&self, parts: &[&str], stdin: Option<&str>) -> Result<String, LabError> {
        let cmd = argv(parts);
        let out = check(&cmd, self.runner.output(&cmd, stdin.map(str::as_bytes))?)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn parsed<T>(
        &self,
        parts: &[&str],
        parse: impl FnOnce(&str) -> Result<T, serde_json::Error>,
    ) -> Result<T, LabError> {
        let text = self.run(parts)?;
        parse(&text).map_err(|source| LabError::ParseJson { command: command_line(&argv(parts)), source })
    }

    /// Names of all network namespaces.
    pub fn netns_list(&self) -> Result<Vec<String>, LabError> {
        self.parsed(&["ip", "-j", "netns", "list"], parse::netns_names)
    }

    /// All links in `netns` (or the root namespace), with details.
    pub fn links(&self, netns: Option<&str>) -> Result<Vec<Link>, LabError> {
        match netns {
            Some(ns) => self.parsed(&["ip", "-n", ns, "-d", "-j", "link", "show"], parse::links),
            None => self.parsed(&["ip", "-d", "-j", "link", "show"], parse::links),
        }
    }

    /// Global IPv4 addresses of `dev` in `netns`.
    pub fn ipv4_addrs(&self, netns: &str, dev: &str) -> Result<Vec<(std::net::Ipv4Addr, u8)>, LabError> {
        self.parsed(&["ip", "-n", netns, "-j", "addr", "show", "dev", dev], parse::ipv4_addrs)
    }

    /// Default routes in `netns`.
    pub fn default_routes(&self, netns: &str) -> Result<Vec<Route>, LabError> {
        self.parsed(&["ip", "-n", netns, "-j", "route", "show", "default"], parse::routes)
    }

    /// `parts` prefixed to run inside `netns` (or unchanged for the root namespace).
    pub fn in_netns<'b>(netns: Option<&'b str>, parts: &[&'b str]) -> Vec<&'b str> {
        let mut v = match netns {
            Some(ns) => vec!["ip", "netns", "exec", ns],
            None => Vec::new(),
        };
        v.extend_from_slice(parts);
        v
    }

    /// Whether TX checksum offload is on for `dev`.
    pub fn tx_checksumming(&self, netns: Option<&str>, dev: &str) -> Result<bool, LabError> {
        let parts = Self::in_netns(netns, &["ethtool", "-k", dev]);
        let text = self.run(&parts)?;
        parse::tx_checksumming(&text).ok_or_else(|| LabError::UnexpectedOutput {
            command: command_line(&argv(&parts)),
            detail: "no `tx-checksumming: on|off` line".to_owned(),
        })
    }

    /// Current values of sysctl `keys` inside `netns`, in order.
    pub fn sysctls(&self, netns: &str, keys: &[&str]) -> Result<Vec<String>, LabError> {
        let mut parts = Self::in_netns(Some(netns), &["sysctl", "-n"]);
        parts.extend_from_slice(keys);
        let text = self.run(&parts)?;
        let values: Vec<String> = text.lines().map(|l| l.trim().to_owned()).collect();
        if values.len() != keys.len() {
            return Err(LabError::UnexpectedOutput {
                command: command_line(&argv(&parts)),
                detail: format!("{} values for {} keys", values.len(), keys.len()),
            });
        }
        Ok(values)
    }

    /// Starts OVS if `ovs-vsctl show` does not answer; fails if it still does not.
    pub fn ensure_ovs(&self, progress: &mut dyn FnMut(&str)) -> Result<(), LabError> {
        let probe = ["ovs-vsctl", "--timeout=2", "show"];
        if self.run(&probe).is_ok() {
            return Ok(());
        }
        progress("starting Open vSwitch");
        let started = self.run(&[OVS_CTL, "start"]).and_then(|_| self.run(&probe));
        started.map(|_| ()).map_err(|source| LabError::OvsUnavailable {
            start_command: format!("{OVS_CTL} start"),
            source: Box::new(source),
        })
    }

    /// Open vSwitch's database, through the same runner.
    pub fn ovs(&self) -> Vsctl<'a> {
        Vsctl::new(self.runner)
    }

    /// Runs `ovs-vsctl` with a timeout.
    pub fn vsctl(&self, args: &[&str]) -> Result<String, LabError> {
        Ok(self.ovs().run(args)?)
    }

    /// Whether OVS has a bridge called `bridge`.
    pub fn bridge_exists(&self, bridge: &str) -> Result<bool, LabError> {
        Ok(self.ovs().bridge_exists(bridge)?)
    }

    /// Ports on `bridge` (which must exist).
    pub fn bridge_ports(&self, bridge: &str) -> Result<Vec<String>, LabError> {
        Ok(self.ovs().ports(bridge)?)
    }

    /// The values of `columns` of OVS record `table`/`record`, each as an OVS set.
    pub fn ovs_get(&self, table: &str, record: &str, columns: &[&str]) -> Result<Vec<Vec<String>>, LabError> {
        let mut args = vec!["get", table, record];
        args.extend_from_slice(columns);
        let text = self.vsctl(&args)?;
        let values: Vec<Vec<String>> = text.lines().map(parse::ovs_values).collect();
        if values.len() != columns.len() {
            return Err(LabError::UnexpectedOutput {
                command: format!("ovs-vsctl get {table} {record} {}", columns.join(" ")),
                detail: format!("{} lines for {} columns", values.len(), columns.len()),
            });
        }
        Ok(values)
    }

    /// `nft -j` output inside `netns`, parsed as JSON.
    pub fn nft_json(&self, netns: &str, args: &[&str]) -> Result<Value, LabError> {
        let mut parts = Self::in_netns(Some(netns), &["nft", "-j"]);
        parts.extend_from_slice(args);
        self.parsed(&parts, |t| serde_json::from_str(t))
    }
}
