//! Agentless monitoring end to end on the lab (issue #5): `apply guest.yaml`, then
//! `apply monitor.yaml` makes the controller inject the monitor into guest1's running kernel;
//! the guest's workload (`LAB_WORKLOAD`: every second `cat /etc/hosts`, `cat /etc/passwd`, a
//! write of /root/note) shows `cat /etc/hosts` refused with "Operation not permitted" and
//! `palisade vmi events` has the block event and record events under /etc/ and /root/;
//! re-applying the policy with `record` lets the read through live (no re-injection) and a `pass`
//! rule put first shadows the record rule; hooking one more call re-injects; deleting the policy
//! stops the events.
//!
//! The lab's namespaces have fixed names, so the whole story runs as one test, step by step.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{is_root, Env};
use serde_json::Value;

fn guest(env: &Env) -> Value {
    let v: Value = serde_json::from_str(&env.ok(&["vmi", "guests", "-o", "json"])).expect("json");
    v.as_array().and_then(|a| a.iter().find(|g| g["vm"] == "alpha/guest1")).cloned().unwrap_or(Value::Null)
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> Option<Value>) -> (Value, Duration) {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return (v, start.elapsed());
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn events(env: &Env) -> Value {
    serde_json::from_str(&env.ok(&["vmi", "events", "--vm", "guest1", "-o", "json"])).expect("json")
}

fn find(page: &Value, after: u64, f: impl Fn(&Value) -> bool) -> Option<&Value> {
    page["events"].as_array()?.iter().find(|e| e["seq"].as_u64() > Some(after) && f(e))
}

/// Everything the guest wrote on its console, from its run directory.
fn console(env: &Env) -> String {
    let prefix = format!("palisade-guest-{}-alpha-guest1-", env.bridge());
    let dir = std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)));
    let Some(dir) = dir else { return String::new() };
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with("ttyS1"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

/// The first `n` events numbered above `after` that `palisade vmi events --follow -o json`
/// prints as JSON lines (then stops it): events that arrive while it follows.
fn follow(env: &Env, after: u64, n: usize) -> Vec<Value> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["--url", &env.url(), "--lab-dir"])
        .arg(&env.dir)
        .args(["vmi", "events", "--vm", "guest1", "--follow", "-o", "json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("palisade runs");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut out = Vec::new();
    while out.len() < n {
        let line = rx.recv_timeout(Duration::from_secs(10)).expect("--follow printed a line within 10 s");
        let e: Value = serde_json::from_str(&line).expect("a JSON line");
        if e["seq"].as_u64() > Some(after) {
            out.push(e);
        }
    }
    child.kill().expect("stop --follow");
    let _ = child.wait();
    out
}

#[test]
fn monitor_policy_blocks_records_switches_live_and_stops_on_delete() {
    assert!(is_root(), "this test needs root (CI runs as root)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let env = Env::new("m", 17704, tmp.path().join("lab"));
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let guest_yaml = examples.join("guest.yaml").display().to_string();
    let monitor_text = std::fs::read_to_string(examples.join("monitor.yaml")).expect("monitor.yaml");
    let _ = env.palisade(&["lab", "down"]);
    env.up();
    env.ok(&["apply", "-f", &guest_yaml]);
    let (_, booted) = wait_for("guest1 running", Duration::from_secs(300), || {
        let g = guest(&env);
        assert_ne!(g["state"], "failed", "{g}");
        (g["state"] == "running").then_some(g)
    });
    println!("guest1 running after {booted:?}");

    // Applying the policy injects the monitor; the reply no longer says "not enforced".
    let monitor_yaml = examples.join("monitor.yaml").display().to_string();
    let out = env.ok(&["apply", "-f", &monitor_yaml, "-o", "json"]);
    assert!(!out.contains("not enforced"), "{out}");
    let (g, took) = wait_for("the monitor to be active", Duration::from_secs(300), || {
        let g = guest(&env);
        assert_ne!(g["monitor"]["state"], "failed", "{g}");
        (g["monitor"]["state"] == "active").then_some(g)
    });
    println!("monitor active after {took:?}: {}", g["monitor"]);
    assert_eq!(g["monitor"]["syscalls"], serde_json::json!(["read", "write", "close", "openat"]));

    // Block: cat cannot open /etc/hosts (the guest says so); reads under /etc/ are recorded.
    let (page, _) = wait_for("block and record events", Duration::from_secs(30), || {
        let page = events(&env);
        let blocked = find(&page, 0, |e| {
            e["action"] == "block" && e["path"] == "/etc/hosts" && e["process"] == "cat" && e["operation"] == "openat"
        })
        .is_some();
        let recorded = find(&page, 0, |e| e["action"] == "record" && e["path"] == "/etc/passwd").is_some();
        let note = find(&page, 0, |e| e["action"] == "record" && e["path"] == "/root/note").is_some();
        (blocked && recorded && note).then_some(page)
    });
    let text = env.ok(&["vmi", "events", "--vm", "guest1"]);
    assert!(text.contains("pathname: [/etc/hosts], operation: [OPENAT], process name: [cat]"), "{text}");
    let (_, _) = wait_for("the refusal on the console", Duration::from_secs(10), || {
        console(&env).contains("can't open '/etc/hosts': Operation not permitted").then_some(Value::Null)
    });
    assert_eq!(page["lost"], 0);
    let followed = follow(&env, page["last_seq"].as_u64().expect("last_seq"), 3);
    assert!(followed.windows(2).all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()), "{followed:?}");
    let stream = std::fs::read_to_string(env.dir.join("events.jsonl")).expect("events file");
    let first: Value = serde_json::from_str(stream.lines().next().expect("a line")).expect("json line");
    for field in ["time", "vm", "index", "operation", "file_name", "path", "process", "pid", "uid", "action"] {
        assert!(first.get(field).is_some(), "no {field} in {first}");
    }

    // Switch the rule to record, and put a pass rule for `cat /etc/passwd` first (it shadows the
    // /etc/ record rule): live, within a second or two, without a new injection.
    let last = events(&env)["last_seq"].as_u64().expect("last_seq");
    let switched = tmp.path().join("monitor-record.yaml");
    let record_text = monitor_text.replace("action: block", "action: record").replace(
        "        - { subject: cat, object: /etc/hosts",
        "        - { subject: cat, object: /etc/passwd, action: pass }\n        - { subject: cat, object: /etc/hosts",
    );
    assert!(record_text.contains("action: pass }"), "{record_text}");
    std::fs::write(&switched, &record_text).expect("write");
    let t = Instant::now();
    env.ok(&["apply", "-f", &switched.display().to_string()]);
    let (first, _) = wait_for("a record event for cat /etc/hosts", Duration::from_secs(10), || {
        let page = events(&env);
        find(&page, last, |e| e["action"] == "record" && e["path"] == "/etc/hosts" && e["process"] == "cat").cloned()
    });
    let took = t.elapsed();
    println!("block -> record: first record event {took:?} after apply");
    assert!(took < Duration::from_secs(5), "the switch took {took:?}");
    let g = guest(&env);
    assert_eq!(g["monitor"]["state"], "active", "{g}");
    assert_eq!(g["monitor"]["rules"], 4, "{g}");
    // Once the new rules decide, cat's /etc/passwd opens match the pass rule: no events.
    std::thread::sleep(Duration::from_secs(3));
    let page = events(&env);
    let after_switch = first["seq"].as_u64().expect("seq");
    assert!(find(&page, after_switch, |e| e["path"] == "/etc/hosts").is_some(), "reads of /etc/hosts go on");
    let shadowed = find(&page, after_switch, |e| e["path"] == "/etc/passwd" && e["process"] == "cat");
    assert!(shadowed.is_none(), "a pass rule did not shadow the record rule: {shadowed:?}");

    // Hooking another system call re-injects (unhook, inject again); events go on.
    let more = tmp.path().join("monitor-more.yaml");
    std::fs::write(
        &more,
        record_text.replace("[openat, read, write, close]", "[openat, read, write, close, unlinkat]"),
    )
    .expect("write");
    let before = events(&env)["last_seq"].as_u64().expect("last_seq");
    env.ok(&["apply", "-f", &more.display().to_string()]);
    let (g, took) = wait_for("the monitor re-injected with unlinkat", Duration::from_secs(120), || {
        let g = guest(&env);
        assert_ne!(g["monitor"]["state"], "failed", "{g}");
        let hooked = g["monitor"]["syscalls"].as_array().is_some_and(|a| a.iter().any(|s| s == "unlinkat"));
        (hooked && g["monitor"]["state"] == "active").then_some(g)
    });
    println!("re-injected after {took:?}: {}", g["monitor"]);
    wait_for("events after re-injection", Duration::from_secs(10), || {
        find(&events(&env), before, |e| e["path"] == "/etc/hosts").map(|_| Value::Null)
    });

    // Deleting the policy unhooks: no new events.
    env.ok(&["delete", "policy", "alpha/watch-files"]);
    std::thread::sleep(Duration::from_secs(3));
    let before = events(&env)["last_seq"].as_u64().expect("last_seq");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(events(&env)["last_seq"].as_u64(), Some(before), "events after the policy was deleted");
    assert!(guest(&env)["monitor"].is_null());
    assert_eq!(guest(&env)["state"], "running", "the guest keeps running after unhooking");

    env.ok(&["lab", "down"]);
}
