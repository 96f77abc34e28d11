//! The lab test harness: the `palisade` CLI against a lab in a private directory.

#![allow(dead_code)] // each test binary uses its own part

use std::path::PathBuf;
use std::process::{Command, Output};

/// A lab of the test suite's own: its bridge, names, API port and directory are distinct per
/// test binary and from the default lab (`palisade0`, `pal-...`, port 7683), so the tests never
/// touch a lab a user has running.
pub struct Env {
    pub dir: PathBuf,
    /// One or two characters naming this test binary's lab.
    pub tag: &'static str,
    /// The lab controller's API port.
    pub api_port: u16,
}

impl Env {
    /// The lab `tag` (1-2 of [a-z0-9]) in `dir`, its controller on `api_port`.
    pub fn new(tag: &'static str, api_port: u16, dir: PathBuf) -> Env {
        Env { dir, tag, api_port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    pub fn bridge(&self) -> String {
        format!("paltest-{}", self.tag)
    }

    /// The lab's port-name prefix.
    pub fn prefix(&self) -> String {
        format!("t{}", self.tag)
    }

    /// The namespace of lab host `host` (`alpha-web1`, `fw1`).
    pub fn ns(&self, host: &str) -> String {
        format!("pal-{}-{host}", self.prefix())
    }

    /// The interface of inventory port `port` (`pa-web1`).
    pub fn iface(&self, port: &str) -> String {
        format!("{}{port}", self.prefix())
    }

    /// The start of the lab controller's scan task-space names.
    pub fn task_prefix(&self) -> String {
        format!("p{}t-", self.prefix())
    }

    /// `palisade lab up` for this lab.
    pub fn up(&self) -> String {
        let (bridge, prefix) = (self.bridge(), self.prefix());
        self.ok(&["lab", "up", "--bridge", &bridge, "--prefix", &prefix])
    }

    pub fn palisade(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["--url", &self.url(), "--lab-dir"])
            .arg(&self.dir)
            .args(args)
            .output()
            .expect("palisade runs")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.palisade(args);
        assert!(
            out.status.success(),
            "palisade {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Pings once from a lab host (`alpha-web1`); returns the TTL seen, or None if no reply came.
    pub fn ping(&self, host: &str, ip: &str) -> Option<u32> {
        let out = self.palisade(&["lab", "exec", &self.ns(host), "--", "busybox", "ping", "-c", "1", "-W", "1", ip]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("ttl=").nth(1)?.split_whitespace().next()?.parse().ok()
    }

    /// The switch's flows, as `ovs-ofctl dump-flows` prints them.
    pub fn dump_flows(&self) -> String {
        let out = Command::new("ovs-ofctl")
            .args(["-O", "OpenFlow14", "dump-flows", &self.bridge()])
            .output()
            .expect("ovs-ofctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The bridge's ports.
    pub fn ports(&self) -> Vec<String> {
        let out = Command::new("ovs-vsctl").args(["list-ports", &self.bridge()]).output().expect("ovs-vsctl");
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
    }

    pub fn counter(&self, rule: &str) -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&["lab", "counters", "fw1", "-o", "json"])).expect("json");
        v.as_array()
            .expect("array")
            .iter()
            .find(|c| c["rule"] == rule)
            .and_then(|c| c["packets"].as_u64())
            .expect("counter exists")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.palisade(&["lab", "down"]);
    }
}

pub use palisade_testkit::is_root;
