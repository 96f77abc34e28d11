//! Port plumbing through `ovs-vsctl`: bridges, their ports, VLAN tags — the one place Palisade
//! changes Open vSwitch's database (flows and groups go through [`crate::Switch`]). Commands run
//! through a [`CommandRunner`], so callers' unit tests can script them.

use palisade_host::{argv, check, CommandRunner, SystemRunner, ToolError};

/// How long an `ovs-vsctl` call may wait for the database.
pub const TIMEOUT: &str = "--timeout=10";

/// `ovs-vsctl` over a runner.
#[derive(Debug, Clone, Copy)]
pub struct Vsctl<'a> {
    runner: &'a dyn CommandRunner,
}

impl<'a> Vsctl<'a> {
    /// `ovs-vsctl` run by `runner`.
    pub fn new(runner: &'a dyn CommandRunner) -> Self {
        Vsctl { runner }
    }

    /// `ovs-vsctl` on this machine.
    pub fn system() -> Vsctl<'static> {
        Vsctl { runner: &SystemRunner }
    }

    fn line(args: &[&str]) -> Vec<String> {
        let mut parts = vec!["ovs-vsctl", TIMEOUT];
        parts.extend_from_slice(args);
        argv(&parts)
    }

    /// Runs `ovs-vsctl --timeout=10 ARGS`, which must succeed; returns its stdout.
    pub fn run(&self, args: &[&str]) -> Result<String, ToolError> {
        let cmd = Self::line(args);
        let out = check(&cmd, self.runner.output(&cmd, None)?)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether there is a bridge called `bridge`.
    pub fn bridge_exists(&self, bridge: &str) -> Result<bool, ToolError> {
        let cmd = Self::line(&["br-exists", bridge]);
        let out = self.runner.output(&cmd, None)?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(2) => Ok(false),
            _ => check(&cmd, out).map(|_| false),
        }
    }

    /// The ports of `bridge` (which must exist).
    pub fn ports(&self, bridge: &str) -> Result<Vec<String>, ToolError> {
        Ok(self.run(&["list-ports", bridge])?.lines().map(str::to_owned).collect())
    }

    /// Puts interface `port` on `bridge` as an access port of `vlan` (it may be there already).
    pub fn add_access_port(&self, bridge: &str, port: &str, vlan: u16) -> Result<(), ToolError> {
        let tag = format!("tag={vlan}");
        self.run(&["--may-exist", "add-port", bridge, port, "--", "set", "port", port, &tag]).map(drop)
    }

    /// Adds interface `port` to `bridge` as an access port of `vlan`; fails if a port of that
    /// name exists (on any bridge). Returns once ovs-vswitchd has the port, so it has its
    /// OpenFlow number.
    pub fn create_access_port(&self, bridge: &str, port: &str, vlan: u16) -> Result<(), ToolError> {
        self.run(&["add-port", bridge, port, &format!("tag={vlan}")]).map(drop)
    }

    /// Makes `port` an access port of `vlan`.
    pub fn set_vlan(&self, port: &str, vlan: u16) -> Result<(), ToolError> {
        self.run(&["set", "port", port, &format!("tag={vlan}")]).map(drop)
    }

    /// Takes `port` off `bridge` (absent is fine).
    pub fn del_port(&self, bridge: &str, port: &str) -> Result<(), ToolError> {
        self.run(&["--if-exists", "del-port", bridge, port]).map(drop)
    }

    /// Takes `port` off `bridge` (absent is fine) without waiting for ovs-vswitchd: the port
    /// record is gone at once and the datapath follows.
    pub fn del_port_no_wait(&self, bridge: &str, port: &str) -> Result<(), ToolError> {
        self.run(&["--no-wait", "--if-exists", "del-port", bridge, port]).map(drop)
    }

    /// Removes `bridge` with its ports (absent is fine).
    pub fn del_bridge(&self, bridge: &str) -> Result<(), ToolError> {
        self.run(&["--if-exists", "del-br", bridge]).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::{ExitStatus, Output};
    use std::sync::Mutex;

    use super::*;

    /// Answers every command with `code` and records it.
    #[derive(Debug, Default)]
    struct Record(Mutex<Vec<String>>, i32);

    impl CommandRunner for Record {
        fn output(&self, argv: &[String], _stdin: Option<&[u8]>) -> Result<Output, ToolError> {
            self.0.lock().unwrap().push(argv.join(" "));
            Ok(Output { status: ExitStatus::from_raw(self.1 << 8), stdout: b"p1\np2\n".to_vec(), stderr: Vec::new() })
        }
        fn spawn_detached(&self, _argv: &[String], _log: &std::path::Path) -> Result<u32, ToolError> {
            Ok(1)
        }
        fn process_alive(&self, _pid: u32, _needle: &str) -> bool {
            false
        }
    }

    #[test]
    fn commands_are_the_ones_ovs_expects() {
        let r = Record::default();
        let v = Vsctl::new(&r);
        v.add_access_port("br0", "pa-web1", 101).unwrap();
        v.create_access_port("br0", "pst-1", 4094).unwrap();
        v.set_vlan("pa-web1", 102).unwrap();
        v.del_port("br0", "pa-web1").unwrap();
        v.del_port_no_wait("br0", "pst-1").unwrap();
        v.del_bridge("br0").unwrap();
        assert_eq!(v.ports("br0").unwrap(), ["p1", "p2"]);
        assert_eq!(
            *r.0.lock().unwrap(),
            [
                "ovs-vsctl --timeout=10 --may-exist add-port br0 pa-web1 -- set port pa-web1 tag=101",
                "ovs-vsctl --timeout=10 add-port br0 pst-1 tag=4094",
                "ovs-vsctl --timeout=10 set port pa-web1 tag=102",
                "ovs-vsctl --timeout=10 --if-exists del-port br0 pa-web1",
                "ovs-vsctl --timeout=10 --no-wait --if-exists del-port br0 pst-1",
                "ovs-vsctl --timeout=10 --if-exists del-br br0",
                "ovs-vsctl --timeout=10 list-ports br0",
            ]
        );
    }

    #[test]
    fn br_exists_reads_its_exit_status() {
        assert!(Vsctl::new(&Record(Mutex::default(), 0)).bridge_exists("b").unwrap());
        assert!(!Vsctl::new(&Record(Mutex::default(), 2)).bridge_exists("b").unwrap());
        let err = Vsctl::new(&Record(Mutex::default(), 1)).bridge_exists("b").unwrap_err();
        assert!(matches!(err, ToolError::Failed { .. }), "{err}");
    }
}
