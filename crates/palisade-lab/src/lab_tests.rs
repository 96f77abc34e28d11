//! Unit tests of [`Lab`] against a scripted fake runner: what gets run, in which order, and
//! what does not get run at all.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{ExitStatus, Output};
use std::sync::{Arc, Mutex};

use crate::runner::command_line;
use crate::{CommandRunner, HostRole, HostSpec, Lab, LabError, LabSpec};
use palisade_host::ToolError;

type Responses = VecDeque<(i32, String)>;

/// Answers commands by their longest registered prefix; a prefix given several responses
/// hands them out in order and then repeats the last. Unscripted commands exit 127.
#[derive(Debug, Default)]
struct Scripted {
    rules: Mutex<Vec<(String, Responses)>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    /// Answers `prefix` with this (replacing what it answered before).
    fn on(self, prefix: &str, code: i32, stdout: &str) -> Self {
        self.rules.lock().expect("lock").retain(|(p, _)| p != prefix);
        self.then(prefix, code, stdout)
    }

    /// Answers `prefix` with this once its earlier answers are used up.
    fn then(self, prefix: &str, code: i32, stdout: &str) -> Self {
        {
            let mut rules = self.rules.lock().expect("lock");
            match rules.iter_mut().find(|(p, _)| p == prefix) {
                Some((_, q)) => q.push_back((code, stdout.to_owned())),
                None => rules.push((prefix.to_owned(), VecDeque::from([(code, stdout.to_owned())]))),
            }
        }
        self
    }

    fn into_lab(self, dir: &Path) -> (Lab, Arc<Mutex<Vec<String>>>) {
        let log = Arc::clone(&self.log);
        (Lab::with_runner(dir.to_path_buf(), Box::new(self)), log)
    }
}

impl CommandRunner for Scripted {
    fn output(&self, argv: &[String], _stdin: Option<&[u8]>) -> Result<Output, ToolError> {
        let line = command_line(argv);
        self.log.lock().expect("lock").push(line.clone());
        let mut rules = self.rules.lock().expect("lock");
        let hit = rules.iter_mut().filter(|(p, _)| line.starts_with(p.as_str())).max_by_key(|(p, _)| p.len());
        let (code, stdout, stderr) = match hit {
            Some((_, q)) if q.len() > 1 => q.pop_front().map(|(c, o)| (c, o, String::new())).expect("non-empty"),
            Some((_, q)) => q.front().map(|(c, o)| (*c, o.clone(), String::new())).expect("non-empty"),
            None => (127, String::new(), format!("unscripted command: {line}")),
        };
        Ok(Output { status: ExitStatus::from_raw(code << 8), stdout: stdout.into_bytes(), stderr: stderr.into_bytes() })
    }

    fn spawn_detached(&self, argv: &[String], _log: &Path) -> Result<u32, ToolError> {
        self.log.lock().expect("lock").push(format!("spawn {}", command_line(argv)));
        Ok(4242)
    }

    fn process_alive(&self, _pid: u32, _needle: &str) -> bool {
        false
    }
}

fn vm_spec() -> LabSpec {
    LabSpec {
        bridge: "pal0".into(),
        hosts: vec![HostSpec {
            netns: "pal-a".into(),
            port: "pa-a".into(),
            mac: "02:00:00:00:00:01".into(),
            addr: "198.18.0.1/24".parse().expect("addr"),
            gateway: None,
            vlan: 10,
            role: HostRole::Vm,
        }],
        port_type: crate::PortType::System,
    }
}

const ROOT_LINKS: &str = r#"[{"ifindex":10,"ifname":"pa-a","flags":["UP","LOWER_UP"],"link_index":2,"link_netnsid":0,"linkinfo":{"info_kind":"veth"}}]"#;
const NS_LINKS: &str = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"]},
    {"ifindex":2,"ifname":"eth0","flags":["UP","LOWER_UP"],"address":"02:00:00:00:00:01","link_index":10,"link_netnsid":0,"linkinfo":{"info_kind":"veth"}}]"#;
const ADDRS: &str =
    r#"[{"ifname":"eth0","addr_info":[{"family":"inet","local":"198.18.0.1","prefixlen":24,"scope":"global"}]}]"#;

/// A machine on which `vm_spec()` is already fully up.
fn machine_with_vm_up() -> Scripted {
    let settings = format!("{}\nsecure\n[OpenFlow13, OpenFlow14, OpenFlow15]\n", crate::host::datapath_type());
    Scripted::default()
        .on("ovs-vsctl --timeout=2 show", 0, "")
        .on("ovs-vsctl --timeout=10 br-exists pal0", 0, "")
        .on("ovs-vsctl --timeout=10 get bridge pal0 datapath_type fail_mode protocols", 0, &settings)
        .on("ovs-vsctl --timeout=10 list-ports pal0", 0, "pa-a\n")
        .on("ovs-vsctl --timeout=10 get port pa-a tag", 0, "10\n")
        .on("ovs-vsctl --timeout=10 get interface pa-a type", 0, "\"\"\n")
        .on("ip -j netns list", 0, r#"[{"name":"pal-a","id":0}]"#)
        .on("ip -d -j link show", 0, ROOT_LINKS)
        .on("ip -n pal-a -d -j link show", 0, NS_LINKS)
        .on("ip netns exec pal-a sysctl -n", 0, "1\n1\n1\n")
        .on("ethtool -k pa-a", 0, "tx-checksumming: off\n")
        .on("ip netns exec pal-a ethtool -k eth0", 0, "tx-checksumming: off\n")
        .on("ip -n pal-a -j addr show dev eth0", 0, ADDRS)
        .on("ip -n pal-a -j route show default", 0, "[]")
}

fn is_read_only(line: &str) -> bool {
    let writes =
        ["spawn", "add", "del", "set", "-w", "-K", "replace", "flush", "add-br", "add-port", "del-br", "del-port"];
    !line.split_whitespace().any(|word| writes.contains(&word)) && !line.contains("nft -f")
}

#[test]
fn a_bad_spec_runs_no_command_at_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lab, log) = machine_with_vm_up().into_lab(dir.path());
    let mut spec = vm_spec();
    spec.hosts[0].port = "pa-much-too-long".into();
    let err = lab.up(&spec, &mut |_| {}).expect_err("16-character port");
    assert!(matches!(err, LabError::InvalidSpec(_)), "{err:?}");
    assert!(lab.down(&spec, &mut |_| {}).is_err());
    assert!(lab.exec("Bad Name", &["true"]).is_err());
    assert!(log.lock().expect("lock").is_empty(), "ran {:?}", log.lock().expect("lock"));
}

#[test]
fn up_on_a_host_that_is_already_right_only_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lab, log) = machine_with_vm_up().into_lab(dir.path());
    let mut said = Vec::new();
    let report = lab.up(&vm_spec(), &mut |m| said.push(m.to_owned())).expect("up succeeds");
    assert!(!report.changed(), "{report:?}");
    assert_eq!(said, ["host pal-a is already up to date"]);
    let log = log.lock().expect("lock");
    let writes: Vec<&String> = log.iter().filter(|l| !is_read_only(l)).collect();
    assert!(writes.is_empty(), "mutating commands: {writes:?}");
}

#[test]
fn up_on_a_bare_machine_builds_everything_and_never_touches_flows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let eth0_new = NS_LINKS.replace("02:00:00:00:00:01", "16:a8:48:78:1b:7c").replace(r#"["UP","LOWER_UP"]"#, "[]");
    let (lab, log) = machine_with_vm_up()
        .on("ovs-vsctl --timeout=10 br-exists pal0", 2, "")
        .on("ovs-vsctl --timeout=10 --may-exist add-br", 0, "")
        .on("ovs-vsctl --timeout=10 list-ports pal0", 0, "")
        .on("ovs-vsctl --timeout=10 --may-exist add-port", 0, "")
        .on("ip -j netns list", 0, "[]")
        .on("ip netns add pal-a", 0, "")
        .on("ip -d -j link show", 0, "[]")
        .then("ip -d -j link show", 0, ROOT_LINKS)
        .on("ip -n pal-a -d -j link show", 0, r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK"]}]"#)
        .then("ip -n pal-a -d -j link show", 0, r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK"]}]"#)
        .then("ip -n pal-a -d -j link show", 0, &eth0_new)
        .on("ip link add name pa-a", 0, "")
        .on("ip -n pal-a link set", 0, "")
        .on("ip netns exec pal-a sysctl -n", 0, "0\n0\n0\n")
        .then("ip netns exec pal-a sysctl -n", 0, "1\n1\n1\n")
        .on("ip netns exec pal-a sysctl -q -w", 0, "")
        .on("ethtool -k pa-a", 0, "tx-checksumming: on\n")
        .on("ethtool -K pa-a tx off", 0, "")
        .on("ip -n pal-a -j addr show dev eth0", 0, "[]")
        .on("ip -n pal-a addr", 0, "")
        .into_lab(dir.path());
    let report = lab.up(&vm_spec(), &mut |_| {}).expect("up succeeds");
    assert!(report.changed());
    assert_eq!(report.bridge_changes.len(), 1, "{report:?}");
    let log = log.lock().expect("lock").clone();
    let pos = |needle: &str| {
        log.iter().position(|l| l.starts_with(needle)).unwrap_or_else(|| panic!("{needle} not run: {log:#?}"))
    };
    let add_br = pos("ovs-vsctl --timeout=10 --may-exist add-br pal0 -- set bridge pal0 datapath_type=");
    assert!(log[add_br].ends_with("fail_mode=secure protocols=OpenFlow13,OpenFlow14,OpenFlow15"));
    let netns = pos("ip netns add pal-a");
    let veth = pos("ip link add name pa-a type veth peer name eth0 netns pal-a");
    let mac = pos("ip -n pal-a link set dev eth0 address 02:00:00:00:00:01");
    let up = pos("ip -n pal-a link set dev eth0 up");
    let addr = pos("ip -n pal-a addr add 198.18.0.1/24 dev eth0");
    let port = pos("ovs-vsctl --timeout=10 --may-exist add-port pal0 pa-a -- set port pa-a tag=10");
    assert!(add_br < netns && netns < veth && veth < mac && mac < up && up < addr && addr < port);
    pos("ethtool -K pa-a tx off");
    pos("ip netns exec pal-a sysctl -q -w net.ipv6.conf.all.disable_ipv6=1");
    assert!(!log.iter().any(|l| l.contains("flow") || l.contains("ofctl")), "touched flows: {log:#?}");
}

#[test]
fn down_on_a_machine_without_the_lab_succeeds_and_deletes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lab, log) = Scripted::default()
        .on("ip -j netns list", 0, "")
        .on("pgrep -f", 1, "")
        .on("ovs-vsctl --timeout=2 show", 0, "")
        .on("ovs-vsctl --timeout=10 br-exists pal0", 2, "")
        .on("ip -d -j link show", 0, "[]")
        .into_lab(dir.path());
    lab.down(&vm_spec(), &mut |_| {}).expect("nothing to remove");
    let log = log.lock().expect("lock");
    assert!(log.iter().all(|l| is_read_only(l)), "{log:#?}");
}

#[test]
fn down_names_what_it_could_not_remove_and_still_tries_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lab, log) = Scripted::default()
        .on("ip -j netns list", 0, r#"[{"name":"pal-a"}]"#)
        .on("ip netns pids pal-a", 0, "")
        .on("pgrep -f", 1, "")
        .on("ovs-vsctl --timeout=2 show", 0, "")
        .on("ovs-vsctl --timeout=10 br-exists pal0", 0, "")
        .then("ovs-vsctl --timeout=10 br-exists pal0", 2, "")
        .on("ovs-vsctl --timeout=10 --if-exists del-br pal0", 0, "")
        .on("ip -d -j link show", 0, ROOT_LINKS)
        .then("ip -d -j link show", 0, "[]")
        .on("ip link del dev pa-a", 0, "")
        .on("ip netns del pal-a", 1, "")
        .into_lab(dir.path());
    let err = lab.down(&vm_spec(), &mut |_| {}).expect_err("namespace stays");
    let LabError::TeardownIncomplete { failures } = &err else { panic!("wrong error: {err:?}") };
    let objects: Vec<&str> = failures.iter().map(|f| f.object.as_str()).collect();
    assert_eq!(objects, ["namespace pal-a"], "{err}");
    assert!(err.to_string().contains("ip netns del pal-a"), "{err}");
    let log = log.lock().expect("lock");
    assert!(log.iter().any(|l| l == "ovs-vsctl --timeout=10 --if-exists del-br pal0"));
    assert!(log.iter().any(|l| l == "ip link del dev pa-a"));
}

#[test]
fn counters_are_refused_for_non_appliances_and_exec_wraps_in_the_namespace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lab, log) = Scripted::default().on("ip netns exec pal-a true", 0, "").into_lab(dir.path());
    let err = lab.appliance_counters(&vm_spec().hosts[0]).expect_err("a VM");
    assert!(matches!(err, LabError::NotAnAppliance { .. }));
    let out = lab.exec("pal-a", &["true"]).expect("runs");
    assert!(out.status.success());
    assert_eq!(*log.lock().expect("lock"), ["ip netns exec pal-a true"]);
}

/// Issue #2: the lab can attach its hosts as AF_XDP ports (PMD-polled), and back.
#[test]
fn port_type_is_converged_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lab, log) = machine_with_vm_up().on("ovs-vsctl --timeout=10 set interface pa-a", 0, "").into_lab(dir.path());
    let mut spec = vm_spec();
    spec.port_type = crate::PortType::Afxdp;
    assert!(lab.up(&spec, &mut |_| {}).expect("up succeeds").changed());
    let set: Vec<String> =
        log.lock().expect("lock").iter().filter(|l| l.contains(" set interface ")).cloned().collect();
    assert_eq!(set, ["ovs-vsctl --timeout=10 set interface pa-a type=afxdp options:xdp-mode=generic"]);

    let (lab, log) = machine_with_vm_up()
        .on("ovs-vsctl --timeout=10 get interface pa-a type", 0, "afxdp\n")
        .on("ovs-vsctl --timeout=10 set interface pa-a", 0, "")
        .into_lab(dir.path());
    assert!(lab.up(&vm_spec(), &mut |_| {}).expect("up succeeds").changed());
    let set: Vec<String> =
        log.lock().expect("lock").iter().filter(|l| l.contains(" set interface ")).cloned().collect();
    assert_eq!(
        set,
        ["ovs-vsctl --timeout=10 set interface pa-a type=system -- remove interface pa-a options xdp-mode"]
    );
}
