//! The single-host lab: the model's inventory built as network namespaces on one OVS bridge,
//! plus the lab's own controller process.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use palisade_host::signal::{self, Signal};
use palisade_host::{CommandRunner as _, SystemRunner};
use palisade_lab::{
    ApplianceFunction, ApplianceSpec, FirewallRule, FirewallSpec, HostRole, HostSpec, LabSpec, Proto, Verdict,
};
use palisade_model::inventory::Inventory;
use palisade_model::types::{self as mt, Protocol};
use palisade_model::{merge_file, FileError};
use palisade_ovs::PortNaming;
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;

use crate::Client;

/// The lab's inventory, built into the CLI so `palisade lab up` needs no file.
pub const LAB_YAML: &str = include_str!("../../../examples/lab.yaml");

/// Errors of the lab glue.
#[derive(Debug, thiserror::Error)]
pub enum LabGlueError {
    /// The lab inventory is invalid.
    #[error("the lab inventory is invalid:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Inventory(Vec<FileError>),
    /// An object has no switch port, so it cannot be built.
    #[error("{0} has no switch port; the lab cannot attach it")]
    NoPort(String),
    /// A file could not be read or written.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A port-name prefix or an interface name is not usable.
    #[error(transparent)]
    Naming(palisade_ovs::NamingError),
    /// The lab directory holds a different lab.
    #[error("{dir} holds the lab on bridge `{have_bridge}` with prefix `{have_prefix}`, not `{want_bridge}` with `{want_prefix}`; run `palisade lab down` first, or use another --lab-dir")]
    OtherLab {
        /// The lab directory.
        dir: String,
        /// Its bridge.
        have_bridge: String,
        /// Its prefix.
        have_prefix: String,
        /// The bridge asked for.
        want_bridge: String,
        /// The prefix asked for.
        want_prefix: String,
    },
    /// A directory other than the default one holds no lab record.
    #[error("no lab in {0} (it has no lab.json); `palisade --lab-dir {0} lab up --bridge B --prefix P` builds one")]
    NoLab(String),
    /// A new lab outside the default directory needs its own names.
    #[error("a lab in {0}, outside the default directory, needs its own names: give --bridge (and --prefix), so it never takes the default lab's `palisade0`")]
    NeedBridge(String),
    /// The lab description file is not readable.
    #[error("{path} is not a lab description: {detail}")]
    BadNames {
        /// The file.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// The controller did not start.
    #[error("palisaded did not become healthy within {0:?}; see {1}")]
    ControllerStart(Duration, String),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LabGlueError {
    let path = path.display().to_string();
    move |source| LabGlueError::Io { what, path, source }
}

/// Parses the built-in lab inventory.
pub fn lab_inventory() -> Result<Inventory, LabGlueError> {
    merge_file("lab.yaml", LAB_YAML, &Inventory::default()).map(|m| m.after).map_err(LabGlueError::Inventory)
}

fn firewall(fw: Option<&palisade_model::document::FirewallDoc>) -> FirewallSpec {
    let Some(fw) = fw else { return FirewallSpec::default() };
    let verdict = |v: mt::Verdict| match v {
        mt::Verdict::Accept => Verdict::Accept,
        mt::Verdict::Drop => Verdict::Drop,
    };
    FirewallSpec {
        default: verdict(fw.default),
        rules: fw
            .rules
            .iter()
            .map(|r| FirewallRule {
                name: r.name.to_string(),
                verdict: verdict(r.verdict),
                protocol: match r.protocol {
                    Protocol::Any => None,
                    Protocol::Tcp => Some(Proto::Tcp),
                    Protocol::Udp => Some(Proto::Udp),
                    Protocol::Icmp => Some(Proto::Icmp),
                },
                dst_port: r.port,
                src: r.src,
                dst: r.dst,
            })
            .collect(),
    }
}

/// The bridge of the default lab.
pub const DEFAULT_BRIDGE: &str = "palisade0";

/// Which lab this is on the machine: its bridge and the prefix of everything it names there
/// (interfaces, namespaces, scan task spaces), so two labs — a user's and the test suite's —
/// never share a name. Kept in the lab directory by `lab up`; every later command reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabNames {
    /// The OVS bridge.
    pub bridge: String,
    /// The port-name prefix (empty for the default lab); see [`PortNaming`].
    pub prefix: String,
}

impl Default for LabNames {
    fn default() -> Self {
        LabNames { bridge: DEFAULT_BRIDGE.to_owned(), prefix: String::new() }
    }
}

impl LabNames {
    /// A lab on `bridge` whose names carry `prefix` (0-3 characters of [a-z0-9]).
    pub fn new(bridge: &str, prefix: &str) -> Result<Self, LabGlueError> {
        PortNaming::new(prefix).map_err(LabGlueError::Naming)?;
        Ok(LabNames { bridge: bridge.to_owned(), prefix: prefix.to_owned() })
    }

    /// How the lab's controller names ports on the host.
    pub fn naming(&self) -> PortNaming {
        PortNaming::new(&self.prefix).unwrap_or_default()
    }

    /// The start of every namespace name of this lab: `pal-`, or `pal-<prefix>-`.
    pub fn netns_prefix(&self) -> String {
        if self.prefix.is_empty() {
            "pal-".to_owned()
        } else {
            format!("pal-{}-", self.prefix)
        }
    }

    /// The namespace of lab host `host` (`alpha-web1`, `fw1`); a full namespace name of this
    /// lab is returned as it is.
    pub fn netns(&self, host: &str) -> String {
        let start = self.netns_prefix();
        if host.starts_with(&start) {
            host.to_owned()
        } else {
            format!("{start}{host}")
        }
    }

    /// The prefix of the lab controller's scan task spaces: `pt-`, or `p<prefix>t-`.
    pub fn scan_prefix(&self) -> String {
        format!("p{}t-", self.prefix)
    }
}

/// Maps an inventory to the lab's namespaces: one per VM, per subdomain gateway and per
/// appliance, each on an access port tagged with its domain's segment.
pub fn lab_spec(inv: &Inventory, names: &LabNames) -> Result<LabSpec, LabGlueError> {
    let naming = names.naming();
    let iface = |port: &str| naming.interface(port).map_err(LabGlueError::Naming);
    let mut hosts = Vec::new();
    for (key, sub) in inv.subdomains() {
        let tenant = key.tenant.as_ref().map(|t| t.to_string()).unwrap_or_default();
        let segment = key.tenant.as_ref().and_then(|t| inv.domain(t, &sub.domain)).map_or(0, |d| d.segment);
        let net = |ip| Ipv4Net::new(ip, sub.cidr.prefix_len()).unwrap_or(sub.cidr);
        if let (Some(port), Some(mac)) = (&sub.gateway_port, &sub.gateway_mac) {
            hosts.push(HostSpec {
                netns: names.netns(&format!("{tenant}-gw-{}", key.name)),
                port: iface(port.as_str())?,
                mac: mac.to_string(),
                addr: net(sub.gateway),
                gateway: None,
                vlan: segment,
                role: HostRole::Gateway,
            });
        }
        for (vkey, vm) in inv.vms().filter(|(k, v)| k.tenant == key.tenant && v.subdomain == key.name) {
            let port = vm.port.as_ref().ok_or_else(|| LabGlueError::NoPort(vkey.to_string()))?;
            hosts.push(HostSpec {
                netns: names.netns(&format!("{tenant}-{}", vkey.name)),
                port: iface(port.as_str())?,
                mac: vm.mac.to_string(),
                addr: net(vm.ip),
                gateway: Some(sub.gateway),
                vlan: segment,
                role: HostRole::Vm,
            });
        }
    }
    for (key, app) in inv.appliances() {
        let segment = inv.domain(&app.tenant, &app.domain).map_or(0, |d| d.segment);
        let sub = inv
            .subdomains()
            .find(|(k, s)| k.tenant.as_ref() == Some(&app.tenant) && s.domain == app.domain && s.cidr.contains(&app.ip))
            .map(|(_, s)| s);
        let prefix = sub.map_or(32, |s| s.cidr.prefix_len());
        let functions = app
            .functions
            .iter()
            .filter_map(|f| match f {
                mt::ApplianceFunction::Firewall => Some(ApplianceFunction::Firewall),
                mt::ApplianceFunction::Tap => Some(ApplianceFunction::Tap),
                mt::ApplianceFunction::Ids => None,
            })
            .collect();
        hosts.push(HostSpec {
            netns: names.netns(key.name.as_str()),
            port: iface(app.port.as_str())?,
            mac: app.mac.to_string(),
            addr: Ipv4Net::new(app.ip, prefix).unwrap_or_else(|_| Ipv4Net::from(app.ip)),
            gateway: sub.map(|s| s.gateway),
            vlan: segment,
            role: HostRole::Appliance(ApplianceSpec { functions, firewall: firewall(app.firewall.as_ref()) }),
        });
    }
    Ok(LabSpec { bridge: names.bridge.clone(), hosts, port_type: palisade_lab::PortType::System })
}

/// Where the lab keeps its controller's database, tokens, pid and logs.
#[derive(Debug, Clone)]
pub struct LabHome {
    /// The directory.
    pub dir: PathBuf,
}

impl LabHome {
    /// The lab home at `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn names_path(&self) -> PathBuf {
        self.dir.join("lab.json")
    }

    /// Whether this is the default lab's directory.
    pub fn is_default(&self) -> bool {
        self.dir == Path::new(palisade_lab::DEFAULT_STATE_DIR)
    }

    /// What `lab up` recorded in this directory, if anything.
    pub fn recorded_names(&self) -> Result<Option<LabNames>, LabGlueError> {
        let path = self.names_path();
        match fs::read_to_string(&path) {
            Ok(text) => {
                let bad = |detail: String| LabGlueError::BadNames { path: path.display().to_string(), detail };
                let names: LabNames = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
                LabNames::new(&names.bridge, &names.prefix).map(Some).map_err(|e| bad(e.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("cannot read", &path)(e)),
        }
    }

    /// The lab this directory holds: what `lab up` recorded; in the default directory without a
    /// record (a lab built before records were kept), the default lab. Any other directory
    /// without a record holds no lab, and never stands for the default one.
    pub fn names(&self) -> Result<LabNames, LabGlueError> {
        match self.recorded_names()? {
            Some(names) => Ok(names),
            None if self.is_default() => Ok(LabNames::default()),
            None => Err(LabGlueError::NoLab(self.dir.display().to_string())),
        }
    }

    /// The lab `lab up` builds: the recorded one, changed by the `bridge` and `prefix` given
    /// (which [`LabHome::claim`] then refuses if a lab is recorded); with no record, the given
    /// names, the default lab's only in the default directory.
    pub fn names_for_up(&self, bridge: Option<&str>, prefix: Option<&str>) -> Result<LabNames, LabGlueError> {
        let base = match self.recorded_names()? {
            Some(names) => names,
            None if self.is_default() || bridge.is_some() => LabNames::default(),
            None => return Err(LabGlueError::NeedBridge(self.dir.display().to_string())),
        };
        LabNames::new(bridge.unwrap_or(&base.bridge), prefix.unwrap_or(&base.prefix))
    }

    /// Records that this directory holds the lab `names`; refuses if it holds another one.
    pub fn claim(&self, names: &LabNames) -> Result<(), LabGlueError> {
        let path = self.names_path();
        if path.exists() {
            let have = self.names()?;
            if &have != names {
                return Err(LabGlueError::OtherLab {
                    dir: self.dir.display().to_string(),
                    have_bridge: have.bridge,
                    have_prefix: have.prefix,
                    want_bridge: names.bridge.clone(),
                    want_prefix: names.prefix.clone(),
                });
            }
            return Ok(());
        }
        fs::create_dir_all(&self.dir).map_err(io("cannot create", &self.dir))?;
        let text = serde_json::to_string_pretty(names).unwrap_or_default();
        fs::write(&path, text).map_err(io("cannot write", &path))
    }

    /// The token file.
    pub fn tokens(&self) -> PathBuf {
        self.dir.join("tokens.json")
    }

    fn pid(&self) -> PathBuf {
        self.dir.join("palisaded.pid")
    }

    /// The controller's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("palisaded.log")
    }

    /// The controller's database.
    pub fn db(&self) -> PathBuf {
        self.dir.join("palisade.db")
    }

    /// The controller's security event stream (monitor events and anomaly alerts, JSON lines).
    pub fn events(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// The controller's anomaly-detection models: `anomaly` policies name its subdirectories
    /// (e.g. `palisade nad train ... --model <lab dir>/models/lab`).
    pub fn models(&self) -> PathBuf {
        self.dir.join("models")
    }

    /// Creates the token file (admin + one per tenant) if it does not exist.
    pub fn ensure_tokens(&self, inv: &Inventory) -> Result<(), LabGlueError> {
        fs::create_dir_all(&self.dir).map_err(io("cannot create", &self.dir))?;
        let path = self.tokens();
        if path.exists() {
            return Ok(());
        }
        let mut tenants = serde_json::Map::new();
        for (key, _) in inv.objects.iter().filter(|(k, _)| k.kind == palisade_model::Kind::Tenant) {
            tenants.insert(key.name.to_string(), random_token(&path)?.into());
        }
        let doc = serde_json::json!({ "admin": random_token(&path)?, "tenants": tenants });
        fs::write(&path, serde_json::to_string_pretty(&doc).unwrap_or_default()).map_err(io("cannot write", &path))?;
        Ok(())
    }

    /// Reads one token: `admin` or a tenant name.
    pub fn token(&self, who: &str) -> Option<String> {
        let text = fs::read_to_string(self.tokens()).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let t = if who == "admin" { &v["admin"] } else { &v["tenants"][who] };
        t.as_str().map(str::to_owned)
    }

    /// Starts the lab's controller unless one already answers at `url`.
    pub fn start_controller(
        &self,
        palisaded: &Path,
        url: &str,
        listen: &str,
        names: &LabNames,
    ) -> Result<bool, LabGlueError> {
        let probe = Client::new(url, "");
        if probe.healthy() {
            return Ok(false);
        }
        let log_path = self.log();
        let log =
            fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(io("cannot open", &log_path))?;
        let err = log.try_clone().map_err(io("cannot open", &log_path))?;
        let child = Command::new(palisaded)
            .args(["--db", &self.db().display().to_string(), "--tokens", &self.tokens().display().to_string()])
            .args(["--bridge", &names.bridge, "--listen", listen])
            .args(["--port-prefix", &names.prefix, "--scan-prefix", &names.scan_prefix()])
            .args(["--state-dir", &self.dir.display().to_string()])
            .args(["--events", &self.events().display().to_string()])
            .args(["--models", &self.models().display().to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(io("cannot start", palisaded))?;
        fs::write(self.pid(), child.id().to_string()).map_err(io("cannot write", &self.pid()))?;
        let limit = Duration::from_secs(15);
        let start = Instant::now();
        while start.elapsed() < limit {
            if probe.healthy() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(LabGlueError::ControllerStart(limit, log_path.display().to_string()))
    }

    /// Stops the lab's controller, if it runs; returns true if one was stopped.
    pub fn stop_controller(&self) -> bool {
        let Some(pid) = fs::read_to_string(self.pid()).ok().and_then(|p| p.trim().parse::<u32>().ok()) else {
            return false;
        };
        let _ = fs::remove_file(self.pid());
        let alive = |pid: u32| SystemRunner.process_alive(pid, "");
        if !alive(pid) {
            return false;
        }
        // It may exit meanwhile; whether it is gone is checked below either way.
        let _ = signal::send(pid, Signal::SIGTERM);
        let start = Instant::now();
        while alive(pid) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(pid) {
            let _ = signal::send(pid, Signal::SIGKILL);
        }
        true
    }

    /// Removes the lab home (database, tokens, logs, captures).
    pub fn remove(&self) -> Result<(), LabGlueError> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("cannot remove", &self.dir)(e)),
        }
    }
}

fn random_token(path: &Path) -> Result<String, LabGlueError> {
    let mut buf = [0u8; 24];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(io("cannot read /dev/urandom for", path))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
