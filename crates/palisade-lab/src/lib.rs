//! Owns the single-host lab's "physical" layer: one OVS bridge, a network namespace per host
//! wired to it by a veth on a VLAN access port, and appliance namespaces running nftables and taps.
//! Does not own OpenFlow flows (the controller programs them) and knows nothing of policies.
//!
//! Everything is done by running `ip`, `ovs-vsctl`, `nft`, `ethtool`, `sysctl` and `tcpdump`
//! through a [`CommandRunner`], so no unsafe code is needed:
//!
//! ```text
//!   Lab::up / status / down
//!     │ validate (pure: reject a bad spec before touching anything)
//!     ├─ host      bridge + per-host namespace, veth, MAC, addr, route, sysctls, OVS port
//!     ├─ appliance nftables ruleset (nft.rs renders it, pure) + tcpdump tap
//!     ├─ status    read-only inspection        teardown  best-effort removal + check
//!     └─ sys       typed command helpers ─► runner (SystemRunner | fake in unit tests)
//! ```

#![forbid(unsafe_code)]

mod appliance;
mod error;
mod host;
mod nft;
mod parse;
mod runner;
mod spec;
mod status;
mod sys;
mod teardown;
mod validate;

#[cfg(test)]
mod lab_tests;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde::Serialize;

pub use appliance::TapFiles;
pub use error::{LabError, SpecError, TeardownFailure};
pub use nft::{render_ruleset, RuleCounter};
pub use runner::{command_line, CommandRunner, SystemRunner};
pub use spec::{
    ApplianceFunction, ApplianceSpec, FirewallRule, FirewallSpec, HostRole, HostSpec, LabSpec, PortType, Proto, Verdict,
};
pub use status::{HostStatus, LabStatus};
pub use validate::validate;

use host::{Changes, Snapshot, NS_IFACE};
use sys::Sys;

/// Where the lab keeps pid files, pcaps and logs unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/palisade/lab";

/// What `up` changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpReport {
    /// Changes to OVS itself and the bridge.
    pub bridge_changes: Vec<String>,
    /// Changes per host, in spec order (empty for a host that was already right).
    pub hosts: Vec<HostUpReport>,
}

impl UpReport {
    /// Whether anything at all was changed.
    pub fn changed(&self) -> bool {
        !self.bridge_changes.is_empty() || self.hosts.iter().any(|h| !h.changes.is_empty())
    }
}

/// What `up` changed on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostUpReport {
    /// The host's namespace.
    pub netns: String,
    /// Each change made, in order.
    pub changes: Vec<String>,
}

/// A lab on this machine, with its state directory.
#[derive(Debug)]
pub struct Lab {
    state_dir: PathBuf,
    runner: Box<dyn CommandRunner>,
}

impl Lab {
    /// A lab that keeps its state (tap pid files, pcaps, logs) in `state_dir` and drives the
    /// real machine.
    pub fn new(state_dir: PathBuf) -> Self {
        Lab::with_runner(state_dir, Box::new(SystemRunner))
    }

    /// A lab that runs its commands through `runner` (tests use a fake).
    pub fn with_runner(state_dir: PathBuf, runner: Box<dyn CommandRunner>) -> Self {
        Lab { state_dir, runner }
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Where the tap of the appliance in `netns` keeps its pid, pcap and log.
    pub fn tap_files(&self, netns: &str) -> TapFiles {
        TapFiles::new(&self.state_dir, netns)
    }

    fn sys(&self) -> Sys<'_> {
        Sys::new(self.runner.as_ref())
    }

    /// Builds the lab, or brings it back to the spec. Idempotent: what already matches the
    /// spec is left alone, and flows on the bridge are never touched. A bad spec is rejected
    /// before anything is changed.
    pub fn up(&self, spec: &LabSpec, progress: &mut dyn FnMut(&str)) -> Result<UpReport, LabError> {
        validate(spec)?;
        std::fs::create_dir_all(&self.state_dir)
            .map_err(|source| LabError::StatePath { path: self.state_dir.clone(), source })?;
        let sys = self.sys();
        let mut ch = Changes::new(progress);
        sys.ensure_ovs(&mut |m| ch.note(m.to_owned()))?;
        host::converge_bridge(sys, &spec.bridge, &mut ch)?;
        let bridge_changes = ch.take();

        let snap = Snapshot {
            netns: sys.netns_list()?,
            root_links: sys.links(None)?,
            bridge_ports: sys.bridge_ports(&spec.bridge)?,
        };
        let mut hosts = Vec::new();
        for h in &spec.hosts {
            host::converge_host(sys, &spec.bridge, h, &snap, &mut ch)?;
            host::converge_port_type(sys, &h.port, spec.port_type, &mut ch)?;
            let tap_wanted = match h.role.appliance() {
                Some(app) => {
                    appliance::converge_firewall(sys, h, app, &mut ch)?;
                    app.has(ApplianceFunction::Tap)
                }
                None => false,
            };
            if tap_wanted {
                appliance::converge_tap(sys, &self.state_dir, h, &mut ch)?;
            } else {
                appliance::stop_tap(sys, &self.state_dir, &h.netns, &mut ch)?;
            }
            let changes = ch.take();
            if changes.is_empty() {
                ch.say(&format!("host {} is already up to date", h.netns));
            }
            hosts.push(HostUpReport { netns: h.netns.clone(), changes });
        }
        Ok(UpReport { bridge_changes, hosts })
    }

    /// Reports what exists and whether it matches the spec. Changes nothing.
    pub fn status(&self, spec: &LabSpec) -> Result<LabStatus, LabError> {
        validate(spec)?;
        status::status(self.sys(), &self.state_dir, spec)
    }

    /// Removes the lab: tap captures and any other process in its namespaces, the bridge with
    /// all its flows and groups, the veths and the namespaces. Idempotent and best effort:
    /// every object is tried, and [`LabError::TeardownIncomplete`] lists what is left.
    /// Pcaps and tap logs stay in the state directory.
    pub fn down(&self, spec: &LabSpec, progress: &mut dyn FnMut(&str)) -> Result<(), LabError> {
        validate(spec)?;
        let mut ch = Changes::new(progress);
        teardown::down(self.sys(), &self.state_dir, spec, &mut ch)
    }

    /// Reads an appliance's nftables counters: one per rule in spec order, then `default`
    /// (packets that matched no rule) and `forwarded` (packets the firewall let through).
    pub fn appliance_counters(&self, host: &HostSpec) -> Result<Vec<RuleCounter>, LabError> {
        validate::check_netns(&host.netns)?;
        let app = host.role.appliance().ok_or_else(|| LabError::NotAnAppliance { netns: host.netns.clone() })?;
        appliance::counters(self.sys(), host, app)
    }

    /// Sets `eth0` inside the host's namespace up or down (to simulate a failure).
    pub fn set_link(&self, host: &HostSpec, up: bool) -> Result<(), LabError> {
        validate::check_netns(&host.netns)?;
        let state = if up { "up" } else { "down" };
        self.sys().run(&["ip", "-n", &host.netns, "link", "set", "dev", NS_IFACE, state])?;
        Ok(())
    }

    /// Runs `argv` inside namespace `netns` and returns its output whatever its exit status.
    pub fn exec(&self, netns: &str, argv: &[&str]) -> Result<Output, LabError> {
        validate::check_netns(netns)?;
        let mut parts = vec!["ip", "netns", "exec", netns];
        parts.extend_from_slice(argv);
        self.sys().output(&parts)
    }
}
