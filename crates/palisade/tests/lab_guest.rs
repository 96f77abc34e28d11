//! A real QEMU guest in the lab, looked into from outside (issue #3): the controller boots it
//! from a policy file, and the kernel symbols it recovers from guest memory alone equal the
//! guest's own /proc/kallsyms, which the guest's init wrote to its second serial port.
//!
//! The controller reaps only its own guests: a QEMU of another instance with a RAM file under
//! the same name prefix, even one whose pid this lab's records name, survives this lab's
//! controller crashing, restarting and `lab down`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{is_root, Env};
use serde_json::Value;

/// The guest's name on the host: `<bridge>-<tenant>-<vm>`.
fn vm_name(env: &Env) -> String {
    format!("{}-alpha-guest1", env.bridge())
}

/// The guest's run directory (QEMU's serial files), while it runs.
fn run_dir(env: &Env) -> Option<PathBuf> {
    let start = format!("palisade-guest-{}-", vm_name(env));
    std::fs::read_dir(std::env::temp_dir())
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&start)))
}

/// The pid of the QEMU whose RAM file is `palisade-<name>.ram`.
fn qemu_pid(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").into_iter().flatten().flatten().find_map(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let pid = e.file_name().to_str()?.parse().ok()?;
        String::from_utf8_lossy(&cmdline).contains(&format!("palisade-{name}.ram")).then_some(pid)
    })
}

fn qemu_running(env: &Env) -> bool {
    qemu_pid(&vm_name(env)).is_some()
}

/// A QEMU of another controller instance (another owner id) whose RAM file starts like this
/// lab's guests' (`palisade-<bridge>-...`): paused, no kernel, 16 MiB.
struct Bystander(std::process::Child);

impl Bystander {
    fn start(env: &Env) -> Bystander {
        let ram = format!("/dev/shm/palisade/palisade-{}-alpha-other.ram", env.bridge());
        let child = std::process::Command::new("qemu-system-x86_64")
            .args(["-S", "-nodefaults", "-display", "none", "-m", "16", "-machine", "q35,memory-backend=ram0"])
            .args(["-object", &format!("memory-backend-file,id=ram0,size=16M,mem-path={ram},share=on")])
            .args(["-object", &palisade_guest::owner_arg("0123456789abcdef01234567")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 runs");
        Bystander(child)
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().expect("wait").is_none()
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_running(env: &Env) -> String {
    let start = Instant::now();
    let (state, detail) = loop {
        let (state, detail) = guest_state(env);
        if state != "starting" || start.elapsed() > Duration::from_secs(300) {
            break (state, detail);
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(state, "running", "guest did not come up: {detail}");
    println!("guest running after {:.1} s: {detail}", start.elapsed().as_secs_f64());
    detail
}

fn guest_state(env: &Env) -> (String, String) {
    let v: Value = serde_json::from_str(&env.ok(&["vmi", "guests", "-o", "json"])).expect("json");
    let g = v.as_array().and_then(|a| a.iter().find(|g| g["vm"] == "alpha/guest1")).cloned().unwrap_or(Value::Null);
    (g["state"].as_str().unwrap_or("absent").to_owned(), g["detail"].as_str().unwrap_or("").to_owned())
}

/// The guest's own /proc/kallsyms (written by its init to ttyS1), once complete.
fn guest_kallsyms(dir: &Path) -> Vec<String> {
    let path = std::fs::read_dir(dir)
        .expect("run dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("ttyS1")))
        .expect("a ttyS1 file in the guest's run dir");
    let start = Instant::now();
    loop {
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("read ttyS1")).replace('\r', "");
        if let Some(end) = text.find("PALISADE-KALLSYMS-END") {
            return text[..end].lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect();
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the guest never finished its kallsyms dump");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn guest_vm_boots_from_policy_and_its_symbols_come_from_memory() {
    assert!(is_root(), "this test needs root (CI runs as root)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let env = Env::new("g", 17703, tmp.path().join("lab"));
    let guest_yaml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/guest.yaml").display().to_string();
    let _ = env.palisade(&["lab", "down"]);
    env.up();
    // Another instance's guest, and a record in this lab's state naming its pid (as a reused
    // pid would): neither the name prefix nor the record alone makes it this lab's.
    let mut bystander = Bystander::start(&env);
    let record = env.dir.join("qemu").join(format!("{}-alpha-other", env.bridge()));
    std::fs::write(record, bystander.0.id().to_string()).expect("record");

    // Before the guest exists, asking for its symbols names the problem.
    let out = env.palisade(&["vmi", "symbols", "--vm", "guest1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no guest VM named `guest1`"), "{out:?}");

    // Applying the file boots the guest (the first boot also fetches the kernel).
    env.ok(&["apply", "-f", &guest_yaml]);
    let detail = wait_running(&env);
    assert!(detail.contains("TCG") || detail.contains("KVM"), "the accelerator is reported: {detail}");

    // Symbols from memory equal the guest's own /proc/kallsyms, entry for entry, in order.
    let text = env.ok(&["vmi", "symbols", "--vm", "guest1"]);
    let ours: Vec<&str> = text.lines().collect();
    let theirs = guest_kallsyms(&run_dir(&env).expect("the guest's run dir"));
    assert!(theirs.len() > 50_000, "the guest's dump is too short: {} lines", theirs.len());
    let text_line = theirs.iter().find(|l| l.ends_with(" T _text")).expect("_text in the guest's dump");
    assert!(text_line.starts_with("ffffffff"), "the guest printed hidden addresses: {text_line}");
    assert_eq!(ours.len(), theirs.len(), "symbol counts differ");
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "entry {i} differs");
    }
    let grep = env.ok(&["vmi", "symbols", "--vm", "alpha/guest1", "--grep", "^module_alloc$"]);
    assert_eq!(grep.lines().count(), 1, "{grep}");
    assert!(grep.ends_with(" T module_alloc\n"), "{grep}");

    // Guest RAM is readable by root only: QEMU makes the file 0644, its directory is 0700.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata("/dev/shm/palisade").expect("RAM directory").permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "guest RAM directory mode {mode:o}");
    assert!(Path::new(&format!("/dev/shm/palisade/palisade-{}.ram", vm_name(&env))).exists());

    // Another tenant cannot look into it.
    let tokens: Value =
        serde_json::from_str(&std::fs::read_to_string(env.dir.join("tokens.json")).expect("tokens")).expect("json");
    let beta = tokens["tenants"]["beta"].as_str().expect("beta token").to_owned();
    let out = env.palisade(&["--token", &beta, "vmi", "symbols", "--vm", "alpha/guest1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"), "{out:?}");

    // The guest is on the switch, in its tenant's VLAN: alpha reaches it, beta does not.
    let reached = (0..20).any(|_| env.ping("alpha-web1", "198.18.1.30").is_some());
    assert!(reached, "alpha/web1 cannot reach guest1");
    assert_eq!(env.ping("beta-web1", "198.18.1.30"), None);
    assert!(env.ports().contains(&env.iface("pa-guest1")), "the tap carries the lab's prefix: {:?}", env.ports());

    // The controller crashes: its guest is left behind until the restarted controller reaps
    // it (and boots the guest afresh); the other instance's QEMU survives both.
    let first = qemu_pid(&vm_name(&env)).expect("the guest's QEMU");
    let pid = std::fs::read_to_string(env.dir.join("palisaded.pid")).expect("pid file");
    assert!(std::process::Command::new("kill").args(["-9", pid.trim()]).status().expect("kill").success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(Path::new(&format!("/proc/{first}")).exists(), "the guest outlives a crashed controller");
    env.ok(&["lab", "up"]);
    assert!(!Path::new(&format!("/proc/{first}/cmdline")).exists(), "the restarted controller reaped its orphan");
    assert!(bystander.alive(), "another instance's guest was killed");
    wait_running(&env);
    assert_ne!(qemu_pid(&vm_name(&env)), Some(first));

    // Deleting the VM stops the guest and removes its port.
    env.ok(&["delete", "vm", "alpha/guest1"]);
    assert!(!qemu_running(&env), "QEMU still runs after the VM was deleted");
    assert_eq!(guest_state(&env).0, "absent");
    assert!(!env.ports().contains(&env.iface("pa-guest1")));

    // Down leaves no guest behind either (boot it again first), and still no one else's is hurt.
    env.ok(&["apply", "-f", &guest_yaml]);
    env.ok(&["lab", "down"]);
    assert!(!qemu_running(&env), "QEMU still runs after lab down");
    assert!(!Path::new(&format!("/dev/shm/palisade/palisade-{}.ram", vm_name(&env))).exists());
    assert!(bystander.alive(), "lab down killed another instance's guest");
}
