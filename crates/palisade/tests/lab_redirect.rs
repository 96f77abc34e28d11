//! Type 1 redirection with real traffic in the lab: real OVS, namespaces, nftables (issue #2).
//!
//! The lab's namespaces have fixed names, so the whole story runs as one test, step by step.

use std::path::Path;
use std::process::Command;

mod common;

use common::{is_root, Env};

fn set_link(netns: &str, up: bool) {
    let st = Command::new("ip")
        .args(["-n", netns, "link", "set", "eth0", if up { "up" } else { "down" }])
        .status()
        .expect("ip runs");
    assert!(st.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

/// How long the oldest redirect flow has been installed, in seconds.
fn redirect_age(dump: &str) -> f64 {
    dump.lines()
        .filter(|l| l.contains("priority=1100"))
        .filter_map(|l| l.split("duration=").nth(1)?.split('s').next()?.parse::<f64>().ok())
        .fold(0.0, f64::max)
}

#[test]
fn redirect_through_appliance_in_the_lab() {
    assert!(is_root(), "this test needs root (CI runs as root)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let env = Env::new("r", 17701, tmp.path().join("lab"));
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let redirect = examples.join("redirect.yaml").display().to_string();
    let _ = env.palisade(&["lab", "down"]);

    // Up, twice: idempotent.
    env.up();
    env.up();

    // Before any policy: direct path (TTL 64), both tenants, same addresses.
    assert_eq!(env.ping("alpha-web1", "198.18.1.20"), Some(64));
    assert_eq!(env.ping("beta-web1", "198.18.1.20"), Some(64));

    // A diff changes nothing.
    let diff = env.ok(&["diff", "-f", &redirect]);
    assert!(diff.contains("create    policy alpha/web1-to-web2-via-fw"), "{diff}");
    assert!(diff.contains("(dry run: nothing changed)"));
    assert_eq!(env.ping("alpha-web1", "198.18.1.20"), Some(64));

    // Apply: matched traffic crosses the appliance (TTL 63, counters grow).
    let before = env.counter("icmp");
    env.ok(&["apply", "-f", &redirect]);
    assert_eq!(env.ping("alpha-web1", "198.18.1.20"), Some(63));
    assert!(env.counter("icmp") >= before + 2, "request and reply cross the firewall");
    // Applying again changes nothing.
    assert!(env.ok(&["apply", "-f", &redirect]).contains("unchanged policy alpha/web1-to-web2-via-fw"));

    // Unmatched traffic does not cross it: web1 -> gateway, and the other tenant with the same IPs.
    let counted = env.counter("forwarded");
    assert_eq!(env.ping("alpha-web1", "198.18.1.1"), Some(64));
    assert_eq!(env.ping("beta-web1", "198.18.1.20"), Some(64));
    assert_eq!(env.counter("forwarded"), counted);

    // A bad file is rejected with file:line and changes nothing.
    let bad = write(tmp.path(), "bad.yaml", "policies:\n  - name: x\n    tenant: alpha\n    redirect:\n      destination: { vm: web2 }\n      appliance: fw1\n      fail_mode: sometimes\n");
    let out = env.palisade(&["apply", "-f", &bad]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:7:"), "{err}");
    assert_eq!(env.ping("alpha-web1", "198.18.1.20"), Some(63));

    // Controller killed with -9 and restarted: flows stay (counters not reset), traffic flows.
    let pid = std::fs::read_to_string(env.dir.join("palisaded.pid")).expect("pid file");
    let age = redirect_age(&env.dump_flows());
    assert!(age > 0.0);
    assert!(Command::new("kill").args(["-9", pid.trim()]).status().expect("kill").success());
    assert_eq!(env.ping("alpha-web1", "198.18.1.20"), Some(63), "datapath keeps working without the controller");
    env.ok(&["lab", "up"]); // the lab directory knows its bridge and prefix
    assert!(redirect_age(&env.dump_flows()) >= age, "redirect flows were re-added on restart");

    // Appliance down: `closed` drops, `open` bypasses; back up: redirected again.
    set_link(&env.ns("fw1"), false);
    assert_eq!(env.ping("alpha-web1", "198.18.1.20"), None);
    let open = write(
        tmp.path(),
        "open.yaml",
        &std::fs::read_to_string(&redirect).expect("read").replace("fail_mode: closed", "fail_mode: open"),
    );
    env.ok(&["apply", "-f", &open]);
    assert_eq!(env.ping("alpha-web1", "198.18.1.20"), Some(64));
    set_link(&env.ns("fw1"), true);
    assert_eq!(env.ping("alpha-web1", "198.18.1.20"), Some(63));

    // Deleting the policy restores the direct path.
    env.ok(&["delete", "policy", "alpha/web1-to-web2-via-fw"]);
    assert_eq!(env.ping("alpha-web1", "198.18.1.20"), Some(64));

    // Down leaves nothing behind.
    env.ok(&["lab", "down"]);
    let netns =
        String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().expect("ip").stdout).into_owned();
    assert!(!netns.contains(&env.ns("")), "namespaces left: {netns}");
    let links =
        String::from_utf8_lossy(&Command::new("ip").args(["-o", "link"]).output().expect("ip").stdout).into_owned();
    assert!(!links.contains(&format!(": {}", env.prefix())), "veths left: {links}");
    let br = Command::new("ovs-vsctl").args(["br-exists", &env.bridge()]).status().expect("ovs-vsctl");
    assert_eq!(br.code(), Some(2), "bridge left behind");
    // This lab's controller, not any other on the machine.
    let ours = format!("palisaded --db {}", env.dir.join("palisade.db").display());
    assert!(!Command::new("pgrep").args(["-f", &ours]).status().expect("pgrep").success(), "palisaded left running");
    assert!(!env.dir.exists());
}
