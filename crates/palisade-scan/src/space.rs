//! Task running spaces: a network namespace joined to the bridge by a veth (the `vport`).
//!
//! ```text
//!  root namespace                         task namespace <name>
//!  OVS bridge ── <name> (vport, VLAN 4094) ═veth═ eth0  vport.ip/32, MAC vport.mac
//!                                                      route vir.ip/32 dev eth0 (no default)
//! ```
//! The namespace and the switch end of the veth share one name derived from the task id. TX
//! checksum offload is off on both ends (the netdev datapath does not fill checksums in, so TCP
//! would fail). The switch end sits in a VLAN no tenant uses, so normal switching never floods
//! tenant traffic into a task space; the task's flows are its only way in or out.
//! Creation is all or nothing: whatever was made before a failing step is removed again.

use std::path::PathBuf;
use std::time::Instant;

use palisade_host::ToolError;
use palisade_ovs::Vsctl;
use tracing::{debug, warn};

use crate::netns::{run_in, NetnsError};
use crate::pool::TaskAddrs;
use crate::task::{Naming, TaskId};

/// The VLAN of task ports: outside the range tenants' segments use in the lab, never flooded to.
pub const TASK_PORT_VLAN: u16 = 4094;
/// The interface name inside a task namespace.
pub const TASK_IFACE: &str = "eth0";

/// Why a task space could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    /// A tool (`ip`, `ethtool`, `ovs-vsctl`) could not be run, or ran and failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// A space for this task exists already.
    #[error("a task space named {0} exists already")]
    Exists(String),
    /// The task namespace could not be entered.
    #[error("could not configure the task namespace")]
    Netns(#[from] NetnsError),
    /// The thread configuring the namespace panicked.
    #[error("the thread configuring the task namespace panicked")]
    Panicked,
}

/// Runs `ip -batch -` (with `flags` before `-batch`) on the commands in `batch`.
fn ip_batch(flags: &[&str], batch: &str) -> Result<(), ToolError> {
    let mut argv = vec!["ip"];
    argv.extend_from_slice(flags);
    argv.extend(["-batch", "-"]);
    palisade_host::run_with_input(&argv, Some(batch.as_bytes())).map(drop)
}

/// A live task space.
#[derive(Debug)]
pub struct TaskSpace {
    id: TaskId,
    name: String,
    bridge: String,
    addrs: TaskAddrs,
    removed: bool,
}

impl TaskSpace {
    /// Makes the space for task `id` on `bridge`, addressed with `addrs`. All or nothing.
    pub fn create(naming: &Naming, id: TaskId, addrs: TaskAddrs, bridge: &str) -> Result<Self, SpaceError> {
        let name = naming.name(id);
        if PathBuf::from("/run/netns").join(&name).exists() {
            return Err(SpaceError::Exists(name));
        }
        let started = Instant::now();
        let mut space = TaskSpace { id, name, bridge: bridge.to_owned(), addrs, removed: false };
        // On any error below, `space` is dropped, and Drop removes what was made.
        space.build()?;
        debug!(task = %id, name = %space.name, ms = started.elapsed().as_secs_f64() * 1e3, "task space created");
        Ok(space)
    }

    fn build(&mut self) -> Result<(), SpaceError> {
        let n = self.name.as_str();
        let (v, vir) = (self.addrs.vport, self.addrs.vir);
        // Few processes, as each costs milliseconds: one `ip` makes the namespace and the veth
        // (the task end already named, addressed by MAC and inside), one configures the inside.
        ip_batch(
            &[],
            &format!(
                "netns add {n}\nlink add {n} type veth peer name {TASK_IFACE} address {mac} netns {n}\nlink set {n} up\n",
                mac = v.mac
            ),
        )?;
        // TX checksum offload off where the task's own stack sends (its packets cross the
        // userspace datapath, which does not fill checksums in). The switch end needs nothing:
        // what OVS sends out of it is whole already.
        let inside = format!(
            "link set lo up\naddr add {ip}/32 dev {TASK_IFACE}\nlink set {TASK_IFACE} up\n\
             route add {vir}/32 dev {TASK_IFACE} src {ip}\n",
            ip = v.ip,
            vir = vir.ip
        );
        // The inside and the switch port do not depend on each other: both at once. One thread
        // enters the namespace and runs the tools there (its children inherit it), the other
        // adds the port. add-port waits for ovs-vswitchd, so the port has its OpenFlow number
        // when it returns; the task's flows take it from the switch's own port list.
        let netns = self.netns_path();
        let (inside, port) = std::thread::scope(|s| {
            let inside = s.spawn(move || {
                run_in(&netns, move || -> Result<(), SpaceError> {
                    let offload =
                        std::thread::spawn(|| palisade_host::run(&["ethtool", "-K", TASK_IFACE, "tx", "off"]));
                    let addressed = ip_batch(&[], &inside);
                    offload.join().map_err(|_| SpaceError::Panicked)??;
                    Ok(addressed?)
                })
            });
            let port = Vsctl::system().create_access_port(&self.bridge, n, TASK_PORT_VLAN);
            (inside.join(), port)
        });
        match inside {
            Ok(result) => result??,
            Err(_) => return Err(SpaceError::Panicked),
        }
        port?;
        Ok(())
    }

    /// The task.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The namespace's (and the vport's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`, for `setns`.
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// The space's addresses.
    pub fn addrs(&self) -> &TaskAddrs {
        &self.addrs
    }

    /// Removes the space: the OVS port, the veth and the namespace.
    pub fn remove(mut self) -> Result<(), SpaceError> {
        self.removed = true;
        remove_named(&self.bridge, &self.name)
    }
}

impl Drop for TaskSpace {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = remove_named(&self.bridge, &self.name) {
                warn!(name = %self.name, error = %e, "could not remove task space");
            }
        }
    }
}

/// Removes whatever exists of the space `name`: OVS port, veth, namespace. Absent parts are
/// fine. Deleting the namespace destroys the veth pair; OVS is not waited for (`--no-wait`):
/// the port record is gone at once and the datapath follows.
fn remove_named(bridge: &str, name: &str) -> Result<(), SpaceError> {
    let port = Vsctl::system().del_port_no_wait(bridge, name);
    // Deleting the veth's root end removes both ends at once; then the namespace. One process.
    let mut batch = String::new();
    if PathBuf::from("/sys/class/net").join(name).exists() {
        batch.push_str(&format!("link del {name}\n"));
    }
    if PathBuf::from("/run/netns").join(name).exists() {
        batch.push_str(&format!("netns del {name}\n"));
    }
    if !batch.is_empty() {
        ip_batch(&["-force"], &batch)?;
    }
    Ok(port?)
}

/// Removes every task space left by an engine that died (namespaces and ports named by
/// `naming`). Returns their names.
pub fn purge_orphans(naming: &Naming, bridge: &str) -> Result<Vec<String>, SpaceError> {
    let netns = palisade_host::run(&["ip", "netns", "list"])?;
    let mut names: Vec<String> = String::from_utf8_lossy(&netns.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| naming.parse(n).is_some())
        .map(str::to_owned)
        .collect();
    // No bridge (or no switch) means no ports to find; the namespaces are still purged.
    let ports = Vsctl::system().ports(bridge).unwrap_or_default();
    names.extend(ports.iter().map(|p| p.trim()).filter(|n| naming.parse(n).is_some()).map(str::to_owned));
    names.sort();
    names.dedup();
    for n in &names {
        remove_named(bridge, n)?;
    }
    Ok(names)
}
