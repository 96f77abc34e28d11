//! Removing a lab: taps and other processes in its namespaces, the bridge (with every flow
//! and group on it), the veths and the namespaces. Best effort: every object is tried, then
//! what is still there is reported.

use std::path::Path;

use crate::appliance::{self, TapFiles};
use crate::error::{LabError, TeardownFailure};
use crate::host::Changes;
use crate::spec::LabSpec;
use crate::sys::Sys;

struct Failures(Vec<TeardownFailure>);

impl Failures {
    fn record(&mut self, object: String, result: Result<(), LabError>) {
        if let Err(error) = result {
            self.0.push(TeardownFailure { object, error });
        }
    }

    fn has(&self, object: &str) -> bool {
        self.0.iter().any(|f| f.object == object)
    }

    fn still_there(&mut self, object: String) {
        if !self.has(&object) {
            let error = LabError::UnexpectedOutput {
                command: "lab teardown check".to_owned(),
                detail: format!("{object} still exists after teardown"),
            };
            self.0.push(TeardownFailure { object, error });
        }
    }
}

/// Tears the lab down; `spec` must already be validated.
pub fn down(sys: Sys<'_>, state_dir: &Path, spec: &LabSpec, ch: &mut Changes<'_>) -> Result<(), LabError> {
    let mut failures = Failures(Vec::new());

    for host in &spec.hosts {
        let r = appliance::stop_tap(sys, state_dir, &host.netns, ch).and_then(|()| {
            // A capture whose pid file was lost, or whose namespace was deleted under it.
            for pid in capture_pids(sys, state_dir, &host.netns)? {
                ch.note(format!("stopping unrecorded tap capture for {} (pid {pid})", host.netns));
                appliance::kill(sys, pid, "")?;
            }
            Ok(())
        });
        failures.record(format!("tap capture in {}", host.netns), r);
    }

    let netns = match sys.netns_list() {
        Ok(list) => list,
        Err(e) => {
            failures.record("namespace list".to_owned(), Err(e));
            spec.hosts.iter().map(|h| h.netns.clone()).collect()
        }
    };
    let present = |ns: &str| netns.iter().any(|n| n == ns);
    for host in spec.hosts.iter().filter(|h| present(&h.netns)) {
        let r = kill_netns_processes(sys, &host.netns, ch);
        failures.record(format!("processes in namespace {}", host.netns), r);
    }

    let bridge = format!("bridge {}", spec.bridge);
    let ovs = sys.ensure_ovs(&mut |m| ch.note(m.to_owned()));
    let r = ovs.and_then(|()| {
        if sys.bridge_exists(&spec.bridge)? {
            ch.note(format!("deleting bridge {} with its ports, flows and groups", spec.bridge));
            sys.ovs().del_bridge(&spec.bridge)?;
        }
        Ok(())
    });
    failures.record(bridge.clone(), r);

    match sys.links(None) {
        Ok(links) => {
            for host in &spec.hosts {
                let Some(link) = links.iter().find(|l| l.ifname == host.port) else {
                    continue;
                };
                let object = format!("veth {}", host.port);
                let r = if link.is_veth() {
                    ch.note(format!("deleting veth {}", host.port));
                    sys.run(&["ip", "link", "del", "dev", &host.port]).map(drop)
                } else {
                    Err(LabError::Conflict {
                        object: format!("interface {}", host.port),
                        reason: "it is not a veth, so the lab did not create it".to_owned(),
                    })
                };
                failures.record(object, r);
            }
        }
        Err(e) => failures.record("root namespace link list".to_owned(), Err(e)),
    }

    for host in spec.hosts.iter().filter(|h| present(&h.netns)) {
        ch.note(format!("deleting namespace {}", host.netns));
        let r = sys.run(&["ip", "netns", "del", &host.netns]).map(drop);
        failures.record(format!("namespace {}", host.netns), r);
    }

    verify_gone(sys, state_dir, spec, &bridge, &mut failures);
    if failures.0.is_empty() {
        Ok(())
    } else {
        Err(LabError::TeardownIncomplete { failures: failures.0 })
    }
}

/// Kills every process still running inside `netns` (a namespace with processes in it
/// outlives `ip netns del`).
fn kill_netns_processes(sys: Sys<'_>, netns: &str, ch: &mut Changes<'_>) -> Result<(), LabError> {
    let text = sys.run(&["ip", "netns", "pids", netns])?;
    for pid in parse_pids(&text, &format!("ip netns pids {netns}"))? {
        ch.note(format!("killing process {pid} in namespace {netns}"));
        appliance::kill(sys, pid, "")?;
    }
    Ok(())
}

/// Pids of processes whose command line names this appliance's pcap file.
fn capture_pids(sys: Sys<'_>, state_dir: &Path, netns: &str) -> Result<Vec<u32>, LabError> {
    let pcap = TapFiles::new(state_dir, netns).pcap.display().to_string();
    let pattern: String =
        pcap.chars().flat_map(|c| if ".[]()*+?{}|^$\\".contains(c) { vec!['\\', c] } else { vec![c] }).collect();
    let parts = ["pgrep", "-f", &pattern];
    let out = sys.output(&parts)?;
    // pgrep exits 1 when nothing matches.
    if out.status.code() == Some(1) {
        return Ok(Vec::new());
    }
    let text = String::from_utf8_lossy(&crate::runner::check(&crate::runner::argv(&parts), out)?.stdout).into_owned();
    parse_pids(&text, &format!("pgrep -f {pattern}"))
}

fn parse_pids(text: &str, command: &str) -> Result<Vec<u32>, LabError> {
    text.split_whitespace()
        .map(|p| {
            p.parse::<u32>().map_err(|e| LabError::UnexpectedOutput {
                command: command.to_owned(),
                detail: format!("{p:?} is not a pid: {e}"),
            })
        })
        .collect()
}

fn verify_gone(sys: Sys<'_>, state_dir: &Path, spec: &LabSpec, bridge: &str, failures: &mut Failures) {
    if let Ok(list) = sys.netns_list() {
        for host in spec.hosts.iter().filter(|h| list.contains(&h.netns)) {
            failures.still_there(format!("namespace {}", host.netns));
        }
    }
    if let Ok(links) = sys.links(None) {
        for host in spec.hosts.iter().filter(|h| links.iter().any(|l| l.ifname == h.port)) {
            failures.still_there(format!("veth {}", host.port));
        }
    }
    if let Ok(true) = sys.bridge_exists(&spec.bridge) {
        failures.still_there(bridge.to_owned());
    }
    for host in &spec.hosts {
        if let Ok(pids) = capture_pids(sys, state_dir, &host.netns) {
            for pid in pids {
                failures.still_there(format!("tap capture in {} (pid {pid})", host.netns));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_lists_parse_or_name_the_bad_token() {
        assert_eq!(parse_pids("12\n345\n", "x").expect("pids"), [12, 345]);
        assert!(parse_pids("", "x").expect("empty").is_empty());
        let err = parse_pids("12 abc", "ip netns pids n").expect_err("garbage");
        assert!(err.to_string().contains("\"abc\" is not a pid"), "{err}");
    }
}
