//! Type 2 access in the real lab (issue #7): `palisade scan run` reaches each tenant's web1 —
//! the same IP in both tenants — through a task space, finds that tenant's open port only,
//! and leaves no task namespace, port or flow; the other hosts capture no task packet.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

use common::{is_root, Env};
use palisade_testkit::Capture;
use serde_json::Value;

/// The scan task address pool (the lab's default): what the bystanders' captures look for.
const POOL: &str = "net 100.64.0.0/10";

/// A TCP listener inside a lab VM's namespace (opened there from this process) that accepts forever.
fn listen(netns: &str, port: u16) {
    let path = PathBuf::from("/run/netns").join(netns);
    let listener = palisade_host::netns::run_in(&path, move || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))
        .expect("enter the VM's namespace")
        .expect("bind");
    std::thread::spawn(move || for _ in listener.incoming() {});
}

fn open_ports(task: &Value) -> Vec<u64> {
    task["open"].as_array().expect("open").iter().map(|p| p["port"].as_u64().expect("port")).collect()
}

fn token(env: &Env, who: &str) -> String {
    palisade_client::lab::LabHome::new(env.dir.clone()).token(who).expect("lab token")
}

#[test]
fn scans_reach_each_tenants_own_vm_through_task_spaces() {
    assert!(is_root(), "this test needs root (CI runs as root)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let env = Env::new("s", 17702, tmp.path().join("lab"));
    let _ = env.palisade(&["lab", "down"]);
    env.up();

    // alpha/web1 and beta/web1 are both 198.18.1.10; each listens on its own port.
    listen(&env.ns("alpha-web1"), 8081);
    listen(&env.ns("beta-web1"), 8082);
    let bystanders: Vec<Capture> = ["pa-web2", "pg-alpha-web", "pg-beta-web", "pa-fw1"]
        .iter()
        .map(|p| Capture::start(tmp.path(), &env.iface(p), POOL))
        .collect();
    // beta/web2 is a bystander until beta's subdomain policy is run below (it targets web2 too).
    let beta_web2 = Capture::start(tmp.path(), &env.iface("pb-web2"), POOL);

    // Both tenants scanned at once, each with its own token.
    let (alpha_token, beta_token) = (token(&env, "alpha"), token(&env, "beta"));
    let scan = |who: &str, tok: &str| -> Value {
        let out = env.ok(&["--token", tok, "scan", "run", "--target", who, "--tcp", "22,80,8081,8082", "-o", "json"]);
        serde_json::from_str(&out).expect("json")
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| scan("alpha/web1", &alpha_token));
        let b = s.spawn(|| scan("beta/web1", &beta_token));
        (a.join().expect("alpha scan"), b.join().expect("beta scan"))
    });
    assert_eq!(a["state"], "done", "{a}");
    assert_eq!(open_ports(&a), vec![8081], "alpha's scan finds alpha's port only: {a}");
    assert_eq!(open_ports(&b), vec![8082], "beta's scan finds beta's port only: {b}");
    println!("scan tasks took {} ms and {} ms", a["duration_ms"], b["duration_ms"]);

    // Late packets: with the tasks' flows gone, the VMs still send to task addresses (as a late
    // FIN retransmission would). They follow the VMs' default route unless the switch drops
    // them; the gateways' captures below fail the test if one arrives.
    for vm in ["alpha-web1", "beta-web1"] {
        for ip in ["100.64.0.1", "100.64.0.2", "100.64.0.3", "100.64.0.4"] {
            let out = env.palisade(&["lab", "exec", &env.ns(vm), "--", "busybox", "ping", "-c", "1", "-W", "1", ip]);
            assert!(!out.status.success(), "{vm} got an answer from task address {ip} after its task ended");
        }
    }
    for cap in &bystanders {
        let seen = cap.seen(&[]);
        assert!(seen.is_empty(), "{} saw a VM's late packets to the scan pool: {seen:?}", cap.port);
    }

    // A tenant cannot scan another tenant's VM, and sees only its own tasks.
    let out = env.palisade(&["--token", &alpha_token, "scan", "run", "--target", "beta/web1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vm beta/web1 not found"), "{out:?}");
    let tasks: Value =
        serde_json::from_str(&env.ok(&["--token", &beta_token, "scan", "tasks", "-o", "json"])).expect("json");
    let targets: Vec<&str> = tasks.as_array().expect("tasks").iter().filter_map(|t| t["target"].as_str()).collect();
    assert_eq!(targets, vec!["beta/web1"]);

    // A second scan of alpha/web1 compares with the first: nothing opened or closed.
    let again = scan("alpha/web1", &alpha_token);
    let (from, to) = (a["id"].to_string(), again["id"].to_string());
    let d: Value = serde_json::from_str(&env.ok(&["--token", &alpha_token, "scan", "diff", &from, &to, "-o", "json"]))
        .expect("json");
    assert_eq!((d["opened"].as_array().map(Vec::len), d["closed"].as_array().map(Vec::len)), (Some(0), Some(0)), "{d}");

    // examples/scan.yaml: alpha's policy (every 1h) runs at once by itself; beta's (cron, 03:00) does not.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scan.yaml");
    let applied = env.ok(&["apply", "-f", &examples.display().to_string()]);
    assert!(applied.contains("create    policy alpha/web-ports"), "{applied}");
    let scheduled = (0..40).find_map(|_| {
        let tasks: Value =
            serde_json::from_str(&env.ok(&["--token", &alpha_token, "scan", "tasks", "-o", "json"])).expect("json");
        let found = tasks
            .as_array()
            .expect("tasks")
            .iter()
            .find(|t| t["id"].as_u64() > again["id"].as_u64() && t["state"] != "running")
            .cloned();
        if found.is_none() {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        found
    });
    let scheduled = scheduled.expect("the scheduled alpha scan ran within 20 s");
    assert_eq!((scheduled["target"].as_str(), open_ports(&scheduled)), (Some("alpha/web1"), vec![8081]), "{scheduled}");

    let seen = beta_web2.stop(&[]);
    assert!(seen.is_empty(), "pb-web2 saw task traffic before any task targeted it: {seen:?}");
    // Run beta's policy now: it targets beta's subdomain `web`, so one task per VM there.
    let run: Value =
        serde_json::from_str(&env.ok(&["--token", &beta_token, "scan", "policy", "beta/web-ports", "-o", "json"]))
            .expect("json");
    let mut by_target: Vec<(String, Vec<u64>)> = run
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| (t["target"].as_str().unwrap_or("").to_owned(), open_ports(t)))
        .collect();
    by_target.sort();
    assert_eq!(
        by_target,
        vec![("beta/web1".to_owned(), vec![8082]), ("beta/web2".to_owned(), vec![])],
        "one task per VM of beta/web: {run}"
    );
    let out = env.palisade(&["--token", &alpha_token, "scan", "policy", "beta/web-ports"]);
    assert!(!out.status.success(), "alpha cannot run beta's policy");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"), "{out:?}");

    env.ok(&["delete", "policy", "alpha/web-ports"]);
    env.ok(&["delete", "policy", "beta/web-ports"]);

    // The controller killed mid-scan: its task space and flows are orphans until the restart
    // removes them and marks the task failed.
    let mut long = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["--url", &env.url(), "--lab-dir"])
        .arg(&env.dir)
        .args([
            "--token",
            &alpha_token,
            "scan",
            "run",
            "--target",
            "alpha/web1",
            "--tcp",
            "1-65535",
            "--concurrency",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("palisade runs");
    let task_prefix = env.task_prefix();
    let task_spaces = || -> Vec<String> {
        let out = Command::new("ip").args(["netns", "list"]).output().expect("ip");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(&task_prefix))
            .map(str::to_owned)
            .collect()
    };
    for _ in 0..50 {
        if !task_spaces().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!task_spaces().is_empty(), "the long scan's task space appeared");
    let pid = std::fs::read_to_string(env.dir.join("palisaded.pid")).expect("pid file");
    assert!(Command::new("kill").args(["-9", pid.trim()]).status().expect("kill").success());
    let _ = long.wait();
    assert!(!task_spaces().is_empty(), "the killed controller left its task space behind");
    env.ok(&["lab", "up"]);
    assert!(task_spaces().is_empty(), "the restarted controller removed the orphaned task space");
    let tasks: Value =
        serde_json::from_str(&env.ok(&["--token", &alpha_token, "scan", "tasks", "-o", "json"])).expect("json");
    let cut = tasks.as_array().expect("tasks").last().expect("the cut task").clone();
    assert_eq!(cut["state"], "failed", "{cut}");
    assert!(cut["reason"].as_str().unwrap_or("").starts_with("the scan engine stopped while the task ran"), "{cut}");

    // No other host saw a packet from a task space.
    for cap in bystanders {
        let port = cap.port.clone();
        let packets = cap.stop(&[]);
        assert!(packets.is_empty(), "{port} saw task traffic: {packets:?}");
    }
    // Nothing of the tasks remains: namespaces, ports, flows.
    assert!(task_spaces().is_empty());
    assert!(!env.ports().iter().any(|l| l.starts_with(&task_prefix)));
    let flows = env.dump_flows();
    assert!(!flows.contains("cookie=0x5a1510") && !flows.contains("cookie=0x5a1511"), "task flows remain:\n{flows}");

    env.ok(&["lab", "down"]);
}
