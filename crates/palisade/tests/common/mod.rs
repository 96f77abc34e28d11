//! The lab test harness: the `palisade` CLI against a lab in a private directory.

#![allow(dead_code)] // each test binary uses its own part

use std::path::PathBuf;
use std::process::{Command, Output};

pub const URL: &str = "http://127.0.0.1:17683";

pub struct Env {
    pub dir: PathBuf,
}

impl Env {
    pub fn palisade(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["--url", URL, "--lab-dir"])
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

    /// Pings once from a lab host; returns the TTL seen, or None if no reply came.
    pub fn ping(&self, netns: &str, ip: &str) -> Option<u32> {
        let out = self.palisade(&["lab", "exec", netns, "--", "busybox", "ping", "-c", "1", "-W", "1", ip]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("ttl=").nth(1)?.split_whitespace().next()?.parse().ok()
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

/// True when running as root.
pub fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}
