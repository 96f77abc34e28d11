//! Type 2 `vuln-scan` in the real lab (issue #7): Debian's nmap runs inside a task space with
//! service detection and the offline-safe `vuln` scripts. alpha/web1 and beta/web1 share
//! 198.18.1.10 but run different web servers; each tenant's findings are its own, a version
//! change shows in `scan diff`, and no task space remains.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::{is_root, Env};
use serde_json::Value;

/// A small web server inside a lab VM's namespace: `Server: <banner>`, and with `git` an
/// exposed `/.git/HEAD` (what nmap's `http-git` script reports).
fn serve(netns: &str, port: u16, banner: Arc<Mutex<String>>, git: bool) {
    let path = PathBuf::from("/run/netns").join(netns);
    let listener = palisade_host::netns::run_in(&path, move || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))
        .expect("enter the VM's namespace")
        .expect("bind");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let banner = banner.clone();
            std::thread::spawn(move || answer(conn, &banner.lock().unwrap().clone(), git));
        }
    });
}

fn answer(mut conn: TcpStream, banner: &str, git: bool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 << 10 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&req).lines().next().unwrap_or_default().to_owned();
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/" => ("200 OK", "<html><head><title>palisade lab</title></head><body>web1</body></html>\n"),
        "/.git/HEAD" if git => ("200 OK", "ref: refs/heads/main\n"),
        _ => ("404 Not Found", "not found\n"),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nServer: {banner}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(reply.as_bytes());
}

fn token(env: &Env, who: &str) -> String {
    palisade_client::lab::LabHome::new(env.dir.clone()).token(who).expect("lab token")
}

fn open_ports(task: &Value) -> Vec<u64> {
    task["open"].as_array().expect("open").iter().map(|p| p["port"].as_u64().expect("port")).collect()
}

fn service(task: &Value, port: u64) -> (String, String) {
    let s = task["services"].as_array().expect("services").iter().find(|s| s["port"] == port).expect("service");
    (s["product"].as_str().unwrap_or("").to_owned(), s["version"].as_str().unwrap_or("").to_owned())
}

fn scripts(task: &Value) -> Vec<String> {
    task["findings"].as_array().into_iter().flatten().filter_map(|f| f["script"].as_str().map(str::to_owned)).collect()
}

#[test]
fn vuln_scans_find_each_tenants_own_services_and_versions() {
    assert!(is_root(), "this test needs root (CI runs as root)");
    assert!(Command::new("nmap").arg("--version").output().is_ok_and(|o| o.status.success()), "nmap is installed");
    let tmp = tempfile::tempdir().expect("tempdir");
    let env = Env::new("v", 17705, tmp.path().join("lab"));
    let _ = env.palisade(&["lab", "down"]);
    env.up();

    let alpha_banner = Arc::new(Mutex::new("Apache/2.4.57 (Debian)".to_owned()));
    serve(&env.ns("alpha-web1"), 8081, alpha_banner.clone(), true);
    serve(&env.ns("beta-web1"), 8082, Arc::new(Mutex::new("nginx/1.22.1".to_owned())), false);

    let (alpha_token, beta_token) = (token(&env, "alpha"), token(&env, "beta"));
    let scan = |who: &str, tok: &str| -> Value {
        let args = ["--token", tok, "scan", "run", "--kind", "vuln-scan", "--target", who, "--tcp", "22,80,8081,8082"];
        let out = env.ok(&[&args[..], &["-o", "json"]].concat());
        serde_json::from_str(&out).expect("json")
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| scan("alpha/web1", &alpha_token));
        let b = s.spawn(|| scan("beta/web1", &beta_token));
        (a.join().expect("alpha scan"), b.join().expect("beta scan"))
    });
    println!("vuln-scan tasks took {} ms and {} ms", a["duration_ms"], b["duration_ms"]);
    assert_eq!((a["state"].as_str(), a["kind"].as_str()), (Some("done"), Some("vuln-scan")), "{a}");
    assert_eq!(b["state"], "done", "{b}");
    assert_eq!(open_ports(&a), vec![8081], "{a}");
    assert_eq!(open_ports(&b), vec![8082], "{b}");
    assert_eq!(service(&a, 8081), ("Apache httpd".to_owned(), "2.4.57".to_owned()), "{a}");
    assert_eq!(service(&b, 8082), ("nginx".to_owned(), "1.22.1".to_owned()), "{b}");
    assert!(scripts(&a).contains(&"http-git".to_owned()), "alpha's exposed .git is found: {a}");
    assert!(!scripts(&b).contains(&"http-git".to_owned()), "beta has no .git: {b}");

    // The server is upgraded; the next scan's diff names the version change.
    *alpha_banner.lock().unwrap() = "Apache/2.4.62 (Debian)".to_owned();
    let again = scan("alpha/web1", &alpha_token);
    let (from, to) = (a["id"].to_string(), again["id"].to_string());
    let d: Value = serde_json::from_str(&env.ok(&["--token", &alpha_token, "scan", "diff", &from, &to, "-o", "json"]))
        .expect("json");
    assert_eq!(d["changed"][0]["port"], 8081, "{d}");
    assert!(d["changed"][0]["from"].as_str().unwrap_or("").ends_with("2.4.57"), "{d}");
    assert!(d["changed"][0]["to"].as_str().unwrap_or("").ends_with("2.4.62"), "{d}");

    // A narrower profile: only `http-trace` (so no http-git finding), no version detection.
    let args =
        ["--token", &alpha_token, "scan", "run", "--kind", "vuln-scan", "--target", "alpha/web1", "--tcp", "8081"];
    let narrow: Value = serde_json::from_str(
        &env.ok(&[&args[..], &["--scripts", "http-trace", "--no-service-detection", "-o", "json"]].concat()),
    )
    .expect("json");
    assert_eq!(open_ports(&narrow), vec![8081], "{narrow}");
    assert!(!scripts(&narrow).contains(&"http-git".to_owned()), "only the named script ran: {narrow}");
    assert!(narrow["services"].as_array().into_iter().flatten().all(|s| s["version"].is_null()), "no -sV: {narrow}");

    let netns = Command::new("ip").args(["netns", "list"]).output().expect("ip");
    assert!(
        !String::from_utf8_lossy(&netns.stdout).lines().any(|l| l.starts_with(&env.task_prefix())),
        "no task space remains"
    );
    env.ok(&["lab", "down"]);
}
